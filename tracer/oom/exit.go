package oom

import (
	"sync"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

// KindExit is the derived event that follows a kill: the exit of the victim's container, as the
// runtime reported it, or why none was joined.
const KindExit = "exit"

// ExitWait is how long a kill waits for its container's exit: a victim that was not the
// container's init leaves it running.
const ExitWait = time.Minute

var exitFields = []gadget.Field{
	{Name: "exit_status", Meaning: "the container's exit status, from the runtime's TaskExit (137: SIGKILL), and `exited_at`"},
	{Name: "killed_at", Meaning: "the time of the kill this exit follows (the event's `proc` is that kill's victim)"},
	{Name: "runtime_oom", Meaning: "the runtime reported the container out of memory too (containerd's TaskOOM)"},
	{Name: "restart_count", Meaning: "the kubelet's restart count of the container that exited (the CRI annotation `io.kubernetes.container.restartCount`): its next start is restart_count+1; absent outside Kubernetes"},
	{Name: "gave_up", Meaning: "instead of the fields above: why no exit was joined (`no exit within 1m0s`: the victim was not the container's init, or its runtime sends no events; `tracing stopped`; `queue full`)"},
}

// TaskSource is a container index that relays the runtime's task events (container.Collection).
type TaskSource interface {
	SubscribeTasks(f func(container.TaskEvent)) (unsubscribe func())
}

// Exit is a kill's victim's container exiting, or a kill given up on.
type Exit struct {
	event.Header // the kill's, at the exit's time
	KilledAt     time.Time
	ExitStatus   uint32
	ExitedAt     time.Time
	RuntimeOOM   bool
	RestartCount uint32
	GaveUp       string // "": joined
}

// Head returns the common part.
func (e *Exit) Head() *event.Header { return &e.Header }

// Clone returns a copy.
func (e *Exit) Clone() gadget.Event { c := *e; return &c }

// Targets is the container that exited.
func (e *Exit) Targets(dst []*event.Container) []*event.Container { return append(dst, e.Container) }

// AppendJSON appends the oom object of an exit.
func (e *Exit) AppendJSON(j *encode.JSON) {
	j.Object()
	j.Time("killed_at", e.KilledAt)
	if e.GaveUp != "" {
		j.String("gave_up", e.GaveUp)
	} else {
		j.Uint("exit_status", uint64(e.ExitStatus))
		j.Time("exited_at", e.ExitedAt)
		j.Bool("runtime_oom", e.RuntimeOOM)
		if e.Container != nil && e.Container.Pod != "" {
			j.Uint("restart_count", uint64(e.RestartCount))
		}
	}
	j.End()
}

// AppendRow appends "exit" and "exited with 137 after the OOM kill (runtime OOM too), restart
// count 2" or "no exit joined: ...".
func (e *Exit) AppendRow(r *encode.Row) {
	r.Cell(KindExit)
	r.Begin()
	if e.GaveUp != "" {
		r.Str("no exit of its container joined to the kill: ")
		r.Str(e.GaveUp)
		return
	}
	r.Str("its container exited with ")
	r.Uint(uint64(e.ExitStatus))
	r.Str(" after the OOM kill")
	if e.RuntimeOOM {
		r.Str(" (the runtime reported the OOM too)")
	}
	if e.Container != nil && e.Container.Pod != "" {
		r.Str("; restart count ")
		r.Uint(uint64(e.RestartCount))
	}
}

// joiner joins kills to their containers' exits on a goroutine of its own, as the runtime's events
// come (they come from another goroutine, at their own pace); what it cannot join within ExitWait
// it gives up on, each give-up an event.
type joiner struct {
	kills chan *Event
	tasks chan container.TaskEvent
	out   chan *Exit
	done  chan struct{}
	wg    sync.WaitGroup
	unsub func()
	// forgot counts what the joiner had no room for (the gadget's losses, cause forgotten): the
	// runtime's task events (a kill may then go without its exit), and its results.
	forgot func(uint64)
	now    func() time.Time
}

// queue is each channel's room: kills are rare, task events come per container start and exit.
const queue = 1024

func newJoiner(src TaskSource, forgot func(uint64)) *joiner {
	j := &joiner{kills: make(chan *Event, queue), tasks: make(chan container.TaskEvent, queue),
		out: make(chan *Exit, queue), done: make(chan struct{}), forgot: forgot, now: time.Now}
	j.unsub = src.SubscribeTasks(func(t container.TaskEvent) {
		select {
		case j.tasks <- t:
		default:
			j.forgot(1) // never block the runtime's watcher
		}
	})
	j.wg.Add(1)
	go j.run()
	return j
}

type pendingKill struct {
	kill *Event
	oom  bool
}

func (j *joiner) run() {
	defer j.wg.Done()
	pending := map[string][]*pendingKill{} // by container id
	ooms := map[string]time.Time{}         // TaskOOMs lately, by container id: one may come first
	// Exits lately, by container id: the runtime's events and the kernel's come by different
	// ways, and an exit can be here before its kill.
	exited := map[string]container.TaskEvent{}
	kill := func(k *Event) {
		id := k.Container.ID
		_, oom := ooms[id]
		if t, ok := exited[id]; ok && !t.ExitedAt.Before(k.Time) {
			j.send(&Exit{Header: k.Header, KilledAt: k.Time, ExitStatus: t.ExitStatus, ExitedAt: t.ExitedAt,
				RuntimeOOM: oom, RestartCount: k.Container.Attempt})
			return
		}
		pending[id] = append(pending[id], &pendingKill{kill: k, oom: oom})
	}
	task := func(t container.TaskEvent) {
		if t.OOM {
			ooms[t.ContainerID] = j.now()
			for _, p := range pending[t.ContainerID] {
				p.oom = true
			}
		}
		if t.Exit {
			for _, p := range pending[t.ContainerID] {
				j.send(&Exit{Header: p.kill.Header, KilledAt: p.kill.Time, ExitStatus: t.ExitStatus,
					ExitedAt: t.ExitedAt, RuntimeOOM: p.oom, RestartCount: p.kill.Container.Attempt})
			}
			if len(pending[t.ContainerID]) == 0 {
				exited[t.ContainerID] = t
			}
			delete(pending, t.ContainerID)
		}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case k := <-j.kills:
			kill(k)
		case t := <-j.tasks:
			task(t)
		case now := <-tick.C:
			for id, list := range pending {
				keep := list[:0]
				for _, p := range list {
					if now.Sub(p.kill.Time) > ExitWait {
						j.giveUp(p.kill, "no exit within "+ExitWait.String())
					} else {
						keep = append(keep, p)
					}
				}
				if len(keep) == 0 {
					delete(pending, id)
				} else {
					pending[id] = keep
				}
			}
			for id, at := range ooms {
				if now.Sub(at) > ExitWait {
					delete(ooms, id)
				}
			}
			for id, t := range exited {
				if now.Sub(t.ExitedAt) > ExitWait {
					delete(exited, id)
				}
			}
		case <-j.done:
			// What came before the stop is joined first: the kills (the run has ended, none
			// is coming), then the task events (the subscription is gone).
			for len(j.kills) > 0 {
				kill(<-j.kills)
			}
			for len(j.tasks) > 0 {
				task(<-j.tasks)
			}
			for _, list := range pending {
				for _, p := range list {
					j.giveUp(p.kill, "tracing stopped")
				}
			}
			return
		}
	}
}

