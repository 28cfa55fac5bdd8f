package caps_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ghostwatch/ghostwatch/tracer/caps"
	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

// The Kubernetes form of the story under real runc: a container whose user namespace maps its
// ids to 100000-165535 runs, as uid 1000, an image's binary whose v3 xattr was written for root
// 200000 (another builder's range). runc execs it; its file capabilities are not applied, and
// its bind to port 81 is denied with that exec as cause. The same binary written for 100000
// binds.
func TestUserNamespacedContainerUnderRunc(t *testing.T) {
	containertest.SkipInVM(t)
	events := open(t, nil)
	for _, tc := range []struct {
		rootid  string
		nnp     bool // runc's default; the kernel decides what it does to file capabilities
		applied bool
	}{{"200000", false, false}, {"100000", false, true}, {"100000", true, false}} {
		t.Run(fmt.Sprintf("rootid %s nnp %v", tc.rootid, tc.nnp), func(t *testing.T) {
			bundle := t.TempDir()
			os.Chmod(bundle, 0o755) // the container's root is host uid 100000
			os.Chmod(filepath.Dir(bundle), 0o755)
			rootfs := filepath.Join(bundle, "rootfs")
			if err := containertest.WriteRootfs(rootfs); err != nil {
				t.Fatal(err)
			}
			os.MkdirAll(filepath.Join(rootfs, "caps"), 0o755)
			nc := filepath.Join(rootfs, "caps", "nc") // busybox, run as its nc applet
			if out, err := exec.Command("cp", "/bin/busybox", nc).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v: %s", err, out)
			}
			if out, err := exec.Command("setcap", "-n", tc.rootid, "cap_net_bind_service=ep", nc).CombinedOutput(); err != nil {
				t.Fatalf("setcap: %v: %s", err, out)
			}
			writeSpec(t, bundle, tc.nnp)
			finish := containertest.RunRunc(t, bundle, fmt.Sprintf("gw-caps-%d", time.Now().UnixNano()))
			var ex *caps.Exec
			events.Next(t, "the exec of /caps/nc", func(ev gadget.Event) bool {
				e, ok := ev.(*caps.Exec)
				if ok && e.File == "/caps/nc" {
					ex = e
				}
				return ok && e.File == "/caps/nc"
			}, nil)
			out := finish() // the container stayed while its exec was read
			if ex.Caps == nil {
				t.Fatalf("exec: xattr not read: %s", ex.XattrErr)
			}
			// The event agrees with what the container saw.
			if denied := strings.Contains(string(out), "ermission denied"); denied == ex.Applied {
				t.Fatalf("runc run: bind denied %v, but the exec event says applied %v: %s\nexec: %s", denied, ex.Applied, out, jsonOf(ex))
			}
			if tc.nnp { // what this kernel does under no_new_privs is its own; the reason must fit
				if !ex.Applied && ex.Because != "no_new_privs" {
					t.Errorf("not applied under no_new_privs: because %q (%s)", ex.Because, jsonOf(ex))
				}
				return
			}
			if ex.Applied != tc.applied {
				t.Fatalf("exec: applied %v, want %v (%s)", ex.Applied, tc.applied, jsonOf(ex))
			}
			if tc.applied {
				return
			}
			if ex.Because != "rootid" || ex.Caps.RootID != 200000 {
				t.Errorf("exec: because %q, rootid %d; want rootid 200000", ex.Because, ex.Caps.RootID)
			}
			events.Next(t, "the denied bind", func(ev gadget.Event) bool {
				c, ok := ev.(*caps.Check)
				return ok && c.Proc.PID == ex.Proc.PID && c.Denied && c.Syscall == "bind"
			}, nil)
		})
	}
}

// writeSpec writes a runc spec: a user namespace mapping 0-65535 to 100000-165535, uid 1000, and
// a shell whose child binds port 81.
func writeSpec(t *testing.T, bundle string, nnp bool) {
	containertest.RuncSpec(t, bundle, func(spec *specs.Spec) {
		spec.Process.User = specs.User{UID: 1000, GID: 1000}
		spec.Process.NoNewPrivileges = nnp
		spec.Process.Args = []string{"/bin/sh", "-c", containertest.BindPort81}
		spec.Root.Readonly = true
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	})
}

func jsonOf(ev gadget.Event) string {
	var j gadget.JSONLines
	j.Append(ev)
	return string(j.B)
}
