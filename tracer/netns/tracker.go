package netns

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	gen "github.com/ghostwatch/ghostwatch/gen/netns"
	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

// ownerWait is how long a created event waits for its namespace's container to be known by name:
// a runtime creates the namespace before the container's task exists for its API.
const ownerWait = 2 * time.Second

// tracker follows each namespace from creation to destruction: it gives destroyed events how
// long the namespace lived and stayed empty, and reports a namespace still alive a while after
// its last task left (lingering) with what holds it.
type tracker struct {
	linger time.Duration
	// destroyedSeen: the kernel's teardown is traced, so a namespace with no visible holder is
	// held by the kernel rather than perhaps gone.
	destroyedSeen bool
	take          func(Options) ([]*Namespace, error)
	set           *attach.Set
	// ids learns of destruction from the kernel's namespace id notifications where the teardown
	// is not traced; nil where it is, or where they cannot be had.
	ids   *nsids
	lives map[uint32]*life // at most maxLives
	// waiting are created events waiting for their owner, each followed by the empty events of
	// its namespace that came meanwhile (emitted after it, in order).
	waiting []*Event
	forgot  gadget.Forget
}

// maxLives bounds the namespaces followed, as the kernel's table of their members is bounded: past
// it, one is forgotten (its lingering and the length of its life are no longer told).
const maxLives = 16384

type life struct {
	created  time.Time
	empty    *Event // the event of its last task leaving; nil while some task lives in it
	reported bool   // lingering was reported
	watched  bool   // its destruction will be announced (ids)
}

// newTracker counts the tasks in each namespace and, where the teardown is not traced, subscribes
// to the namespace id notifications. Without either it would report live namespaces empty, or
// never report one destroyed: an error, not a quieter trace.
func newTracker(g *gadget.Gadget, p gadget.Params) (*tracker, error) {
	set := g.Set()
	t := &tracker{linger: p.Duration(ParamLinger), destroyedSeen: g.Kind(HookDestroyed) != "", take: Take,
		set: set, lives: map[uint32]*life{}, forgot: g.Forgot}
	if !t.destroyedSeen {
		ids, err := openNSIDs()
		if err != nil {
			return nil, fmt.Errorf("the teardown of namespaces is not traced here, and %w", err)
		}
		t.ids = ids
	}
	// Count the tasks already living in namespaces: the iterator counts each task once, in the
	// kernel, beside the hooks already attached.
	if _, err := gadget.ReadIter[struct{}](set, gen.NetnsProgCensus); err != nil {
		if t.ids != nil {
			t.ids.Close()
		}
		return nil, fmt.Errorf("counting the tasks in each namespace: %w", err)
	}
	return t, nil
}

func (t *tracker) life(netns uint32) *life {
	l := t.lives[netns]
	if l == nil {
		if len(t.lives) >= maxLives {
			for other := range t.lives { // any one: the map's order
				delete(t.lives, other)
				t.unpublish(other)
				t.forgot.Count(1)
				break
			}
		}
		l = &life{}
		t.lives[netns] = l
	}
	return l
}

// Process handles one event in order.
func (t *tracker) Process(ev gadget.Event, emit func(gadget.Event)) {
	e, ok := ev.(*Event)
	if !ok {
		emit(ev)
		return
	}
	if e.Header.Kind != "created" && e.Header.Kind != "empty" {
		t.release(e.NetNS, emit) // in order: its creation comes first
	}
	switch e.Header.Kind {
	case "created":
		l := t.life(e.NetNS)
		if !l.created.IsZero() && l.empty == nil && e.Time.Sub(l.created) < time.Second {
			// Where copy_net_ns is traced, its event comes first; the syscall's tells no more.
			return
		}
		l.created, l.empty, l.reported = e.Time, nil, false
		t.unpublish(e.NetNS)
		t.watchCreated(e, l)
		if !e.ownerComplete() {
			t.waiting = append(t.waiting, e.Clone().(*Event)) // e is decoded into again
			return
		}
	case "empty":
		l := t.life(e.NetNS)
		l.empty, l.reported = e.Clone().(*Event), false
		t.publishEmpty(e.NetNS, e.Time)
		if !l.created.IsZero() {
			e.Lived = e.Time.Sub(l.created)
		}
		if slices.ContainsFunc(t.waiting, func(w *Event) bool { return w.NetNS == e.NetNS }) {
			// A runtime's namespace is empty at once (the thread that made it, pinned by a
			// mount, goes back): its creation waits on, for the CNI ADD that names the pod.
			t.waiting = append(t.waiting, e.Clone().(*Event))
			return
		}
	case "destroyed":
		t.ended(e)
	}
	emit(e)
}

