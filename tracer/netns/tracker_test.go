package netns

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

func TestTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	// One value decoded into again and again, as the framework does.
	shared := &Event{}
	ev := func(kind string, at time.Duration, netns uint32) *Event {
		*shared = Event{Header: event.Header{Time: t0.Add(at), Kind: kind}, NetNS: netns}
		return shared
	}
	var taken []uint32
	tr := &tracker{linger: 5 * time.Second, lives: map[uint32]*life{}, take: func(o Options) ([]*Namespace, error) {
		taken = append(taken, o.NetNS)
		if o.NetNS == 8 {
			return nil, nil // no reference found
		}
		return []*Namespace{{Inode: o.NetNS, Holders: []Holder{{Kind: KindFD, Proc: Proc{PID: 812, Comm: "agent"}, FD: 5}}}}, nil
	}}
	var out []*Event
	emit := func(e gadget.Event) { out = append(out, e.Clone().(*Event)) }
	tr.Process(ev("created", 0, 7), emit) // no owner known yet: it waits
	tr.Process(ev("created", 0, 7), emit) // the same creation seen at the syscall too: dropped
	tr.lives[7].watched = true            // as if its id had been given: its end will be announced
	if len(out) != 0 {
		t.Fatalf("created emitted before its owner was known or the wait was over: %+v", out)
	}
	tr.Process(ev("empty", time.Second, 7), emit) // waits behind it, in order
	tr.Process(ev("created", time.Second, 8), emit)
	tr.Process(ev("empty", 2*time.Second, 8), emit)
	tr.Flush(t0.Add(3*time.Second), false, emit) // 8's creation waited long enough
	tr.Flush(t0.Add(7*time.Second), false, emit) // 7 lingers; 8 has no reference: maybe gone
	tr.Flush(t0.Add(9*time.Second), false, emit) // each reported once
	tr.Process(ev("destroyed", 10*time.Second, 7), emit)
	var got []string
	for _, e := range out {
		got = append(got, e.Header.Kind)
	}
	want := []string{"created", "empty", "created", "empty", "lingering", "destroyed"}
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
	if l := out[4]; l.NetNS != 7 || l.Empty != 6*time.Second || l.Lived != 7*time.Second || l.Holders.HeldBy() != "held by pid 812 agent fd 5 (nsfs)" {
		t.Errorf("lingering %+v", l)
	}
	var j encode.JSON
	out[4].AppendJSON(&j)
	if !json.Valid(j.B) || !strings.Contains(string(j.B), `"held_by":"held by pid 812 agent fd 5 (nsfs); no address"`) {
		t.Errorf("lingering JSON: %s", j.B)
	}
	if d := out[5]; d.Lived != 10*time.Second || d.Empty != 9*time.Second {
		t.Errorf("destroyed lived %v empty %v, want 10s and 9s", d.Lived, d.Empty)
	}
	if _, kept := tr.lives[8]; kept {
		t.Error("netns 8, whose end cannot be seen, is still remembered after its lingering check")
	}
	if len(taken) != 2 {
		t.Errorf("snapshots of %v, want one each of 7 and 8", taken)
	}
}

// The namespaces followed are bounded: one more than maxLives forgets one, and counts it.
func TestTrackerLivesAreBounded(t *testing.T) {
	var forgot uint64
	tr := &tracker{lives: map[uint32]*life{}, forgot: func(n uint64) { forgot += n }}
	emit := func(gadget.Event) {}
	t0 := time.Unix(1000, 0)
	for i := range maxLives + 1 {
		tr.Process(&Event{Header: event.Header{Time: t0, Kind: "empty"}, NetNS: uint32(i + 1)}, emit)
	}
	if len(tr.lives) != maxLives || forgot != 1 {
		t.Errorf("%d namespaces followed, %d forgotten; want %d and 1", len(tr.lives), forgot, maxLives)
	}
}

