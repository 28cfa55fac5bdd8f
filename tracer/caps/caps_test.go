package caps_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/caps"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/gadget/gadgettest"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

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

// nc copies busybox to dir/nc (run as its nc applet) with file capabilities fc.
func nc(t *testing.T, dir string, fc caps.FileCaps) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nc")
	if out, err := exec.Command("cp", "/bin/busybox", path).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	if err := unix.Setxattr(path, "security.capability", fc.Encode(), 0); err != nil {
		t.Fatal(err)
	}
	return path
}

// listen runs file as nc listening on port 81, as uid 1000, in a user namespace mapping 0-65535
// to 100000-165535 when userNS, and returns whether the bind was denied: nc exits, refused, or
// is stopped once its port listens. (A listener stopped after a fixed second could be stopped
// before its bind on a slow machine: not denied.)
func listen(t *testing.T, file string, userNS bool) (denied bool) {
	t.Helper()
	cmd := exec.Command(file, "-l", "-p", "81")
	attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
	if userNS {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	}
	cmd.SysProcAttr = attr
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.After(testutil.Wait)
	for {
		select {
		case <-exited:
			return strings.Contains(out.String(), "ermission denied")
		case <-deadline:
			cmd.Process.Kill()
			<-exited
			t.Fatalf("%s neither bound nor was refused within %v: %s", file, testutil.Wait, out.String())
		case <-time.After(10 * time.Millisecond): // a port listening gives no sign but its table
		}
		for _, table := range []string{"tcp", "tcp6"} {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", cmd.Process.Pid, table)); bytes.Contains(b, []byte(":0051 ")) {
				cmd.Process.Kill()
			}
		}
	}
}

// The story: a v3 xattr whose rootid is not root in the caller's user namespace is ignored at
// exec, and the denied bind that follows points at that exec. Beside it: the same with a rootid
// that is root there, a v2 file that applies, and a v2 file on a nosuid mount.
func TestFileCapsIgnoredAndJoined(t *testing.T) {
	events := open(t, nil)
	// tmpfs mounts of our own: they hold xattrs wherever the test runs, and uid 1000 (101000 in
	// the user namespace) can exec from them.
	top := t.TempDir()
	os.Chmod(top, 0o755)
	os.Chmod(filepath.Dir(top), 0o755)
	mount := func(name string, flags uintptr) string {
		dir := filepath.Join(top, name)
		os.Mkdir(dir, 0o755)
		if err := unix.Mount("tmpfs", dir, "tmpfs", flags, "mode=0755"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
		return dir
	}
	dir, nosuid := mount("files", 0), mount("nosuid", unix.MS_NOSUID)
	const bind = 1 << 10 // CAP_NET_BIND_SERVICE

	for _, tc := range []struct {
		name    string
		file    string
		userNS  bool
		applied bool
		because string
	}{
		{"rootid of this user namespace", nc(t, filepath.Join(dir, "ok"), caps.FileCaps{Version: 3, RootID: 100000, Permitted: bind, Effective: true}), true, true, ""},
		{"rootid of another", nc(t, filepath.Join(dir, "bad"), caps.FileCaps{Version: 3, RootID: 200000, Permitted: bind, Effective: true}), true, false, "rootid"},
		{"v2 applied", nc(t, filepath.Join(dir, "v2"), caps.FileCaps{Version: 2, Permitted: bind, Effective: true}), false, true, ""},
		{"v2 on nosuid", nc(t, nosuid, caps.FileCaps{Version: 2, Permitted: bind, Effective: true}), false, false, "nosuid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if denied := listen(t, tc.file, tc.userNS); denied == tc.applied {
				t.Fatalf("bind denied %v, but the file caps should be applied %v", denied, tc.applied)
			}
			// Events come in order: the exec, then the process's checks. Every cause seen must
			// be the refused exec's.
			var ex *caps.Exec
			events.Next(t, "the exec of "+tc.file, func(ev gadget.Event) bool {
				if e, ok := ev.(*caps.Exec); ok && e.File == tc.file {
					ex = e
					return true
				}
				return false
			}, nil)
			if ex.Caps == nil || ex.Applied != tc.applied || ex.Because != tc.because {
				t.Fatalf("exec: xattr %+v (%s), applied %v because %q; want %v %q", ex.Caps, ex.XattrErr, ex.Applied, ex.Because, tc.applied, tc.because)
			}
			if tc.because == "rootid" && (ex.Caps.Version != 3 || ex.Caps.RootID != 200000) {
				t.Errorf("xattr %+v, want v3 rootid 200000", ex.Caps)
			}
			// The bind's check: denied when not applied, with the exec as cause when the reason
			// is the rootid, and absent (the capability is there) when applied. A marker check
			// from this test ends the wait.
			marker, _ := run(t, "unshare", "--uts", "true")
			var denied *caps.Check
			events.Next(t, "the marker's check", func(ev gadget.Event) bool {
				return ev.Head().Proc.PID == marker
			}, func(ev gadget.Event) {
				c, ok := ev.(*caps.Check)
				if !ok {
					return
				}
				if c.Cause != nil && (c.Proc.PID != ex.Proc.PID || tc.applied) {
					t.Errorf("invented cause on %s check of pid %d: %+v", c.Syscall, c.Proc.PID, c.Cause)
				}
				if c.Proc.PID == ex.Proc.PID && c.Denied && c.Syscall == "bind" {
					denied = c
				}
			})
			switch {
			case tc.applied && denied != nil:
				t.Errorf("a denied bind check in a process that bound: %+v", denied)
			case !tc.applied && denied == nil:
				t.Error("no denied check in bind")
			case !tc.applied:
				if denied.Cause == nil || denied.Cause.Kind != "exec" || denied.Cause.PID != ex.Proc.PID || denied.Cause.Attrs[0].Value != tc.file {
					t.Errorf("denied bind: cause %+v, want the exec of %s", denied.Cause, tc.file)
				}
			}
		})
	}
}

// run runs a command to its end and returns its pid and output.
func run(t *testing.T, name string, args ...string) (uint32, string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil {
		t.Fatalf("%s: %v", name, err)
	}
	return uint32(cmd.Process.Pid), string(out)
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
				pid, _ := run(t, "nsenter", append([]string{"-t", strconv.Itoa(holder.Pid), "-m"}, args...)...)
				return pid
			}
			first, second := in("--", "unshare", "--uts", "true"), in("--", "unshare", "--uts", "true")
			marker := in("-S", "1000", "-G", "1000", "--", "unshare", "--uts", "true")
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

// A capset that drops a capability from the effective set, on a thread of its own.
func TestCapset(t *testing.T) {
	events := open(t, nil)
	const netRaw = 13
	tid, err := testutil.OnOwnThread(func() error {
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			return err
		}
		data[0].Effective &^= 1 << netRaw
		return unix.Capset(&hdr, &data[0])
	})
	if err != nil {
		t.Fatal(err)
	}
	events.Next(t, "the capset", func(ev gadget.Event) bool {
		c, ok := ev.(*caps.Capset)
		if !ok || c.Proc.TID != uint32(tid) {
			return false
		}
		if c.Result != "ok" || c.Old.Effective&(1<<netRaw) == 0 || c.New.Effective&(1<<netRaw) != 0 ||
			c.New.Permitted != c.Old.Permitted {
			t.Errorf("capset: %s", jsonOf(c))
		}
		return true
	}, nil)
}
