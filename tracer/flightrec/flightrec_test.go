package flightrec

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

var (
	web0 = &event.Container{ID: "aaaa1111", Name: "web", Runtime: "containerd", Pod: "web-0", K8sNamespace: "shop"}
	web1 = &event.Container{ID: "aaaa2222", Name: "web", Runtime: "containerd", Pod: "web-1", K8sNamespace: "shop"}
	db0  = &event.Container{ID: "bbbb3333", Name: "db", Runtime: "containerd", Pod: "db-0", K8sNamespace: "data"}
)

// testEvent is what a test appended: a record and its JSON line.
type testEvent struct {
	rec  Record
	line string
}

// makeEvents makes n events of several gadgets, kinds and containers, a millisecond apart from t0.
func makeEvents(n int, t0 time.Time) []testEvent {
	conts := []*event.Container{web0, web1, db0, nil}
	gadgets := []struct{ name, kind string }{{"caps", "check"}, {"caps", "exec"}, {"devices", "denied"}, {"setns", ""}}
	out := make([]testEvent, n)
	for i := range out {
		c := conts[i%len(conts)]
		g := gadgets[(i/3)%len(gadgets)]
		at := t0.Add(time.Duration(i) * time.Millisecond)
		var targets []*event.Container
		if g.name == "devices" && c == nil {
			targets = []*event.Container{db0} // a host writer's rule about db-0
		}
		line := fmt.Sprintf(`{"time":%q,"type":%q,"kind":%q,"n":%d,"container":%q}`, at.Format(time.RFC3339Nano), g.name, g.kind, i, c.Label())
		row := fmt.Sprintf("%s\x1f%d\x1fcomm%d\x1f%s\x1fwhat %d", c.Label(), 100+i, i%7, g.kind, i)
		out[i] = testEvent{rec: Record{Time: at, Gadget: g.name, Kind: g.kind, Container: c, Targets: targets,
			JSON: []byte(line), Row: []byte(row)}, line: line}
	}
	return out
}

func writeAll(t *testing.T, dir string, o Options, evs []testEvent) {
	t.Helper()
	w, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	w.Mark(Marker{Time: evs[0].rec.Time, Kind: MarkStart, PID: os.Getpid()})
	for i := range evs {
		w.Append(&evs[i].rec)
	}
	w.Mark(Marker{Time: evs[len(evs)-1].rec.Time, Kind: MarkStop})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, dir string, q Query) ([]string, Summary) {
	t.Helper()
	r, err := NewReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	q.JSON = true
	var lines []string
	sum, err := r.Scan(context.Background(), q, func(e *Entry) error {
		lines = append(lines, strings.TrimSuffix(string(e.JSON), "\n"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines, sum
}

func want(evs []testEvent, keep func(*Record) bool) []string {
	var out []string
	for i := range evs {
		if keep(&evs[i].rec) {
			out = append(out, evs[i].line)
		}
	}
	return out
}

func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %d lines, want %d", what, len(got), len(want))
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Errorf("first difference at %d:\n got %s\nwant %s", i, got[i], want[i])
				break
			}
		}
	}
}

var t0 = time.Date(2026, 3, 1, 2, 10, 0, 0, time.UTC)

