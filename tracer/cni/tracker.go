package cni

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	gen "github.com/ghostwatch/ghostwatch/gen/cni"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/lru"
)

// Bounds of what the tracker keeps.
const (
	maxInFlight = 1024             // invocations followed at once; more are counted, not followed
	maxChain    = 64               // steps kept per invocation
	maxOutput   = 16 << 10         // bytes of stdout and of stderr kept per process
	retryWindow = 10 * time.Minute // ADDs of a pod this close are counted as retries
	maxPods     = 4096             // pods whose last ADD is remembered
)

// tracker folds the kernel's records into invocations: a start when the runtime execs a plugin,
// the programs it runs, a done when it exits, and slow while it runs longer than --slow.
type tracker struct {
	slow     time.Duration
	clock    event.Clock
	tree     *ebpf.Map // the kernel's processes of invocations; nil in tests
	binDirs  *ebpf.Map
	dirs     map[string]bool // bin dirs known, by path
	inflight map[uint32]*inv // by the plugin's tgid
	adds     *lru.Cache[string, *podAdds]
	// forgot counts invocations not followed (more than maxInFlight at once), and pods whose last
	// ADD the retry check dropped for want of room.
	forgot gadget.Forget
	// blocked reads where a process waits (/proc); replaced in tests.
	blocked func(pid uint32) (Blocked, bool)
	// read is the time of the newest record read: what the kernel recorded before it has been
	// read (the ring buffer keeps its order).
	read time.Time
}

// inv is an invocation in flight.
type inv struct {
	ev       Invocation // the start event's fields
	chain    []Step
	out, err []byte          // the plugin's own stdout and stderr
	stepOut  map[int][]byte  // a step's stdout, by its index in chain
	dropped  uint32          // output bytes not copied
	reported time.Time       // the last slow report
	seeded   bool            // found running at start, in /proc
	goneAt   time.Time       // when its plugin was first found gone from /proc, its exit not read
	procs    map[uint32]bool // its processes still running, as far as execs and exits tell
}

// podAdds is what is remembered of a pod's ADDs, for the retry join.
type podAdds struct {
	count       int
	last        time.Time
	pid         uint32
	comm        string
	containerID string
	netns       string
	outcome     string        // "running", "ok", or its error
	cause       *gadget.Cause // what this sandbox's attempt retried; nil for the first
}

func newTracker(g *gadget.Gadget, p gadget.Params) *tracker {
	t := newTrackerFor(p)
	t.forgot = g.Forgot
	set := g.Set()
	t.tree, t.binDirs = set.Map(gen.CniMapTree), set.Map(gen.CniMapBinDirs)
	t.seed(FindRunning())
	return t
}

func newTrackerFor(p gadget.Params) *tracker {
	t := &tracker{slow: p.Duration(ParamSlow), clock: event.NewClock(), dirs: map[string]bool{},
		inflight: map[uint32]*inv{}, adds: lru.New[string, *podAdds](maxPods, retryWindow), blocked: blockedOf}
	for _, d := range strings.Split(p.String(ParamBinDir), ":") {
		t.dirs[d] = true
	}
	return t
}

// seed follows the invocations already running: their processes go into the kernel's table, so
// that their exits are reported, and their hang is seen; what each writes to the files its fd 1
// and 2 are now is its output.
func (t *tracker) seed(running []Running) {
	for _, r := range running {
		if len(t.inflight) >= maxInFlight {
			t.forgot.Count(1)
			continue
		}
		start := t.clock.Wall(r.StartBoot)
		v := &inv{seeded: true, procs: map[uint32]bool{}, stepOut: map[int][]byte{}, ev: Invocation{
			Header:  event.Header{Time: start, Type: Type, Kind: KindStart, Proc: event.Proc{PID: r.PID, TID: r.PID, Comm: r.Comm}},
			Plugin:  base(r.File),
			File:    r.File,
			FoundBy: "running",
			Call:    r.Call,
			Start:   start,
		}}
		v.ev.NetNSInode = nsInode(r.Call.NetNS)
		if t.tree != nil && t.tree.Update(r.PID, procOut(r.PID, r.PID), ebpf.UpdateNoExist) != nil {
			continue // started since the hooks were attached: its exec is on its way
		}
		for _, pid := range r.Procs {
			if t.tree != nil && pid != r.PID && t.tree.Update(pid, procOut(r.PID, pid), ebpf.UpdateNoExist) != nil {
				continue
			}
			v.procs[pid] = true
		}
		t.inflight[r.PID] = v
	}
}

// Process folds one record.
func (t *tracker) Process(ev gadget.Event, emit func(gadget.Event)) {
	if h := ev.Head(); h.Time.After(t.read) {
		t.read = h.Time
	}
	switch e := ev.(type) {
	case *ExecRecord:
		t.exec(e, emit)
	case *OutputRecord:
		t.output(e)
	case *ExitRecord:
		t.exit(e, emit)
	default:
		emit(ev)
	}
}

