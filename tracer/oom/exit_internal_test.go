package oom

import (
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

type taskSource struct {
	event.Resolver
	sub func(container.TaskEvent)
}

func (s *taskSource) SubscribeTasks(f func(container.TaskEvent)) func() {
	s.sub = f
	return func() {}
}

// A task event the joiner has no room for is counted as the gadget's loss (forgotten), which the
// trace summary and the agent's metrics show: the joiner is held inside its clock while more
// events come than its queue holds.
func TestFullJoinQueueCountedForgotten(t *testing.T) {
	g := &gadget.Gadget{}
	p, err := Gadget.NewProcessor(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	x := p.(*exits)
	src := &taskSource{}
	x.UseResolver(src)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	x.j.now = func() time.Time { // set before the first event is sent: the send orders it
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		return time.Now()
	}
	src.sub(container.TaskEvent{ContainerID: "a", OOM: true}) // taken, then held in now
	<-entered
	for range queue + 3 {
		src.sub(container.TaskEvent{ContainerID: "b", Exit: true})
	}
	close(release)
	x.Flush(time.Now(), true, func(gadget.Event) {})
	if l, err := g.Lost(); err != nil || l[gadget.LostForgotten] != 3 || l.Total() != 3 {
		t.Errorf("lost %v (%v), want 3 forgotten", l, err)
	}
}
