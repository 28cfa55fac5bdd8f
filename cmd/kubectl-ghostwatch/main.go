// Command kubectl-ghostwatch is the `kubectl ghostwatch` plugin: it runs ghostwatch in the agent
// of the node that a pod runs on (or of a node named), through the API server only (kubectl
// exec), and prints what ghostwatch prints there, with the same flags and formats.
//
//	kubectl ghostwatch trace GADGET --pod P [-n NS] [trace flags]
//	kubectl ghostwatch history --pod P [-n NS] [--since 10m] [history flags]
//	kubectl ghostwatch netns holders --node N [flags]
//	kubectl ghostwatch ps --node N [flags]
//
// It drives kubectl itself, so the user's kubeconfig, context and credentials apply unchanged.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/term"
)

const usage = `usage:
  kubectl ghostwatch trace GADGET --pod P [-n NS] [ghostwatch trace flags]
  kubectl ghostwatch history --pod P [-n NS] [--since 10m] [ghostwatch history flags]
  kubectl ghostwatch netns holders --node N [ghostwatch netns holders flags]
  kubectl ghostwatch ps --node N [ghostwatch ps flags]
plugin flags: --kubeconfig FILE, --context NAME, --agent-namespace NS (default ghostwatch)`

// agentSelector finds the DaemonSet's pods (deploy/ghostwatch.yaml).
const agentSelector = "app.kubernetes.io/name=ghostwatch"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(args []string, stdout, stderr io.Writer) int {
	err := runErr(args, stdout, stderr)
	var exit exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return int(exit) // ghostwatch's own status; it has said why on stderr
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "kubectl ghostwatch: %v\n%s\n", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "kubectl ghostwatch: %v\n", err)
		return 1
	}
}

// invocation is a parsed command line.
type invocation struct {
	remote    []string // ghostwatch's arguments, run in the agent's container
	pod, ns   string
	node      string
	agentNS   string
	kubectl   []string // --kubeconfig and --context, passed on to kubectl
	hasOutput bool     // -o given
}

func parse(args []string) (invocation, error) {
	inv := invocation{agentNS: "ghostwatch"}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, inline := strings.Cut(a, "=")
		own := map[string]*string{"--pod": &inv.pod, "-n": &inv.ns, "--namespace": &inv.ns, "--node": &inv.node,
			"--agent-namespace": &inv.agentNS, "--kubeconfig": nil, "--context": nil}
		target, ok := own[name]
		if !ok {
			if name == "-o" || name == "--output" || strings.HasPrefix(a, "-o") && len(a) > 2 && a[2] != '-' {
				inv.hasOutput = true
			}
			rest = append(rest, a)
			continue
		}
		if !inline {
			if i+1 >= len(args) {
				return inv, usageError{a + " needs a value"}
			}
			i++
			value = args[i]
		}
		if target == nil {
			inv.kubectl = append(inv.kubectl, name+"="+value)
		} else {
			*target = value
		}
	}
	if len(rest) == 0 {
		return inv, usageError{"no command"}
	}
	switch cmd := rest[0]; {
	case cmd == "trace" || cmd == "history":
		if inv.pod == "" {
			return inv, usageError{cmd + " needs --pod"}
		}
		if inv.node != "" {
			return inv, usageError{"--node is for netns holders and ps; " + cmd + " finds the pod's node"}
		}
		if cmd == "trace" && (len(rest) < 2 || strings.HasPrefix(rest[1], "-")) {
			return inv, usageError{"trace needs a gadget, e.g. kubectl ghostwatch trace caps --pod P"}
		}
	case cmd == "ps" || cmd == "netns" && len(rest) > 1 && rest[1] == "holders":
		if inv.node == "" {
			return inv, usageError{strings.Join(rest[:min(2, len(rest))], " ") + " needs --node"}
		}
		if inv.pod != "" {
			return inv, usageError{"--pod is for trace and history"}
		}
	default:
		return inv, usageError{fmt.Sprintf("unknown command %q", strings.Join(rest[:min(2, len(rest))], " "))}
	}
	inv.remote = append([]string{"ghostwatch"}, rest...)
	if inv.pod != "" {
		inv.remote = append(inv.remote, "--pod", inv.pod)
	}
	return inv, nil
}

