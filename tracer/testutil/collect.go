package testutil

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// Wait is how long a test waits for an event it caused before failing.
const Wait = 10 * time.Second

// Collector runs a tracer's Run loop in the background and hands its events to the test.
type Collector[E any] struct {
	events chan E
	cancel context.CancelFunc
	done   chan error
	stop   sync.Once
}

// Collect starts run (a tracer's Run method bound to its emit callback) and stops it at cleanup.
func Collect[E any](t testing.TB, run func(ctx context.Context, emit func(E)) error) *Collector[E] {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Collector[E]{events: make(chan E, 4096), cancel: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- run(ctx, func(e E) {
			select {
			case c.events <- e:
			default: // the test is not reading; dropping here only hides events it did not ask for
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
	timer := time.NewTimer(Wait)
	defer timer.Stop()
	for {
		select {
		case e := <-c.events:
			if match(e) {
				return e
			}
			if skipped != nil {
				skipped(e)
			}
		case <-timer.C:
			t.Fatalf("no event for %s within %v", what, Wait)
		}
	}
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

// Programs lists the BPF programs loaded in the kernel now: id to name.
func Programs(t testing.TB) map[int]string {
	t.Helper()
	ids := map[int]string{}
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return ids
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		if info, err := p.Info(); err == nil {
			ids[int(id)] = info.Name
		}
		p.Close()
	}
}

// WaitUnloaded fails the test unless, within Wait, every program that list shows was already in
// before. The kernel frees a program shortly after its last reference goes, so this polls.
func WaitUnloaded(t testing.TB, before map[int]string, list func(testing.TB) map[int]string) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		var left []string
		for id, name := range list(t) {
			if _, ok := before[id]; !ok {
				left = append(left, fmt.Sprintf("%d:%s", id, name))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("programs still loaded after %v: %v", Wait, left)
		}
		time.Sleep(50 * time.Millisecond) // polling a kernel list: there is nothing to wait on
	}
}
