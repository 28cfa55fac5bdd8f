package gadget

import (
	"testing"
	"time"
)

// flushes tells of each Flush, and whether it was the final one.
type flushes chan bool

func (f flushes) Process(Event, func(Event)) {}

func (f flushes) Flush(_ time.Time, final bool, _ func(Event)) { f <- final }

// Every tick of the join's clock asks the processor to flush, however soon after the one before
// it comes. A flush timed from the last one skipped the ticks that came a little early of it,
// about one in two: processors were asked every 1 or 2 s, and cni's --slow missed plugins that
// ended within those 2 s.
func TestEveryTickFlushes(t *testing.T) {
	f := make(flushes)
	j := &joiner{proc: f, emit: func(Event) {}, work: make(chan []byte), done: make(chan struct{})}
	ticks := make(chan time.Time)
	go j.run(ticks)
	next := func(what string) bool {
		t.Helper()
		select {
		case final := <-f:
			return final
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no flush", what)
			return false
		}
	}
	for i := range 3 {
		ticks <- time.Now()
		if next("a tick") {
			t.Fatalf("tick %d: a final flush", i+1)
		}
	}
	close(j.work)
	if !next("the end") {
		t.Fatal("the end's flush is not final")
	}
	<-j.done
}