// Since when a namespace has been empty is told to other gadgets' joins in the process
// (EmptySince) from the tracker's empty event until the namespace is created anew, destroyed, or
// the tracker's run ends.
func TestEmptySince(t *testing.T) {
	t0 := time.Unix(2000, 0)
	tr := &tracker{linger: time.Hour, lives: map[uint32]*life{}}
	emit := func(gadget.Event) {}
	ev := func(kind string, at time.Duration, netns uint32) *Event {
		return &Event{Header: event.Header{Time: t0.Add(at), Kind: kind}, NetNS: netns}
	}
	const a, b = 4026539001, 4026539002
	check := func(step string, inode uint32, want time.Time) {
		t.Helper()
		got, ok := EmptySince(inode)
		if ok != !want.IsZero() || !got.Equal(want) {
			t.Errorf("%s: EmptySince(%d) = %v, %v; want %v", step, inode, got, ok, want)
		}
	}
	tr.Process(ev("created", 0, a), emit)
	check("created", a, time.Time{})
	tr.Process(ev("empty", time.Second, a), emit)
	tr.Process(ev("empty", 2*time.Second, b), emit)
	check("empty", a, t0.Add(time.Second))
	check("empty", b, t0.Add(2*time.Second))
	tr.Process(ev("destroyed", 3*time.Second, a), emit)
	check("destroyed", a, time.Time{})
	tr.Process(ev("created", 4*time.Second, a), emit) // its inode again, for another namespace
	check("created anew", a, time.Time{})
	tr.Flush(t0.Add(5*time.Second), true, emit)
	check("the run's end", b, time.Time{})
}

// A created event waits for its owner; a CNI ADD for its namespace, which the cni gadget tells the
// container index when both run in one process, gives it its pod and releases it. An ADD that
// started before the namespace was made (its inode reused) does not. The namespace's empty event,
// which comes before the ADD (the runtime's thread that made it goes back at once), waits behind
// it.
func TestCreatedTakesItsPodFromTheADD(t *testing.T) {
	t0 := time.Unix(4000, 0)
	coll := container.NewCollection()
	tr := &tracker{linger: time.Hour, lives: map[uint32]*life{}}
	var out []*Event
	emit := func(e gadget.Event) { out = append(out, e.Clone().(*Event)) }
	const reused, fresh = 4026539101, 4026539102
	coll.AddNetwork(reused, t0.Add(-time.Minute), &event.Container{ID: "old", Runtime: "cni", Pod: "old-0"})
	tr.Process(&Event{Header: event.Header{Time: t0, Kind: "created"}, NetNS: reused, resolver: coll}, emit)
	tr.Process(&Event{Header: event.Header{Time: t0, Kind: "created"}, NetNS: fresh, resolver: coll}, emit)
	tr.Process(&Event{Header: event.Header{Time: t0.Add(time.Millisecond), Kind: "empty"}, NetNS: fresh, resolver: coll}, emit)
	tr.Flush(t0.Add(100*time.Millisecond), false, emit)
	if len(out) != 0 {
		t.Fatalf("released before an ADD or the wait's end: %+v", out)
	}
	coll.AddNetwork(fresh, t0.Add(150*time.Millisecond), &event.Container{ID: "sandbox1", Runtime: "cni", Pod: "web-0", K8sNamespace: "prod"})
	tr.Flush(t0.Add(200*time.Millisecond), false, emit)
	if len(out) != 2 || out[0].NetNS != fresh || out[0].Owner == nil || out[0].Owner.Pod != "web-0" || out[0].Owner.ID != "sandbox1" ||
		out[1].NetNS != fresh || out[1].Header.Kind != "empty" {
		t.Fatalf("after the ADD: %+v", out)
	}
	tr.Flush(t0.Add(ownerWait), false, emit)
	if len(out) != 3 || out[2].NetNS != reused || out[2].Owner != nil {
		t.Fatalf("the namespace whose inode an older ADD named: %+v", out[2:])
	}
}
