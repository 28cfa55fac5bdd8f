package caps_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/caps"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/gadget/gadgettest"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

const bindLow = `import socket; socket.socket().bind(("127.0.0.1", 81)); print("bound")`

func open(t *testing.T, params gadget.Params) *gadgettest.Collector[gadget.Event] {
	t.Helper()
	testutil.RequirePrivileged(t)
	g, err := gadget.Open(&caps.Gadget, gadget.Options{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return gadgettest.Collect(t, func(ctx context.Context, emit func(gadget.Event)) error {
		return g.Run(ctx, nil, emit, nil, nil)
	})
}

// python copies python3 to path with file capabilities set by setcap args.
func python(t *testing.T, path string, setcap ...string) string {
	t.Helper()
	src, err := filepath.EvalSymlinks("/usr/bin/python3")
	if err != nil {
		t.Skip("no python3")
	}
	if out, err := exec.Command("cp", src, path).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	if out, err := exec.Command("setcap", append(setcap, path)...).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v: %s", err, out)
	}
	return path
}

// run runs a command to its end and returns its pid and output.
func run(t *testing.T, name string, args ...string) (uint32, string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, _ := cmd.CombinedOutput()
	return uint32(cmd.Process.Pid), string(out)
}

// inUserNS runs file as uid 1000 in a user namespace mapping 0-65535 to 100000-165535.
func inUserNS(t *testing.T, file string) (uint32, string) {
	return run(t, "unshare", "--user", "--net", "--map-users=100000,0,65536", "--map-groups=100000,0,65536",
		"--setuid", "1000", "--setgid", "1000", file, "-c", bindLow)
}

// asUser runs file as uid 1000 in the initial user namespace.
func asUser(t *testing.T, file string) (uint32, string) {
	return run(t, "unshare", "--setuid", "1000", "--setgid", "1000", file, "-c", bindLow)
}

// The story: a v3 xattr whose rootid is not root in the caller's user namespace is ignored at
// exec, and the denied bind that follows points at that exec. Beside it: the same with a rootid
// that is root there, a v2 file that applies, and a v2 file on a nosuid mount.
func TestFileCapsIgnoredAndJoined(t *testing.T) {
	events := open(t, nil)
	dir := t.TempDir()
	nosuid := filepath.Join(dir, "nosuid")
	os.Mkdir(nosuid, 0o755)
	if err := unix.Mount("tmpfs", nosuid, "tmpfs", unix.MS_NOSUID, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(nosuid, unix.MNT_DETACH) })
	// uid 1000, and 101000 in the user namespace, exec from here.
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)

	type want struct {
		applied bool
		because string
		bound   bool
	}
	for _, tc := range []struct {
		name string
		file string
		run  func(*testing.T, string) (uint32, string)
		want want
	}{
		{"rootid of this user namespace", python(t, filepath.Join(dir, "gw-ok"), "-n", "100000", "cap_net_bind_service=ep"), inUserNS, want{true, "", true}},
		{"rootid of another", python(t, filepath.Join(dir, "gw-bad"), "-n", "200000", "cap_net_bind_service=ep"), inUserNS, want{false, "rootid", false}},
		{"v2 applied", python(t, filepath.Join(dir, "gw-v2"), "cap_net_bind_service=ep"), asUser, want{true, "", true}},
		{"v2 on nosuid", python(t, filepath.Join(nosuid, "gw-nosuid"), "cap_net_bind_service=ep"), asUser, want{false, "nosuid", false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pid, out := tc.run(t, tc.file)
			if bound := strings.Contains(out, "bound"); bound != tc.want.bound {
				t.Fatalf("bound = %v, want %v: %s", bound, tc.want.bound, out)
			}
			var ex *caps.Exec
			// Events come in order: the exec, then the process's checks; the next exec is another
			// test's. Every cause seen must be the refused exec's.
			var denied *caps.Check
			events.Next(t, "the exec of "+tc.file, func(ev gadget.Event) bool {
				if e, ok := ev.(*caps.Exec); ok && e.Proc.PID == pid && e.File == tc.file {
					ex = e
					return true
				}
				return false
			}, nil)
			if ex.Caps == nil || ex.Applied != tc.want.applied || ex.Because != tc.want.because {
				t.Fatalf("exec: xattr %+v (%s), applied %v because %q; want %v %q", ex.Caps, ex.XattrErr, ex.Applied, ex.Because, tc.want.applied, tc.want.because)
			}
			if tc.want.because == "rootid" && (ex.Caps.Version != 3 || ex.Caps.RootID != 200000) {
				t.Errorf("xattr %+v, want v3 rootid 200000", ex.Caps)
			}
			// The bind's check: denied when not applied, with the exec as cause, and absent (the
			// capability is there) when applied. A marker check from this test ends the wait.
			marker, _ := run(t, "unshare", "--uts", "true")
			events.Next(t, "the marker's check", func(ev gadget.Event) bool {
				return ev.Head().Proc.PID == marker
			}, func(ev gadget.Event) {
				c, ok := ev.(*caps.Check)
				if !ok {
					return
				}
				if c.Cause != nil && (c.Proc.PID != pid || tc.want.applied) {
					t.Errorf("invented cause on %s check of pid %d: %+v", c.Syscall, c.Proc.PID, c.Cause)
				}
				if c.Proc.PID == pid && c.Denied && c.Syscall == "bind" {
					denied = c
				}
			})
			switch {
			case tc.want.bound && denied != nil:
				t.Errorf("a denied bind check in a process that bound: %+v", denied)
			case !tc.want.bound && denied == nil:
				t.Error("no denied check in bind")
			case tc.want.because == "rootid":
				if denied.Cause == nil || denied.Cause.Kind != "exec" || denied.Cause.PID != pid || denied.Cause.Attrs[0].Value != tc.file {
					t.Errorf("denied bind: cause %+v, want the exec of %s", denied.Cause, tc.file)
				}
			}
		})
	}
}

// --denied and --unique drop in the kernel: a first process's allowed check, then a second's
// that --unique suppresses, then a denied marker; only what the options let through arrives
// before the marker.
func TestDeniedAndUniqueInTheKernel(t *testing.T) {
	for _, tc := range []struct {
		param         string
		first, second bool // whether each allowed check must arrive
	}{
		{caps.ParamDenied, false, false},
		{caps.ParamUnique, true, false},
	} {
		t.Run(tc.param, func(t *testing.T) {
			events := open(t, gadget.Params{tc.param: true})
			// A mount namespace of its own, so that no other process made these checks first.
			holder := testutil.StartHolder(t, unix.CLONE_NEWNS)
			defer holder.Stop()
			in := func(args ...string) uint32 {
				pid, _ := run(t, "nsenter", append([]string{"-t", strconv.Itoa(holder.Pid), "-m", "--"}, args...)...)
				return pid
			}
			first, second := in("unshare", "--uts", "true"), in("unshare", "--uts", "true")
			marker := in("setpriv", "--reuid", "1000", "unshare", "--uts", "true")
			seen := map[uint32]bool{}
			events.Next(t, "the denied marker", func(ev gadget.Event) bool {
				c, ok := ev.(*caps.Check)
				return ok && c.Proc.PID == marker && c.Denied && c.Syscall == "unshare"
			}, func(ev gadget.Event) {
				if c, ok := ev.(*caps.Check); ok && c.Syscall == "unshare" && !c.Denied {
					seen[c.Proc.PID] = true
				}
			})
			if seen[first] != tc.first || seen[second] != tc.second {
				t.Errorf("allowed unshare checks arrived: first %v second %v; want %v %v", seen[first], seen[second], tc.first, tc.second)
			}
		})
	}
}
