package containertest

import (
	"testing"

	"github.com/ghostwatch/ghostwatch/tracer/ociruntime"
)

// RunCgroup2 runs the container of bundle with the runtime rt (runc or crun) as on a host that is
// cgroup v2 only (ociruntime.RunCgroup2). Its cgroup is then /sys/fs/cgroup/unified/ID on this
// host, and its device rules are a BPF program attached there. Cleanup deletes the container.
func RunCgroup2(t testing.TB, rt, bundle, id string) {
	t.Helper()
	if out, err := ociruntime.RunCgroup2(rt, "run", "-d", "--bundle", bundle, id); err != nil {
		t.Fatalf("%s run: %v: %s", rt, err, out)
	}
	t.Cleanup(func() {
		if out, err := ociruntime.RunCgroup2(rt, "delete", "-f", id); err != nil {
			t.Errorf("%s delete: %v: %s", rt, err, out)
		}
	})
}

// ExecCgroup2 runs args in a container started by RunCgroup2 and returns its output.
func ExecCgroup2(t testing.TB, rt, id string, args ...string) string {
	t.Helper()
	out, err := ociruntime.RunCgroup2(rt, append([]string{"exec", id}, args...)...)
	if err != nil {
		t.Fatalf("%s exec %v: %v: %s", rt, args, err, out)
	}
	return string(out)
}
