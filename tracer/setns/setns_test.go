package setns

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/gadget/gadgettest"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// want is what a case expects of the event it caused.
type want struct {
	syscall   string
	pid       int // the actor
	tid       int // if not 0, the actor thread
	comm      string
	types     []string
	targets   map[string]uint32
	fdKind    string
	targetPID int
	ret       int64 // compared when result is "ok" and ret is not 0 (clone's child pid)
	result    string
}

// procNS is the /proc/PID/ns file that holds the namespace of a type as unshare and setns change
// it: pid and time apply to children.
var procNS = map[string]string{"pid": "pid_for_children", "time": "time_for_children"}

func nsFile(name string) string {
	if f, ok := procNS[name]; ok {
		return f
	}
	return name
}

const allNewNS = unix.CLONE_NEWNS | unix.CLONE_NEWNET | unix.CLONE_NEWPID | unix.CLONE_NEWUSER |
	unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME

func newTracer(t *testing.T, f gadget.Filter) (*gadget.Tracer[gadget.Event], *gadgettest.Collector[*Event]) {
	testutil.RequirePrivileged(t)
	tr, c, _ := startTracer(t, f, nil)
	return tr, c
}

// startTracer loads the gadget and collects its calls and its then events apart.
func startTracer(t *testing.T, f gadget.Filter, r event.Resolver) (*gadget.Tracer[gadget.Event], *gadgettest.Collector[*Event], *gadgettest.Collector[*Then]) {
	tr, err := New(f, r)
	if err != nil {
		t.Fatalf("loading setns gadget: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	thens := make(chan *Then, 1024)
	calls := gadgettest.Collect(t, func(ctx context.Context, emit func(*Event)) error {
		return tr.Run(ctx, func(e gadget.Event) {
			switch e := e.(type) {
			case *Event:
				emit(e)
			case *Then:
				select {
				case thens <- e.Clone().(*Then):
				default: // not read: the test does not look for them
				}
			}
		}, nil)
	})
	then := gadgettest.Collect(t, func(ctx context.Context, emit func(*Then)) error {
		for {
			select {
			case e := <-thens:
				emit(e)
			case <-ctx.Done():
				return nil
			}
		}
	})
	return tr, calls, then
}

// onThread runs f on a thread of its own (namespace changes stay there) and returns its tid.
func onThread(t *testing.T, f func() error) int {
	t.Helper()
	tid, err := testutil.OnOwnThread(f)
	if err != nil {
		t.Fatal(err)
	}
	return tid
}

func setnsPath(path string, nstype int) func() error {
	return func() error {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Setns(fd, nstype)
	}
}

// expectErrno wraps a call that must fail with errno.
func expectErrno(errno unix.Errno, f func() error) func() error {
	return func() error {
		if err := f(); err != errno {
			return fmt.Errorf("got %v, want %v", err, errno)
		}
		return nil
	}
}

func nsenter(t *testing.T, holder int, name string) int {
	t.Helper()
	option := map[string]string{"mnt": "mount", "user": "user", "time": "time"}[name]
	// --preserve-credentials: the user namespace has no uid map to switch to.
	cmd := exec.Command("nsenter", "--preserve-credentials", fmt.Sprintf("--%s=/proc/%d/ns/%s", option, holder, nsFile(name)), "true")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v: %s", cmd, err, out)
	}
	return cmd.Process.Pid
}

// inode is the namespace of a type that unshare or setns would change for pid.
func inode(t *testing.T, pid int, name string) uint32 {
	return testutil.NSInode(t, pid, nsFile(name))
}

func TestSetnsEvents(t *testing.T) {
	_, events := newTracer(t, gadget.Filter{})
	holder := testutil.StartHolder(t, allNewNS)
	self := os.Getpid()

	type testCase struct {
		name     string
		generate func(t *testing.T) want
	}
	var cases []testCase
	for _, ty := range event.NSTypes {
		cases = append(cases, testCase{"unshare " + ty.Name, func(t *testing.T) want {
			h := testutil.StartHolder(t, uintptr(ty.Flag))
			return want{syscall: "unshare", pid: h.Pid, types: []string{ty.Name},
				targets: map[string]uint32{ty.Name: inode(t, h.Pid, ty.Name)}, result: "ok"}
		}})
		cases = append(cases, testCase{"setns " + ty.Name, func(t *testing.T) want {
			w := want{syscall: "setns", types: []string{ty.Name}, fdKind: "nsfs", result: "ok",
				targets: map[string]uint32{ty.Name: inode(t, holder.Pid, ty.Name)}}
			switch ty.Name {
			case "mnt", "user", "time":
				// The kernel refuses these to a multi-threaded process: a single-threaded one does it.
				w.pid, w.comm = nsenter(t, holder.Pid, ty.Name), "nsenter"
			default:
				w.pid = self
				w.tid = onThread(t, setnsPath(fmt.Sprintf("/proc/%d/ns/%s", holder.Pid, nsFile(ty.Name)), int(ty.Flag)))
			}
			return w
		}})
	}
	cases = append(cases,
		testCase{"setns pidfd", func(t *testing.T) want {
			tid := onThread(t, func() error {
				fd, err := unix.PidfdOpen(holder.Pid, 0)
				if err != nil {
					return err
				}
				defer unix.Close(fd)
				return unix.Setns(fd, unix.CLONE_NEWNET|unix.CLONE_NEWUTS|unix.CLONE_NEWIPC)
			})
			return want{syscall: "setns", pid: self, tid: tid, fdKind: "pidfd", targetPID: holder.Pid,
				types: []string{"net", "uts", "ipc"}, result: "ok", targets: map[string]uint32{
					"net": inode(t, holder.Pid, "net"), "uts": inode(t, holder.Pid, "uts"), "ipc": inode(t, holder.Pid, "ipc")}}
		}},
		testCase{"clone", func(t *testing.T) want {
			c := testutil.StartCloned(t, unix.CLONE_NEWUTS|unix.CLONE_NEWIPC|unix.CLONE_NEWNET)
			return want{syscall: "clone", pid: self, targetPID: c.Pid, ret: int64(c.Pid), result: "ok",
				types: []string{"net", "uts", "ipc"}, targets: map[string]uint32{
					"net": inode(t, c.Pid, "net"), "uts": inode(t, c.Pid, "uts"), "ipc": inode(t, c.Pid, "ipc")}}
		}},
		testCase{"clone3", func(t *testing.T) want {
			// CLONE_NEWTIME makes os/exec use clone3.
			c := testutil.StartCloned(t, unix.CLONE_NEWTIME|unix.CLONE_NEWPID|unix.CLONE_NEWUTS)
			return want{syscall: "clone3", pid: self, targetPID: c.Pid, ret: int64(c.Pid), result: "ok",
				types: []string{"pid", "uts", "time"}, targets: map[string]uint32{
					"pid": testutil.NSInode(t, c.Pid, "pid"), "uts": inode(t, c.Pid, "uts"),
					"time": testutil.NSInode(t, c.Pid, "time")}} // the child's own, since it has exec'd
		}},
		testCase{"setns bad fd", func(t *testing.T) want {
			var fd int
			tid := onThread(t, expectErrno(unix.EBADF, func() error {
				var err error
				if fd, err = unix.Open("/dev/null", unix.O_RDONLY, 0); err != nil {
					return err
				}
				unix.Close(fd)
				return unix.Setns(fd, unix.CLONE_NEWNET)
			}))
			return want{syscall: "setns", pid: self, tid: tid, fdKind: "bad", types: []string{"net"},
				targets: map[string]uint32{"net": 0}, result: "EBADF"}
		}},
		testCase{"setns mnt from a threaded process", func(t *testing.T) want {
			tid := onThread(t, expectErrno(unix.EINVAL,
				setnsPath(fmt.Sprintf("/proc/%d/ns/mnt", holder.Pid), unix.CLONE_NEWNS)))
			return want{syscall: "setns", pid: self, tid: tid, fdKind: "nsfs", types: []string{"mnt"},
				targets: map[string]uint32{"mnt": inode(t, holder.Pid, "mnt")}, result: "EINVAL"}
		}},
		testCase{"setns nstype that does not match the fd", func(t *testing.T) want {
			tid := onThread(t, expectErrno(unix.EINVAL,
				setnsPath(fmt.Sprintf("/proc/%d/ns/net", holder.Pid), unix.CLONE_NEWUTS)))
			return want{syscall: "setns", pid: self, tid: tid, fdKind: "nsfs", types: []string{"net"},
				targets: map[string]uint32{"net": inode(t, holder.Pid, "net")}, result: "EINVAL"}
		}},
		testCase{"setns on a file that is no namespace", func(t *testing.T) want {
			tid := onThread(t, expectErrno(unix.EINVAL, setnsPath("/dev/null", 0)))
			return want{syscall: "setns", pid: self, tid: tid, fdKind: "other", result: "EINVAL",
				targets: map[string]uint32{}}
		}},
	)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.generate(t)
			ev := events.Next(t, fmt.Sprintf("%s by pid %d", w.syscall, w.pid), func(e *Event) bool {
				return e.Setns.Syscall == w.syscall && int(e.Proc.PID) == w.pid && (w.tid == 0 || int(e.Proc.TID) == w.tid)
			}, nil)
			validate(t, ev, w)
		})
	}
}

