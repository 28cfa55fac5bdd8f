package oom_test

import (
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/oom"
)

// runtime is a container index that relays the task events a test sends.
type runtime struct {
	event.Resolver
	sub func(container.TaskEvent)
}

func (r *runtime) SubscribeTasks(f func(container.TaskEvent)) func() {
	r.sub = f
	return func() { r.sub = nil }
}

// Kills are joined to their containers' exits without privileges: an exit after the runtime's
// OOM, an exit relayed before the kill was read, a kill in a container of another runtime
// (nothing to join), and a kill with no exit by the stop (given up on).
func TestExitJoin(t *testing.T) {
	killedAt := time.Unix(1000, 0)
	exitedAt := killedAt.Add(20 * time.Millisecond)
	kill := func(id, rt string, attempt uint32) *oom.Event {
		return &oom.Event{Header: event.Header{Time: killedAt, Type: oom.Type, Kind: "kill", Proc: event.Proc{PID: 42, Comm: "tail"},
			Container: &event.Container{ID: id, Runtime: rt, Pod: "p", Attempt: attempt}}}
	}
	cases := []struct {
		name      string
		exitFirst bool // the runtime's events are relayed before the kill is read
		kill      *oom.Event
		tasks     []container.TaskEvent
		want      []oom.Exit // Header left out
	}{
		{"exit after the runtime's OOM", false, kill("a", "containerd", 2), []container.TaskEvent{
			{ContainerID: "b", Exit: true, ExitStatus: 0, ExitedAt: exitedAt},
			{ContainerID: "a", OOM: true},
			{ContainerID: "a", Exit: true, ExitStatus: 137, ExitedAt: exitedAt},
		}, []oom.Exit{{KilledAt: killedAt, ExitStatus: 137, ExitedAt: exitedAt, RuntimeOOM: true, RestartCount: 2}}},
		{"the exit joined before the kill", true, kill("a", "containerd", 0), []container.TaskEvent{
			{ContainerID: "a", OOM: true},
			{ContainerID: "a", Exit: true, ExitStatus: 137, ExitedAt: exitedAt},
		}, []oom.Exit{{KilledAt: killedAt, ExitStatus: 137, ExitedAt: exitedAt, RuntimeOOM: true}}},
		{"another runtime's container", false, kill("a", "cgroup", 0), []container.TaskEvent{
			{ContainerID: "a", Exit: true, ExitStatus: 137, ExitedAt: exitedAt},
		}, nil},
		{"no exit by the stop", false, kill("a", "containerd", 0), []container.TaskEvent{
			{ContainerID: "a", OOM: true},
		}, []oom.Exit{{KilledAt: killedAt, GaveUp: "tracing stopped"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			proc, err := oom.Gadget.NewProcessor(&gadget.Gadget{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			rt := &runtime{}
			proc.(gadget.ResolverUser).UseResolver(rt)
			var got []gadget.Event
			emit := func(e gadget.Event) { got = append(got, e.Clone()) }
			if !tc.exitFirst {
				proc.Process(tc.kill, emit)
			}
			for _, te := range tc.tasks {
				rt.sub(te)
			}
			if tc.exitFirst {
				proc.Process(tc.kill, emit)
			}
			proc.Flush(time.Now(), true, emit)
			if rt.sub != nil {
				t.Error("the processor did not unsubscribe at the stop")
			}
			if len(got) == 0 || got[0].Head().Kind != "kill" {
				t.Fatalf("first event %+v, want the kill", got)
			}
			var exits []oom.Exit
			for _, e := range got[1:] {
				x, ok := e.(*oom.Exit)
				if !ok {
					t.Fatalf("event %T after the kill, want an exit", e)
				}
				if x.Kind != oom.KindExit || x.Proc.PID != 42 || x.Container.ID != "a" {
					t.Errorf("exit's header %+v, want the kill's victim, kind exit", x.Header)
				}
				x.Header = event.Header{}
				exits = append(exits, *x)
			}
			if len(exits) != len(tc.want) {
				t.Fatalf("exits %+v, want %+v", exits, tc.want)
			}
			for i := range exits {
				if exits[i] != tc.want[i] {
					t.Errorf("exit %+v, want %+v", exits[i], tc.want[i])
				}
			}
		})
	}
}