func (t *tracker) exec(e *ExecRecord, emit func(gadget.Event)) {
	rec := e.rec
	file := event.CString(rec.File[:])
	v := t.inflight[rec.Root]
	if v == nil && e.Proc.PID == rec.Root {
		if len(t.inflight) >= maxInFlight {
			t.forgot.Count(1)
			return
		}
		call := parseEnv(bytesOf(rec.Env[:min(int(rec.EnvLen), len(rec.Env))]))
		v = &inv{procs: map[uint32]bool{e.Proc.PID: true}, stepOut: map[int][]byte{}, ev: Invocation{
			Header:  e.Header,
			Plugin:  base(file),
			File:    file,
			FoundBy: foundBy[gen.CniCniFound(rec.Found)],
			Call:    call,
			Start:   e.Time,
		}}
		v.ev.Kind = KindStart
		v.ev.NetNSInode = nsInode(call.NetNS)
		if nw, ok := e.resolver.(event.Networks); ok && call.Command == "ADD" && v.ev.NetNSInode != 0 && call.Pod != "" {
			// The runtime made the namespace just before: netns's created event waits for this.
			nw.AddNetwork(v.ev.NetNSInode, e.Time, &event.Container{ID: call.ContainerID, Runtime: "cni",
				Pod: call.Pod, K8sNamespace: call.K8sNamespace, PodUID: call.PodUID})
		}
		t.learnDirs(call.Path)
		t.retry(v)
		t.inflight[rec.Root] = v
		start := v.ev
		emit(&start)
		return
	}
	if v == nil {
		return // its plugin's start was lost (counted) or not followed
	}
	v.procs[e.Proc.PID] = true
	if len(v.chain) >= maxChain {
		return
	}
	v.chain = append(v.chain, Step{PID: e.Proc.PID, PPID: e.Proc.PPID, File: file, Plugin: rec.InBinDir != 0,
		Args: splitNUL(bytesOf(rec.Args[:min(int(rec.ArgsLen), len(rec.Args))])), Start: e.Time})
}

var foundBy = map[gen.CniCniFound]string{gen.CniCniFoundFOUND_BIN_DIR: "bin_dir", gen.CniCniFoundFOUND_ENV: "env"}

func (t *tracker) output(o *OutputRecord) {
	rec := o.rec
	v := t.inflight[rec.Root]
	if v == nil {
		return
	}
	data := bytesOf(rec.Data[:min(int(rec.Len), len(rec.Data))])
	if o.Proc.PID != rec.Root {
		if i := v.lastStep(o.Proc.PID); i >= 0 && rec.Fd == 1 {
			v.stepOut[i] = appendBounded(v.stepOut[i], data)
		}
		return
	}
	if rec.Fd == 1 {
		v.out = appendBounded(v.out, data)
	} else {
		v.err = appendBounded(v.err, data)
	}
}

func (t *tracker) exit(x *ExitRecord, emit func(gadget.Event)) {
	v := t.inflight[x.Root]
	if v == nil {
		return
	}
	delete(v.procs, x.Proc.PID)
	v.dropped += x.Dropped
	if x.Proc.PID != x.Root {
		if i := v.lastStep(x.Proc.PID); i >= 0 {
			s := &v.chain[i]
			s.Exit, s.Duration = exitOf(x.Code), x.Time.Sub(s.Start)
			if s.Plugin {
				s.Error = parseStdout(v.stepOut[i]).Error
			}
			delete(v.stepOut, i)
		}
		return
	}
	done := v.ev
	done.Header.Kind, done.Header.Time = KindDone, x.Time
	done.Duration = x.Time.Sub(v.ev.Start)
	done.Exit = exitOf(x.Code)
	if i := v.lastStep(x.Root); i >= 0 { // it exec'd again: a wrapper became the plugin
		v.chain[i].Exit, v.chain[i].Duration = done.Exit, x.Time.Sub(v.chain[i].Start)
	}
	v.finish(&done, x.Time)
	delete(t.inflight, x.Root)
	t.outcome(&done)
	emit(&done)
}

// finish gives a done or slow event the invocation's output and chain as they are at now.
func (v *inv) finish(e *Invocation, now time.Time) {
	e.Printed = parseStdout(v.out)
	e.Stderr = string(v.err)
	e.OutputDropped = v.dropped
	e.Chain = slices.Clone(v.chain)
	for i := range e.Chain {
		if s := &e.Chain[i]; !s.Exited {
			s.Duration = now.Sub(s.Start)
		}
	}
}

// lastStep is the index of the last exec of pid in the chain, or -1.
func (v *inv) lastStep(pid uint32) int {
	for i := len(v.chain) - 1; i >= 0; i-- {
		if v.chain[i].PID == pid {
			return i
		}
	}
	return -1
}