// TestQueries writes events of several gadgets and containers in blocks small enough to make
// many, and reads them back by every filter: the same lines, in the order they were appended.
func TestQueries(t *testing.T) {
	dir := t.TempDir()
	evs := makeEvents(5000, t0)
	writeAll(t, dir, Options{Retain: 1 << 30, BlockSize: 16 << 10}, evs)

	is := func(c *event.Container, pod string) bool { return c != nil && c.Pod == pod }
	about := func(r *Record, match func(*event.Container) bool) bool {
		return match(r.Container) || slices.ContainsFunc(r.Targets, match)
	}
	from, to := t0.Add(1234*time.Millisecond), t0.Add(2345*time.Millisecond)
	for _, tc := range []struct {
		name string
		q    Query
		keep func(*Record) bool
	}{
		{"all", Query{}, func(*Record) bool { return true }},
		{"pod", Query{Select: container.Selector{Pods: []string{"web-0"}}}, func(r *Record) bool { return is(r.Container, "web-0") }},
		{"pod targeted by host writers", Query{Select: container.Selector{Pods: []string{"db-0"}}},
			func(r *Record) bool { return about(r, func(c *event.Container) bool { return is(c, "db-0") }) }},
		{"container id prefix", Query{Select: container.Selector{Containers: []string{"aaaa2"}}}, func(r *Record) bool { return r.Container == web1 }},
		{"container name", Query{Select: container.Selector{Containers: []string{"web"}}},
			func(r *Record) bool { return r.Container == web0 || r.Container == web1 }},
		{"k8s namespace", Query{Select: container.Selector{K8sNamespace: "data"}},
			func(r *Record) bool { return about(r, func(c *event.Container) bool { return c == db0 }) }},
		{"host", Query{Select: container.Selector{Host: true}}, func(r *Record) bool { return r.Container == nil }},
		{"gadget", Query{Gadgets: []string{"devices"}}, func(r *Record) bool { return r.Gadget == "devices" }},
		{"kind", Query{Kinds: []string{"exec"}}, func(r *Record) bool { return r.Kind == "exec" }},
		{"gadget, kind and pod", Query{Gadgets: []string{"caps"}, Kinds: []string{"check"}, Select: container.Selector{Pods: []string{"web-1"}}},
			func(r *Record) bool { return r.Gadget == "caps" && r.Kind == "check" && is(r.Container, "web-1") }},
		{"time range", Query{From: from, To: to}, func(r *Record) bool { return !r.Time.Before(from) && r.Time.Before(to) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, sum := readAll(t, dir, tc.q)
			w := want(evs, tc.keep)
			sameLines(t, tc.name, got, w)
			if sum.Events != uint64(len(w)) {
				t.Errorf("summary: %d events, want %d", sum.Events, len(w))
			}
		})
	}
}

