package setns

import (
	"context"
	"os"
	"sync/atomic"
	"testing"

	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// Every event is either delivered or counted as lost: overflow the ring buffer while nothing
// reads it, then check that delivered + lost is what was caused, and that the loss is reported.
func TestDropsAreCountedNotSilent(t *testing.T) {
	testutil.RequirePrivileged(t)
	tr, err := New(gadget.Filter{PID: uint32(os.Getpid())}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()

	const calls = 12000 // about twice what the 1 MiB ring buffer holds
	if err := testutil.Storm(calls, ""); err != nil {
		t.Fatal(err)
	}
	byCause, err := tr.Lost()
	lost := byCause.Total()
	if err != nil {
		t.Fatal(err)
	}
	if lost == 0 {
		t.Fatal("nothing was lost: the ring buffer did not overflow, so this test proves nothing")
	}

	var delivered int
	var reported atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // deliver what is buffered, then stop
	if err := tr.Run(ctx, func(e gadget.Event) {
		if c, ok := e.(*Event); ok && c.Setns.Syscall == "unshare" {
			delivered++
		}
	}, func(total uint64) { reported.Store(total) }); err != nil {
		t.Fatal(err)
	}
	if uint64(delivered)+lost != calls {
		t.Errorf("delivered %d + lost %d != %d calls", delivered, lost, calls)
	}
	if reported.Load() != lost {
		t.Errorf("loss reported as %d, counted %d", reported.Load(), lost)
	}
}
