package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		remote []string
		pod    string
		ns     string
		node   string
		output bool
	}{
		{args: []string{"trace", "caps", "--pod", "web", "-n", "shop", "--denied"},
			remote: []string{"ghostwatch", "trace", "caps", "--denied", "--pod", "web"}, pod: "web", ns: "shop"},
		{args: []string{"history", "--pod=web", "--since", "10m", "-o", "json"},
			remote: []string{"ghostwatch", "history", "--since", "10m", "-o", "json", "--pod", "web"}, pod: "web", output: true},
		{args: []string{"netns", "holders", "--node", "n1", "--orphans", "-ojson"},
			remote: []string{"ghostwatch", "netns", "holders", "--orphans", "-ojson"}, node: "n1", output: true},
		{args: []string{"ps", "--node=n1", "--kubeconfig", "/k", "--context=c"},
			remote: []string{"ghostwatch", "ps"}, node: "n1"},
	} {
		inv, err := parse(tc.args)
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if !slices.Equal(inv.remote, tc.remote) || inv.pod != tc.pod || inv.ns != tc.ns || inv.node != tc.node || inv.hasOutput != tc.output {
			t.Errorf("%v: %+v", tc.args, inv)
		}
	}
}

// Mistakes in the command line: one line, the usage, exit status 2.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no command"},
		{[]string{"trace", "caps"}, "trace needs --pod"},
		{[]string{"trace", "--pod", "web"}, "trace needs a gadget, e.g. kubectl ghostwatch trace caps --pod P"},
		{[]string{"history", "--pod", "web", "--node", "n1"}, "--node is for netns holders and ps; history finds the pod's node"},
		{[]string{"ps"}, "ps needs --node"},
		{[]string{"netns", "holders"}, "netns holders needs --node"},
		{[]string{"ps", "--node", "n1", "--pod", "web"}, "--pod is for trace and history"},
		{[]string{"doctor"}, `unknown command "doctor"`},
		{[]string{"ps", "--node"}, "--node needs a value"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		first, _, _ := strings.Cut(stderr.String(), "\n")
		if code != 2 || first != "kubectl ghostwatch: "+tc.want || !strings.Contains(stderr.String(), "usage:") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

// Without any kubeconfig, one line says so (kubectl itself would try localhost:8080).
func TestNoKubeconfig(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, tc := range []struct {
		env  string
		args []string
		want string
	}{
		{"", []string{"ps", "--node", "n1"}, "kubectl ghostwatch: no kubeconfig: set KUBECONFIG, pass --kubeconfig, or create ~/.kube/config\n"},
		{filepath.Join(home, "nosuch"), []string{"ps", "--node", "n1"}, "kubectl ghostwatch: no kubeconfig: none of KUBECONFIG=" + filepath.Join(home, "nosuch") + " exists\n"},
		{"", []string{"ps", "--node", "n1", "--kubeconfig", "/nosuch"}, "kubectl ghostwatch: no kubeconfig at /nosuch\n"},
	} {
		os.Setenv("KUBECONFIG", tc.env)
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != 1 || stderr.String() != tc.want {
			t.Errorf("KUBECONFIG=%q %v: exit %d, stderr %q; want exit 1 and %q", tc.env, tc.args, code, stderr.String(), tc.want)
		}
	}
}
