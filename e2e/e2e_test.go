//go:build e2e

package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

func TestKubernetes(t *testing.T) {
	testutil.RequirePrivileged(t)
	c := Start(t)
	apply(t, c, `apiVersion: v1
kind: Pod
metadata: {name: sleeper, namespace: default}
spec:
  containers: [{name: main, image: `+containertest.ImageName+`, imagePullPolicy: Never, command: [sleep, "100000"]}]
`)
	c.Kubectl(t, "wait", "--for=condition=Ready", "pod/sleeper", "--timeout=60s")
}

func apply(t *testing.T, c *Cluster, manifest string) {
	t.Helper()
	f := t.TempDir() + "/m.yaml"
	if err := os.WriteFile(f, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	out := c.Kubectl(t, "apply", "-f", f)
	t.Log(strings.TrimSpace(out))
}
