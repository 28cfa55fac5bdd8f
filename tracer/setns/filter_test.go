package setns

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// A filtered-out call is caused first and a wanted one after it: when the wanted event arrives,
// the other would have arrived before it, had the kernel not dropped it.
func TestFilters(t *testing.T) {
	for _, tc := range []struct {
		name   string
		filter gadget.Filter
		wanted func(t *testing.T) (pid int)
	}{
		{"pid", gadget.Filter{PID: uint32(os.Getpid())}, func(t *testing.T) int {
			onThread(t, expectErrno(unix.EBADF, func() error { return unix.Setns(-1, 0) }))
			return os.Getpid()
		}},
		{"comm", gadget.Filter{Comm: "nsenter"}, func(t *testing.T) int {
			return nsenter(t, os.Getpid(), "time")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, events := newTracer(t, tc.filter)
			other := exec.Command("unshare", "--uts", "true")
			if out, err := other.CombinedOutput(); err != nil {
				t.Fatalf("unshare: %v: %s", err, out)
			}
			pid := tc.wanted(t)
			events.Next(t, "the wanted call", func(e *Event) bool { return int(e.Proc.PID) == pid },
				func(e *Event) {
					t.Errorf("filtered-out event arrived: %s by %s[%d]", e.Setns.Syscall, e.Proc.Comm, e.Proc.PID)
				})
		})
	}
}

// Close must leave no program of the gadget loaded.
func TestCloseUnloadsEverything(t *testing.T) {
	testutil.RequirePrivileged(t)
	before := testutil.Programs(t)
	tr, err := New(gadget.Filter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	during := testutil.Programs(t)
	added := 0
	for id := range during {
		if _, ok := before[id]; !ok {
			added++
		}
	}
	if added == 0 {
		tr.Close()
		t.Fatal("no program was loaded: the check below could not fail")
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	testutil.WaitUnloaded(t, before, testutil.Programs)
}