// ended gives a destroyed event what is known of the namespace's life, and forgets it.
func (t *tracker) ended(e *Event) {
	l := t.lives[e.NetNS]
	if l == nil {
		return
	}
	if !l.created.IsZero() {
		e.Lived = e.Time.Sub(l.created)
	}
	if l.empty != nil {
		e.Empty = e.Time.Sub(l.empty.Time)
		if e.Owner == nil {
			e.Owner = l.empty.Owner
		}
	}
	delete(t.lives, e.NetNS)
	t.unpublish(e.NetNS)
}

// watchCreated asks for the destruction of a new namespace to be announced, through the task
// that made it (still in it, most likely).
func (t *tracker) watchCreated(e *Event, l *life) {
	if t.ids == nil {
		return
	}
	path := "/proc/" + strconv.Itoa(int(e.Proc.PID)) + "/task/" + strconv.Itoa(int(e.Proc.TID)) + "/ns/net"
	if e.Child != 0 {
		path = "/proc/" + strconv.Itoa(int(e.Child)) + "/ns/net"
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Ino == uint64(e.NetNS) && t.ids.watch(fd, e.NetNS) == nil {
		l.watched = true
	}
}

// release emits the created events waiting for netns (all of them when netns is 0).
func (t *tracker) release(netns uint32, emit func(gadget.Event)) {
	t.waiting = slices.DeleteFunc(t.waiting, func(e *Event) bool {
		if netns == 0 || e.NetNS == netns {
			emit(e)
			return true
		}
		return false
	})
}

// Flush emits created events whose owner is now known or who waited long enough (and the empty
// events behind them), and lingering namespaces.
func (t *tracker) Flush(now time.Time, final bool, emit func(gadget.Event)) {
	held := map[uint32]bool{} // namespaces whose creation still waits
	t.waiting = slices.DeleteFunc(t.waiting, func(e *Event) bool {
		if e.Header.Kind != "created" { // an empty event goes after its namespace's creation
			if held[e.NetNS] {
				return false
			}
			emit(e)
			return true
		}
		e.resolveOwner()
		if e.ownerComplete() || e.ownerFromADD() || final || now.Sub(e.Time) >= ownerWait {
			emit(e)
			return true
		}
		held[e.NetNS] = true
		return false
	})
	if t.ids != nil {
		for _, netns := range t.ids.gone() {
			e := &Event{Header: event.Header{Time: now, Type: Type, Kind: "destroyed"}, NetNS: netns, How: "kernel"}
			t.release(netns, emit)
			t.ended(e)
			emit(e)
		}
		if final {
			t.ids.Close()
		}
	}
	if final {
		t.unpublish(0)
	}
	for _, netns := range slices.Sorted(maps.Keys(t.lives)) {
		l := t.lives[netns]
		if l.empty == nil || l.reported || now.Sub(l.empty.Time) < t.linger || held[netns] {
			continue
		}
		l.reported = true
		if e := t.lingering(netns, l, now); e != nil {
			emit(e)
		}
		if !t.destroyedSeen && !l.watched {
			delete(t.lives, netns) // its end will not be seen: nothing more to tell of it
			t.unpublish(netns)
		}
	}
}

// lingering looks for what holds an empty namespace; nil when nothing refers to it and its
// teardown is not traced (it may well be gone).
func (t *tracker) lingering(netns uint32, l *life, now time.Time) *Event {
	found, err := t.take(Options{NetNS: netns, Resolver: l.empty.resolver, Iterators: t.set})
	var n *Namespace
	switch {
	case err != nil:
		n = &Namespace{Inode: netns, InterfacesError: "looking for its holders: " + err.Error()}
	case len(found) == 1:
		n = found[0]
	case !t.destroyedSeen && !l.watched:
		return nil
	default:
		n = &Namespace{Inode: netns, InterfacesError: "no reference to it could be opened"}
	}
	if t.ids != nil && !l.watched && len(found) == 1 {
		if fd, err := openNS(n); err == nil {
			l.watched = t.ids.watch(fd, netns) == nil
			unix.Close(fd)
		}
	}
	e := &Event{Header: l.empty.Header, NetNS: netns, Owner: l.empty.Owner, Empty: now.Sub(l.empty.Time),
		Holders: n, resolver: l.empty.resolver}
	e.Header.Time, e.Header.Kind = now, "lingering"
	if !l.created.IsZero() {
		e.Lived = now.Sub(l.created)
	}
	if e.Owner == nil && n.Container != nil {
		e.Owner = n.Container
	}
	return e
}
