// Package gadgettest helps tests of gadgets: collecting a tracer's events, counting what decoding
// and writing one allocates, and the checks every registered gadget must pass.
package gadgettest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// Collector runs a tracer's Run loop in the background and hands its events to the test.
type Collector[E any] struct {
	mu      sync.Mutex
	queue   []E
	dropped int           // events beyond maxQueued, named when a wait fails
	wake    chan struct{} // a token: the queue may have grown
	cancel  context.CancelFunc
	done    chan error
	stop    sync.Once
}

// maxQueued bounds what a test that is not reading keeps: a gadget that sees the whole node on a
// busy machine (a CI runner compiling) writes thousands of events a second, and a fixed channel
// of 4096 dropped the very event a test was about to wait for.
const maxQueued = 1 << 20

// Collect starts run (a tracer's Run method bound to its emit callback) and stops it at cleanup.
// Events that decoders reuse (gadget events) are cloned before they are kept.
func Collect[E any](t testing.TB, run func(ctx context.Context, emit func(E)) error) *Collector[E] {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Collector[E]{wake: make(chan struct{}, 1), cancel: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- run(ctx, func(e E) {
			if ev, ok := any(e).(gadget.Event); ok {
				e = ev.Clone().(E)
			}
			c.mu.Lock()
			if len(c.queue) < maxQueued {
				c.queue = append(c.queue, e)
			} else {
				c.dropped++
			}
			c.mu.Unlock()
			select {
			case c.wake <- struct{}{}:
			default: // a token is there already
			}
		})
	}()
	t.Cleanup(func() { c.Stop(t) })
	return c
}

// Next returns the first event, in order of arrival, for which match is true, skipping others
// (passed to skipped, if not nil). It fails the test after Wait.
func (c *Collector[E]) Next(t testing.TB, what string, match func(E) bool, skipped func(E)) E {
	t.Helper()
	timer := time.NewTimer(testutil.Wait)
	defer timer.Stop()
	for {
		e, ok, dropped := c.pop()
		if ok {
			if match(e) {
				return e
			}
			if skipped != nil {
				skipped(e)
			}
			continue
		}
		select {
		case <-c.wake:
		case <-timer.C:
			t.Fatalf("no event for %s within %v (%d events not kept: the test read too late)", what, testutil.Wait, dropped)
		}
	}
}

// pop takes the oldest event kept, if any, and says how many were dropped.
func (c *Collector[E]) pop() (e E, ok bool, dropped int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return e, false, c.dropped
	}
	e = c.queue[0]
	var zero E
	c.queue[0] = zero // let the collector free it
	c.queue = c.queue[1:]
	return e, true, c.dropped
}

// Stop ends the Run loop and fails the test if it returned an error.
func (c *Collector[E]) Stop(t testing.TB) {
	c.stop.Do(func() {
		c.cancel()
		if err := <-c.done; err != nil {
			t.Errorf("tracer run: %v", err)
		}
	})
}

// AllocsPerEvent is how many allocations decoding raw with dec and writing the event as a JSON
// line and, for a streaming gadget, as a table row take, on average over runs. Every other run
// is of another task in other namespaces, so that the JSON writer formats the actor as often as
// it copies it.
func AllocsPerEvent(t testing.TB, d *gadget.Descriptor, dec *gadget.Decoder, raw []byte) float64 {
	j := gadget.JSONLines{JSON: encode.JSON{B: make([]byte, 0, 4096)}}
	row := encode.Row{B: make([]byte, 0, 4096), Columns: d.TableColumns()}
	raw = slices.Clone(raw)
	h := (*event.Raw)(unsafe.Pointer(&raw[0]))
	runs := 0
	return testing.AllocsPerRun(100, func() {
		if runs++; runs%2 == 0 {
			h.Pid ^= 1
			h.Ns[0] ^= 1
		}
		ev, err := dec.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		j.B = j.B[:0]
		j.Append(ev)
		if d.Mode == gadget.Stream {
			gadget.AppendRow(&row, ev)
		}
	})
}