func runErr(args []string, stdout, stderr io.Writer) error {
	inv, err := parse(args)
	if err != nil {
		return err
	}
	if err := checkKubeconfig(inv.kubectl); err != nil {
		return err
	}
	if _, err := exec.LookPath("kubectl"); err != nil {
		return errors.New("kubectl not found in PATH")
	}
	k := kubectl{flags: inv.kubectl}
	if inv.pod != "" {
		if inv.ns == "" {
			if inv.ns, err = k.output("config", "view", "--minify", "-o", "jsonpath={..namespace}"); err != nil || inv.ns == "" {
				inv.ns = "default"
			}
		}
		inv.remote = append(inv.remote, "--k8s-namespace", inv.ns)
		node, err := k.output("get", "pod", inv.pod, "-n", inv.ns, "-o", "jsonpath={.spec.nodeName}")
		if err != nil {
			if strings.Contains(err.Error(), "NotFound") || strings.Contains(err.Error(), "not found") {
				return fmt.Errorf("pod %s not found in namespace %s", inv.pod, inv.ns)
			}
			return err
		}
		if node == "" {
			return fmt.Errorf("pod %s/%s is not scheduled on a node yet", inv.ns, inv.pod)
		}
		inv.node = node
	}
	agent, err := k.agentOn(inv.node, inv.agentNS)
	if err != nil {
		return err
	}
	if !inv.hasOutput {
		// The agent's ghostwatch writes to a pipe, not to this terminal: say which format this
		// end would have chosen.
		format := "json"
		if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "table"
		}
		inv.remote = append(inv.remote, "-o", format)
	}
	return k.exec(inv.agentNS, agent, inv.remote, stdout, stderr)
}

// checkKubeconfig fails when kubectl would have no configuration at all (it would then try
// localhost:8080 and say that the connection was refused).
func checkKubeconfig(flags []string) error {
	for _, f := range flags {
		if path, ok := strings.CutPrefix(f, "--kubeconfig="); ok {
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("no kubeconfig at %s", path)
			}
			return nil
		}
	}
	if env := os.Getenv("KUBECONFIG"); env != "" {
		for _, p := range filepath.SplitList(env) {
			if _, err := os.Stat(p); err == nil {
				return nil
			}
		}
		return fmt.Errorf("no kubeconfig: none of KUBECONFIG=%s exists", env)
	}
	home, _ := os.UserHomeDir()
	if _, err := os.Stat(filepath.Join(home, ".kube", "config")); err == nil {
		return nil
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		return nil // in a pod: kubectl uses its service account
	}
	return errors.New("no kubeconfig: set KUBECONFIG, pass --kubeconfig, or create ~/.kube/config")
}

type kubectl struct{ flags []string }

// output runs kubectl and returns its stdout; an error carries its stderr's first line.
func (k kubectl) output(args ...string) (string, error) {
	cmd := exec.Command("kubectl", append(append([]string{}, k.flags...), args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		line, _, _ := strings.Cut(strings.TrimSpace(errb.String()), "\n")
		if line == "" {
			line = err.Error()
		}
		return "", errors.New(strings.TrimPrefix(line, "error: "))
	}
	return strings.TrimSpace(out.String()), nil
}

// agentOn returns the name of the ready agent pod on node.
func (k kubectl) agentOn(node, ns string) (string, error) {
	out, err := k.output("get", "pods", "-n", ns, "-l", agentSelector, "--field-selector", "spec.nodeName="+node, "-o", "json")
	if err != nil {
		return "", err
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name string }
			Status   struct {
				Phase      string
				Conditions []struct{ Type, Status string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return "", fmt.Errorf("reading the agent pods: %w", err)
	}
	if len(list.Items) == 0 {
		return "", fmt.Errorf("no ghostwatch agent on node %s (no pod labelled %s in namespace %s: is deploy/ghostwatch.yaml applied?)", node, agentSelector, ns)
	}
	p := list.Items[0]
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" && c.Status == "True" {
			return p.Metadata.Name, nil
		}
	}
	return "", fmt.Errorf("the ghostwatch agent on node %s (pod %s/%s, %s) is not ready", node, ns, p.Metadata.Name, p.Status.Phase)
}

// exitError is ghostwatch's exit status in the agent, passed on.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exec runs ghostwatch in the agent's container. kubectl's own "command terminated with exit
// code N" line is left out: ghostwatch has said why, and its status is passed on.
func (k kubectl) exec(ns, pod string, remote []string, stdout, stderr io.Writer) error {
	args := append(append([]string{}, k.flags...), "exec", "-n", ns, pod, "-c", "agent", "--")
	cmd := exec.Command("kubectl", append(args, remote...)...)
	cmd.Stdout = stdout
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "command terminated with exit code") {
			fmt.Fprintln(stderr, sc.Text())
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exitError(exit.ExitCode())
	}
	return err
}
