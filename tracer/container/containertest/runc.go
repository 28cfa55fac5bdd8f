package containertest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// BindPort81 is a container's shell script: /caps/nc listens on port 81 until the bind is
// refused (nc exits) or done (the port listens), at most 10 s; then the container stays until
// the host makes the file release in its root (30 s at most), so that a tracer can still read
// nc's file capability through it (read in user space after the exec). It used to kill nc after
// a fixed second, which on a loaded machine could come before nc's bind, or end the container
// before the tracer read the file.
const BindPort81 = `/caps/nc -l -p 81 & i=0
while kill -0 $! 2>/dev/null && ! grep -qs ':0051 ' /proc/net/tcp /proc/net/tcp6 && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
kill $! 2>/dev/null; wait
i=0; while [ ! -e /release ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done`

// RunRunc starts `runc run` of bundle as id with a state root of its own, and returns a function
// that makes bundle's rootfs/release (see BindPort81), waits for runc, deletes the container and
// returns runc's output.
func RunRunc(t testing.TB, bundle, id string) (finish func() string) {
	t.Helper()
	state := filepath.Join(bundle, "state")
	var out bytes.Buffer
	cmd := exec.Command("runc", "--root", state, "run", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("runc run: %v", err)
	}
	done := false
	finish = func() string {
		if !done {
			done = true
			os.WriteFile(filepath.Join(bundle, "rootfs", "release"), nil, 0o644)
			cmd.Wait()
			exec.Command("runc", "--root", state, "delete", "-f", id).Run()
		}
		return out.String()
	}
	t.Cleanup(func() { finish() })
	return finish
}

// RuncSpec writes bundle/config.json: runc's default spec, not attached to a terminal, changed by
// edit.
func RuncSpec(t testing.TB, bundle string, edit func(*specs.Spec)) {
	t.Helper()
	if out, err := exec.Command("runc", "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	var spec specs.Spec
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err == nil {
		err = json.Unmarshal(data, &spec)
	}
	if err != nil {
		t.Fatal(err)
	}
	spec.Process.Terminal = false
	edit(&spec)
	data, _ = json.Marshal(&spec)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}
