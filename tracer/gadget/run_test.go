package gadget_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/setns"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// stalled is a processor whose first event holds it until release is closed, as a join doing
// I/O for an event (a holders snapshot, a stat) holds it.
type stalled struct {
	release chan struct{}
	held    bool
}

func (s *stalled) Process(ev gadget.Event, emit func(gadget.Event)) {
	if !s.held {
		s.held = true
		<-s.release
	}
	emit(ev)
}

func (s *stalled) Flush(time.Time, bool, func(gadget.Event)) {}

// burst is a sixth of what the default ring buffer holds.
const burst = 1000

// runStalled runs setns with a processor that stalls on its first event while bursts of unshares
// are made, each once the reader has read the one before out of the ring buffer (it fails when
// the reader does not), and returns the unshares delivered and what was counted lost.
func runStalled(t *testing.T, bursts int) (delivered uint64, lost gadget.Lost) {
	t.Helper()
	testutil.RequirePrivileged(t)
	release := make(chan struct{})
	d := setns.Gadget
	d.NewProcessor = func(*gadget.Gadget, gadget.Params) (gadget.Processor, error) { return &stalled{release: release}, nil }
	g, err := gadget.Open(&d, gadget.Options{Filter: gadget.Filter{PID: uint32(os.Getpid())}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- g.Run(ctx, nil, func(ev gadget.Event) {
			if ev.(*setns.Event).Setns.Syscall == "unshare" {
				delivered++
			}
		}, nil, nil)
	}()
	defer func() {
		close(release)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if lost, err = g.Lost(); err != nil {
			t.Fatal(err)
		}
	}()
	for i := range bursts {
		if err := testutil.Storm(burst, ""); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(testutil.Wait); g.Backlog() > 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("burst %d: %d bytes still unread after %v: the stalled join stalls the reader", i, g.Backlog(), testutil.Wait)
				return
			}
		}
	}
	return // delivered and lost are set by the deferred stop
}

// A join that stalls does not stall the reader: twice what the ring buffer holds waits in the
// join's queue, and nothing is lost.
func TestJoinStallLosesNothing(t *testing.T) {
	const bursts = 12
	delivered, lost := runStalled(t, bursts)
	if delivered != bursts*burst || lost.Total() != 0 {
		t.Errorf("%d of %d unshares delivered, lost: %v (%d)", delivered, bursts*burst, lost, lost.Total())
	}
}

// What does not fit in the join's queue is counted, as join_queue_full: delivered + lost is every
// call, and the ring buffer loses nothing.
func TestJoinQueueFullIsCounted(t *testing.T) {
	const bursts = 20 // more than the queue's 16384 records
	delivered, lost := runStalled(t, bursts)
	if lost[gadget.LostJoinQueueFull] == 0 || lost[gadget.LostRingFull] != 0 || delivered+lost.Total() != bursts*burst {
		t.Errorf("%d of %d unshares delivered, lost: %v: want some join_queue_full, no ring_full, and delivered + lost = calls",
			delivered, bursts*burst, lost)
	}
}