func (j *joiner) giveUp(k *Event, why string) {
	j.send(&Exit{Header: k.Header, KilledAt: k.Time, GaveUp: why})
}

func (j *joiner) send(e *Exit) {
	e.Kind = KindExit
	if e.GaveUp == "" {
		e.Time = e.ExitedAt
	} else {
		e.Time = j.now()
	}
	select {
	case j.out <- e:
	default:
		j.forgot(1)
	}
}

// exits is the oom gadget's processor: kills pass through at once, and each kill of a
// containerd container's process is followed by an Exit when the joiner has one.
type exits struct {
	j      *joiner // nil: no runtime events to join
	forgot func(uint64)
}

// UseResolver starts the joiner where the resolver relays the runtime's task events.
func (x *exits) UseResolver(r event.Resolver) {
	if src, ok := r.(TaskSource); ok {
		x.j = newJoiner(src, x.forgot)
	}
}

// Process emits a kill, and hands the joiner a copy of one in a containerd container.
func (x *exits) Process(ev gadget.Event, emit func(gadget.Event)) {
	emit(ev)
	k, ok := ev.(*Event)
	if !ok || x.j == nil || k.Container == nil || k.Container.Runtime != "containerd" {
		return
	}
	select {
	case x.j.kills <- k.Clone().(*Event):
	default:
		e := &Exit{Header: k.Header, KilledAt: k.Time, GaveUp: "queue full"}
		e.Kind, e.Time = KindExit, k.Time
		emit(e)
	}
	x.drain(emit)
}

// Flush emits the joiner's results; at the end it stops the joiner, which gives up on the kills
// still waiting.
func (x *exits) Flush(_ time.Time, final bool, emit func(gadget.Event)) {
	if x.j == nil {
		return
	}
	if final {
		x.j.unsub()
		close(x.j.done)
		x.j.wg.Wait()
	}
	x.drain(emit)
}

func (x *exits) drain(emit func(gadget.Event)) {
	for {
		select {
		case e := <-x.j.out:
			emit(e)
		default:
			return
		}
	}
}