// TestRows reads back the table cells, laid out as trace lays them out.
func TestRows(t *testing.T) {
	dir := t.TempDir()
	evs := makeEvents(10, t0)
	writeAll(t, dir, Options{Retain: 1 << 30}, evs)
	r, err := NewReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var rows []string
	_, err = r.Scan(context.Background(), Query{Rows: true, Gadgets: []string{"caps"}}, func(e *Entry) error {
		rows = append(rows, string(e.Row))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var wantRows []string
	for _, e := range evs {
		if e.rec.Gadget == "caps" {
			wantRows = append(wantRows, string(e.rec.Row))
		}
	}
	sameLines(t, "rows", rows, wantRows)
}

// TestRetainBytes writes far more than --retain: the segments never exceed it, the oldest go
// first, and what is kept reads back whole.
func TestRetainBytes(t *testing.T) {
	dir := t.TempDir()
	const retain = 256 << 10
	o := Options{Retain: retain, BlockSize: 16 << 10, SegmentSize: 32 << 10}
	w, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	evs := makeEvents(40000, t0)
	for i := range evs {
		w.Append(&evs[i].rec)
		if i%2000 == 0 {
			if n := dirBytes(t, dir); n > retain {
				t.Fatalf("after %d events the segments hold %d bytes, more than %d", i, n, retain)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := dirBytes(t, dir); n > retain {
		t.Fatalf("the segments hold %d bytes, more than %d", n, retain)
	}
	got, sum := readAll(t, dir, Query{})
	if len(got) == 0 || len(got) == len(evs) {
		t.Fatalf("read %d of %d events: want the newest part only", len(got), len(evs))
	}
	// What is kept is the newest events, in order, none missing in between.
	sameLines(t, "kept", got, want(evs[len(evs)-len(got):], func(*Record) bool { return true }))
	if !sum.Last.Equal(evs[len(evs)-1].rec.Time) {
		t.Errorf("last event %v, want %v", sum.Last, evs[len(evs)-1].rec.Time)
	}
}

// dirBytes is the size of the segments in dir. The writer may be removing the oldest and then
// appending to the newest meanwhile: a sum that counted both the removed one and the frame written
// after its removal would be no state the directory was ever in, so the list is read again after
// the sizes, and the sum is taken again until the list has not changed.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	nums, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	for {
		var n int64
		for _, num := range nums {
			st, err := os.Stat(filepath.Join(dir, segmentName(num)))
			if err == nil {
				n += st.Size()
			}
		}
		after, err := listSegments(dir)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(after, nums) {
			return n
		}
		nums = after
	}
}

// fakeClock is a clock a test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// TestRetainFor deletes segments whose events are all older than RetainFor, and rotates by age.
func TestRetainFor(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{now: t0}
	w, err := Open(dir, Options{Retain: 1 << 30, RetainFor: time.Hour, SegmentAge: 10 * time.Minute,
		FlushEvery: 10 * time.Millisecond, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// Four hours of one event a minute, each written before the clock moves on.
	evs := makeEvents(240, t0)
	for i := range evs {
		at := t0.Add(time.Duration(i) * time.Minute)
		evs[i].rec.Time = at
		clock.set(at)
		w.Append(&evs[i].rec)
		waitFor(t, func() bool { return w.Stats().Written == uint64(i+1) })
	}
	clock.set(t0.Add(240 * time.Minute))
	waitFor(t, func() bool { return !w.Stats().Oldest.Before(t0.Add(170 * time.Minute)) })
	oldest := w.Stats().Oldest
	// Segments of ten minutes: at most one segment's worth older than an hour is kept.
	if min := t0.Add(240*time.Minute - time.Hour - 10*time.Minute); oldest.Before(min) {
		t.Errorf("oldest event kept %v, want none before %v", oldest, min)
	}
	if nums, _ := listSegments(dir); len(nums) < 6 || len(nums) > 8 {
		t.Errorf("%d segments kept, want 6 to 8 of ten minutes each", len(nums))
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFollow reads a record while it is written: events appended later arrive, in order.
func TestFollow(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, Options{Retain: 1 << 30, FlushEvery: 20 * time.Millisecond, SegmentSize: minSegment})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	evs := makeEvents(3000, t0)
	for i := range 1000 {
		w.Append(&evs[i].rec)
	}
	r, err := NewReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, len(evs))
	done := make(chan error, 1)
	go func() {
		_, err := r.Follow(ctx, Query{JSON: true, Select: container.Selector{Pods: []string{"web-0"}}}, 10*time.Millisecond, func(e *Entry) error {
			got <- strings.TrimSuffix(string(e.JSON), "\n")
			return nil
		})
		done <- err
	}()
	for i := 1000; i < len(evs); i++ {
		w.Append(&evs[i].rec)
	}
	wanted := want(evs, func(r *Record) bool { return r.Container == web0 })
	for i, line := range wanted {
		select {
		case l := <-got:
			if l != line {
				t.Fatalf("event %d: got %s, want %s", i, l, line)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("follow: %d of %d events", i, len(wanted))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestTornTail: an agent killed in the middle of writing a frame leaves part of it. Readers stop
// before it; the next agent cuts it off and appends after it.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	evs := makeEvents(100, t0)
	writeAll(t, dir, Options{Retain: 1 << 30}, evs[:50])
	nums, _ := listSegments(dir)
	path := filepath.Join(dir, segmentName(nums[len(nums)-1]))
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The first 30 bytes of another copy of its first frame.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(whole[fileHeaderSize : fileHeaderSize+30])
	f.Close()
	got, _ := readAll(t, dir, Query{})
	sameLines(t, "before the torn frame", got, want(evs[:50], func(*Record) bool { return true }))

	writeAll(t, dir, Options{Retain: 1 << 30}, evs[50:])
	if st, _ := os.Stat(path); st.Size() != int64(len(whole)) {
		t.Errorf("the torn segment is %d bytes, want %d (cut back to its last whole frame)", st.Size(), len(whole))
	}
	got, sum := readAll(t, dir, Query{})
	sameLines(t, "both runs", got, want(evs, func(*Record) bool { return true }))
	if len(sum.Gaps) != 1 || sum.Gaps[0].Reason != GapStopped {
		t.Errorf("gaps %+v, want one stopped gap between the runs", sum.Gaps)
	}
}

// TestOneWriter: a second agent on the same directory is refused, in one line.
func TestOneWriter(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, Options{Retain: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := Open(dir, Options{Retain: 1 << 30}); err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Errorf("second writer: %v, want refused", err)
	}
}

// TestLostMarkers: losses counted by the agent are written and read back as gaps, by gadget.
func TestLostMarkers(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{now: t0}
	w, err := Open(dir, Options{Retain: 1 << 30, FlushEvery: 10 * time.Millisecond, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	evs := makeEvents(10, t0)
	w.Append(&evs[0].rec)
	w.Lost("caps", "ring_full", 7)
	w.Lost("devices", "ring_full", 2)
	w.Lost("caps", "ring_full", 3)
	clock.set(t0.Add(time.Second))
	waitFor(t, func() bool { return w.Stats().Written == 1 })
	w.Close()
	_, sum := readAll(t, dir, Query{})
	var lost []Loss
	for _, g := range sum.Gaps {
		if g.Reason == GapLost {
			lost = append(lost, g.Lost...)
		}
	}
	slices.SortFunc(lost, func(a, b Loss) int { return strings.Compare(a.Gadget, b.Gadget) })
	if !slices.Equal(lost, []Loss{{"caps", "ring_full", 10}, {"devices", "ring_full", 2}}) {
		t.Errorf("losses %+v", lost)
	}
	_, sum = readAll(t, dir, Query{Gadgets: []string{"devices"}})
	if len(sum.Gaps) != 1 || len(sum.Gaps[0].Lost) != 1 || sum.Gaps[0].Lost[0].Count != 2 {
		t.Errorf("devices only: gaps %+v", sum.Gaps)
	}
}

// TestConcurrentAppends: gadgets append from goroutines of their own; every event is kept once.
func TestConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, Options{Retain: 1 << 30, BlockSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	evs := makeEvents(20000, t0)
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < len(evs); i += 4 {
				w.Append(&evs[i].rec)
			}
		}()
	}
	wg.Wait()
	w.Close()
	got, _ := readAll(t, dir, Query{})
	slices.Sort(got)
	all := want(evs, func(*Record) bool { return true })
	slices.Sort(all)
	sameLines(t, "all, in any order", got, all)
}

// TestKilled: an agent killed with events taken and not yet written (kill -9 between flushes).
// The next agent counts exactly those as lost, and history shows the time it was down.
func TestKilled(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledChild$")
	cmd.Env = append(os.Environ(), "FLIGHTREC_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	var appended int
	if _, err := fmt.Sscanf(line, "appended %d", &appended); err != nil {
		t.Fatalf("child said %q", line)
	}

	var lostSeen uint64
	w, err := Open(dir, Options{Retain: 1 << 30, OnLost: func(g, cause string, n uint64) {
		if cause == CauseKilled {
			lostSeen += n
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	killed, _, lastAlive, lost := w.Previous()
	restart := time.Now()
	w.Mark(Marker{Time: restart, Kind: MarkStart})
	w.Close()
	got, sum := readAll(t, dir, Query{})
	if !killed || lost == 0 || lost != lostSeen {
		t.Fatalf("previous run: killed %v, lost %d (told %d)", killed, lost, lostSeen)
	}
	if uint64(len(got))+lost != uint64(appended) {
		t.Errorf("%d events read + %d counted lost, want the %d appended", len(got), lost, appended)
	}
	var g *Gap
	for i := range sum.Gaps {
		if sum.Gaps[i].Reason == GapKilled {
			g = &sum.Gaps[i]
		}
	}
	var inGap uint64
	for _, l := range g.Lost {
		if l.Cause == CauseKilled {
			inGap += l.Count
		}
	}
	if len(sum.Gaps) != 1 || g == nil || !g.From.Equal(lastAlive) || inGap != lost {
		t.Errorf("gaps %+v: want one killed gap from %v with %d lost", sum.Gaps, lastAlive, lost)
	}
}

// TestKilledChild is the agent TestKilled kills: it writes some events, then takes more that it
// has not written when it says how many it took.
func TestKilledChild(t *testing.T) {
	dir := os.Getenv("FLIGHTREC_CHILD_DIR")
	if dir == "" {
		t.Skip("run by TestKilled")
	}
	// No flush comes before the kill, however late the parent kills (a flush every 500 ms
	// sometimes came first and wrote the 2000 too); the 3000 are written as a full block is.
	w, err := Open(dir, Options{Retain: 1 << 30, FlushEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	w.Mark(Marker{Time: time.Now(), Kind: MarkStart})
	evs := makeEvents(5000, time.Now())
	for i := range 3000 {
		w.Append(&evs[i].rec)
	}
	w.mu.Lock()
	w.cutLocked()
	w.mu.Unlock()
	w.wake()
	waitFor(t, func() bool { return w.Stats().Written == 3000 })
	for i := 3000; i < len(evs); i++ {
		w.Append(&evs[i].rec)
	}
	fmt.Printf("appended %d\n", len(evs))
	time.Sleep(time.Minute)
}

// TestDiskFull: on a file system that fills up, blocks are dropped and counted by gadget, the
// writer goes on, and once there is room again it writes the count and the new events. Every
// event appended is read back or counted.
func TestDiskFull(t *testing.T) {
	testutil.RequirePrivileged(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	var mu sync.Mutex
	dropped := map[string]uint64{}
	var errs []error
	w, err := Open(dir, Options{Retain: 1 << 30, BlockSize: 16 << 10, FlushEvery: 10 * time.Millisecond,
		OnLost: func(g, cause string, n uint64) {
			mu.Lock()
			defer mu.Unlock()
			if cause != CauseDiskFull {
				t.Errorf("lost %d of %s: %s, want %s", n, g, cause, CauseDiskFull)
			}
			dropped[g] += n
		},
		OnWriteError: func(err error) {
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, err)
		}})
	if err != nil {
		t.Fatal(err)
	}
	// Ballast that leaves room for a few blocks.
	ballast := filepath.Join(dir, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 900<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	// 40000 events fill the file system; the 2000 after the ballast's removal must fit in the
	// 900 KiB it leaves whatever the machine's speed: each flush (every 10 ms) writes the events
	// taken since as a block of its own, and slow appends make more, smaller blocks (20000 took
	// 816 KiB here, and over the 900 KiB when their appends took 2 s, as in a loaded TCG guest).
	// 2000 take 530 KiB at most, in a block each.
	evs := makeEvents(42000, t0)
	total := func() (n uint64) {
		mu.Lock()
		defer mu.Unlock()
		for _, v := range dropped {
			n += v
		}
		return n
	}
	i := 0
	for ; i < 40000; i++ {
		w.Append(&evs[i].rec)
	}
	waitFor(t, func() bool { return w.Stats().Written+total() == uint64(i) })
	if total() == 0 {
		t.Fatal("nothing was dropped: the file system did not fill up")
	}
	os.Remove(ballast)
	for ; i < len(evs); i++ {
		w.Append(&evs[i].rec)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, sum := readAll(t, dir, Query{})
	var counted uint64
	for _, g := range sum.Gaps {
		for _, l := range g.Lost {
			if l.Cause == CauseDiskFull {
				counted += l.Count
			}
		}
	}
	if counted != total() {
		t.Errorf("the record counts %d dropped, the writer said %d", counted, total())
	}
	if uint64(len(got))+counted != uint64(len(evs)) {
		t.Errorf("%d read + %d dropped, want %d", len(got), counted, len(evs))
	}
	if !sum.Last.Equal(evs[len(evs)-1].rec.Time) {
		t.Errorf("the last event read is at %v, want the last appended (%v): writing did not resume", sum.Last, evs[len(evs)-1].rec.Time)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) < 2 || !errors.Is(errs[0], syscall.ENOSPC) || errs[len(errs)-1] != nil {
		t.Errorf("write errors told: %v; want ENOSPC, then nil when it wrote again", errs)
	}
}

// TestContainerKnownTwice: the same container, first known by its cgroup path only (no name, no
// pod; runc writing its rules from inside its cgroup) and then from containerd, in one block. Its
// events that named the pod are found by the pod, as actor and as target; before, the block kept
// the first value for every event of that id, and a query by pod found neither.
func TestContainerKnownTwice(t *testing.T) {
	dir := t.TempDir()
	bare := &event.Container{ID: db0.ID, Runtime: "containerd"}
	evs := makeEvents(4, t0)
	evs[0].rec.Container, evs[0].rec.Targets = bare, nil
	evs[1].rec.Container, evs[1].rec.Targets = nil, []*event.Container{bare}
	evs[2].rec.Container, evs[2].rec.Targets = db0, nil
	evs[3].rec.Container, evs[3].rec.Targets = nil, []*event.Container{db0}
	for i := range evs {
		evs[i].rec.Gadget = "devices"
	}
	writeAll(t, dir, Options{Retain: 1 << 30}, evs)
	got, _ := readAll(t, dir, Query{Select: container.Selector{Pods: []string{"db-0"}}})
	sameLines(t, "by pod", got, []string{evs[2].line, evs[3].line})
	got, _ = readAll(t, dir, Query{Select: container.Selector{Containers: []string{db0.ID[:6]}}})
	sameLines(t, "by id", got, want(evs, func(*Record) bool { return true }))
}