func validate(t *testing.T, ev *Event, w want) {
	t.Helper()
	d := ev.Setns
	if ev.Type != Type {
		t.Errorf("type = %q", ev.Type)
	}
	if w.comm != "" && ev.Proc.Comm != w.comm {
		t.Errorf("comm = %q, want %q", ev.Proc.Comm, w.comm)
	}
	if d.Result != w.result {
		t.Errorf("result = %q (ret %d), want %q", d.Result, d.Ret, w.result)
	}
	if w.ret != 0 && d.Ret != w.ret {
		t.Errorf("ret = %d, want %d", d.Ret, w.ret)
	}
	if !slices.Equal(d.NSTypes, w.types) {
		t.Errorf("ns_types = %v, want %v", d.NSTypes, w.types)
	}
	if !maps.Equal(d.Targets.Map(), w.targets) {
		t.Errorf("targets = %v, want %v", d.Targets, w.targets)
	}
	if d.FDKind != w.fdKind {
		t.Errorf("fd_kind = %q, want %q", d.FDKind, w.fdKind)
	}
	if int(d.TargetPID) != w.targetPID {
		t.Errorf("target_pid = %d, want %d", d.TargetPID, w.targetPID)
	}
	if ev.Time.IsZero() || ev.NS.Mnt == 0 || ev.NS.Net == 0 || ev.NS.User == 0 {
		t.Errorf("header not filled: %+v", ev.Header)
	}
}