// retry flags an ADD for a pod whose last ADD, not long ago, was for another namespace: the
// runtime (the kubelet, through it) tried again with a new sandbox.
func (t *tracker) retry(v *inv) {
	key := v.ev.PodKey()
	if v.ev.Command != "ADD" || key == "" {
		return
	}
	p, ok := t.adds.Get(key)
	if !ok {
		t.forgot.Count(t.adds.Put(key, &podAdds{count: 1, last: v.ev.Start, pid: v.ev.Proc.PID, comm: v.ev.Proc.Comm,
			containerID: v.ev.ContainerID, netns: v.ev.NetNS, outcome: "running"}))
		return
	}
	if p.netns == v.ev.NetNS && p.containerID == v.ev.ContainerID {
		// Another network of the same sandbox (containerd adds its networks side by side, so
		// loopback's ADD may start before or after the main one's): the same attempt.
		if p.count > 1 {
			v.ev.Attempt, v.ev.Cause = p.count, p.cause
		}
		return
	}
	p.count++
	v.ev.Attempt = p.count
	v.ev.Cause = &gadget.Cause{Time: p.last, Kind: "add", Before: v.ev.Start.Sub(p.last), PID: p.pid, Comm: p.comm,
		Attrs: []gadget.Attr{{Key: "container_id", Value: p.containerID}, {Key: "netns", Value: p.netns}, {Key: "outcome", Value: p.outcome}}}
	*p = podAdds{count: p.count, last: v.ev.Start, pid: v.ev.Proc.PID, comm: v.ev.Proc.Comm,
		containerID: v.ev.ContainerID, netns: v.ev.NetNS, outcome: "running", cause: v.ev.Cause}
	t.adds.Put(key, p)
}

// outcome remembers how a pod's last ADD ended, for a retry to tell.
func (t *tracker) outcome(done *Invocation) {
	if done.Command != "ADD" || done.PodKey() == "" {
		return
	}
	if p, ok := t.adds.Get(done.PodKey()); ok && p.pid == done.Proc.PID {
		p.outcome = done.outcome()
		if s := done.printedSummary(); s != "" && p.outcome != "ok" {
			p.outcome += ": " + s
		}
	}
}

// learnDirs adds the dirs of an invocation's CNI_PATH to the kernel's bin dirs, so that the
// plugins it execs from there are seen as plugins.
func (t *tracker) learnDirs(path string) {
	for _, d := range strings.Split(path, ":") {
		if d == "" || t.dirs[d] {
			continue
		}
		t.dirs[d] = true
		if t.binDirs == nil {
			continue
		}
		for _, k := range BinDirs([]string{d}) {
			t.binDirs.Put(k, uint8(1)) // the map is full at 64 dirs: then the dir is not learnt
		}
	}
}

// Flush reports the invocations running longer than --slow (again every --slow) with where they
// are blocked, and at stop all those still running.
func (t *tracker) Flush(now time.Time, final bool, emit func(gadget.Event)) {
	for _, root := range slices.Sorted(maps.Keys(t.inflight)) {
		v := t.inflight[root]
		running := now.Sub(v.ev.Start)
		if !final && (running < t.slow || now.Sub(v.reported) < t.slow) {
			continue
		}
		v.reported = now
		e := v.ev
		e.Header.Kind, e.Header.Time = KindSlow, now
		e.Duration, e.AtStop = running, final
		v.finish(&e, now)
		e.Printed = Printed{}
		e.Stderr = ""
		for _, pid := range v.running() {
			if b, ok := t.blocked(pid); ok {
				e.Blocked = append(e.Blocked, b)
			} else if pid == root && !final {
				delete(v.procs, pid)
			}
		}
		if !v.procs[root] {
			if !v.seeded && !final {
				// Its exit is recorded before it leaves /proc, but may not be read yet: it is
				// given up on once a record made after the plugin was found gone is read.
				if v.goneAt.IsZero() {
					v.goneAt = now
				}
				if !t.read.After(v.goneAt) {
					continue
				}
			}
			// Gone without its exit reported: found running at start and ended before it was
			// followed, or its exit was lost (counted).
			done := v.ev
			done.Header.Kind, done.Header.Time = KindDone, now
			done.Duration = running
			v.finish(&done, now)
			delete(t.inflight, root)
			emit(&done)
			continue
		}
		emit(&e)
	}
}

// running lists the invocation's processes still running: the plugin, then the chain's.
func (v *inv) running() []uint32 {
	out := []uint32{v.ev.Proc.PID}
	for pid := range v.procs {
		if pid != v.ev.Proc.PID {
			out = append(out, pid)
		}
	}
	slices.Sort(out[1:])
	return out
}

// nsInode is the inode of a namespace file (CNI_NETNS), or 0.
func nsInode(path string) uint32 {
	var st unix.Stat_t
	if path == "" || unix.Stat(path, &st) != nil {
		return 0
	}
	return uint32(st.Ino)
}

func appendBounded(b, data []byte) []byte {
	if room := maxOutput - len(b); room < len(data) {
		data = data[:max(room, 0)]
	}
	return append(b, data...)
}

func splitNUL(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// bytesOf reads a C char array as bytes, without copying.
func bytesOf(b []int8) []byte {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&b[0])), len(b))
}
