package netns_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/gadget/gadgettest"
	"github.com/ghostwatch/ghostwatch/tracer/netns"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// The lifecycle of namespaces made by the test's own processes: each case makes a namespace
// live and die its way, and the events are waited for with the collector's deadline.
func TestTrace(t *testing.T) {
	testutil.RequirePrivileged(t)
	g, err := gadget.Open(&netns.Gadget, gadget.Options{Params: gadget.Params{netns.ParamLinger: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	events := gadgettest.Collect(t, func(ctx context.Context, emit func(gadget.Event)) error {
		return g.Run(ctx, nil, emit, nil, nil)
	})
	next := func(t *testing.T, kind string, inode uint32) *netns.Event {
		t.Helper()
		return events.Next(t, kind+" of "+fmt.Sprint(inode), func(ev gadget.Event) bool {
			e, ok := ev.(*netns.Event)
			return ok && e.Header.Kind == kind && e.NetNS == inode
		}, nil).(*netns.Event)
	}
	// Where fexit on copy_net_ns attaches, creations are the kernel's.
	created := func(how string) string {
		if g.Kind(netns.HookCreated) != "" {
			return "kernel"
		}
		return how
	}
	for _, tc := range []struct {
		name     string
		generate func(t *testing.T) (inode uint32, pid int)
		validate func(t *testing.T, inode uint32, pid int)
	}{
		{"unshare-then-exit", func(t *testing.T) (uint32, int) {
			h := testutil.StartHolder(t, unix.CLONE_NEWNET)
			inode := testutil.NSInode(t, h.Pid, "net")
			h.Stop()
			return inode, h.Pid
		}, func(t *testing.T, inode uint32, pid int) {
			if e := next(t, "created", inode); e.How != created("unshare") || e.Proc.PID != uint32(pid) {
				t.Errorf("created by %s (pid %d), want %s by pid %d", e.How, e.Proc.PID, created("unshare"), pid)
			}
			if e := next(t, "empty", inode); e.How != "exit" || e.Lived <= 0 {
				t.Errorf("empty by %s after %v, want by exit after its creation", e.How, e.Lived)
			}
			if g.Kind(netns.HookDestroyed) == "" {
				return // this kernel's teardown is not traced
			}
			if e := next(t, "destroyed", inode); e.Lived <= 0 {
				t.Errorf("destroyed after %v, want after its creation", e.Lived)
			}
		}},
		{"clone-then-exit", func(t *testing.T) (uint32, int) {
			h := testutil.StartCloned(t, unix.CLONE_NEWNET)
			inode := testutil.NSInode(t, h.Pid, "net")
			h.Stop()
			return inode, h.Pid
		}, func(t *testing.T, inode uint32, pid int) {
			e := next(t, "created", inode)
			if e.How != created("clone") || (e.How == "clone" && e.Child != uint32(pid)) {
				t.Errorf("created by %s (child %d), want %s of child %d", e.How, e.Child, created("clone"), pid)
			}
			next(t, "empty", inode)
		}},
		{"setns-away", func(t *testing.T) (uint32, int) {
			cmd := exec.Command("unshare", "--net", "sh", "-c",
				`readlink /proc/self/ns/net; exec nsenter --net=/proc/`+fmt.Sprint(os.Getpid())+`/ns/net cat`)
			h, line := testutil.StartProcess(t, cmd)
			var inode uint32
			if _, err := fmt.Sscanf(line, "net:[%d]", &inode); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			return inode, h.Pid
		}, func(t *testing.T, inode uint32, pid int) {
			if e := next(t, "empty", inode); e.How != "setns" || e.Proc.Comm != "nsenter" {
				t.Errorf("empty by %s in %s, want by setns in nsenter", e.How, e.Proc.Comm)
			}
		}},
		{"lingering-then-destroyed", func(t *testing.T) (uint32, int) {
			h := testutil.StartHolder(t, unix.CLONE_NEWNET)
			inode := testutil.NSInode(t, h.Pid, "net")
			f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", h.Pid))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cmd := exec.Command("sh", "-c", "echo ready; exec cat")
			cmd.ExtraFiles = []*os.File{f}
			holder, _ := testutil.StartProcess(t, cmd)
			h.Stop()
			next(t, "empty", inode)
			return inode, holder.Pid
		}, func(t *testing.T, inode uint32, pid int) {
			e := next(t, "lingering", inode)
			if e.Holders == nil || len(e.Holders.Holders) != 1 || e.Holders.Holders[0].PID != uint32(pid) ||
				e.Holders.Holders[0].FD != 3 || e.Empty < 300*time.Millisecond {
				t.Fatalf("lingering %+v after %v, want held by pid %d fd 3 after the linger", e.Holders, e.Empty, pid)
			}
			// Its holder goes: the kernel frees it (seen by fentry on __put_net, or through the
			// id notifications where that is refused).
			if err := unix.Kill(pid, unix.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if e := next(t, "destroyed", inode); e.Empty < 300*time.Millisecond || e.Lived < e.Empty {
				t.Errorf("destroyed %v after becoming empty, %v after its creation", e.Empty, e.Lived)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inode, pid := tc.generate(t)
			tc.validate(t, inode, pid)
		})
	}
}
