package flightrec

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults and limits of Options.
const (
	// DefaultFlushEvery is how long an event waits in memory at most: what a kill -9 can lose.
	DefaultFlushEvery = time.Second
	// DefaultBlockSize cuts a block early in a storm (bytes of JSON and rows), bounding memory.
	DefaultBlockSize = 4 << 20
	// MinRetain is the smallest record: a few blocks of the default size.
	MinRetain = 16 << 20
	// maxSegment and minSegment bound a segment's size: Retain/16 between them.
	maxSegment = 64 << 20
	minSegment = 1 << 20
	// maxQueued blocks wait to be written before Append waits: the writer's backpressure.
	maxQueued = 2
)

// Options configure a Writer.
type Options struct {
	// Retain bounds the segments' bytes on disk: the oldest are deleted to keep under it.
	Retain int64
	// RetainFor deletes segments whose every event is older; 0 keeps them until Retain needs room.
	RetainFor time.Duration
	// SegmentSize and SegmentAge rotate the segment being written; 0: Retain/16 (1 to 64 MiB),
	// and RetainFor/24 (one minute to one hour; one hour without RetainFor).
	SegmentSize int64
	SegmentAge  time.Duration
	// FlushEvery is how often taken events are written out (DefaultFlushEvery).
	FlushEvery time.Duration
	// BlockSize cuts a block before FlushEvery once its events hold this many bytes.
	BlockSize int
	// OnLost is told of events the record could not keep (disk full, write errors, an earlier
	// agent killed with events not yet written), as they are counted.
	OnLost func(gadget, cause string, n uint64)
	// OnWriteError is told of the first write error of a run of them, and nil when writing
	// works again.
	OnWriteError func(error)
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() (Options, error) {
	if o.FlushEvery == 0 {
		o.FlushEvery = DefaultFlushEvery
	}
	if o.BlockSize == 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.Retain < 4*int64(o.BlockSize) {
		return o, fmt.Errorf("retain %d bytes is too little: at least %d (four blocks)", o.Retain, 4*o.BlockSize)
	}
	if o.RetainFor < 0 || o.SegmentAge < 0 || o.SegmentSize < 0 || o.FlushEvery < 0 {
		return o, errors.New("negative duration or size")
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = min(max(o.Retain/16, minSegment), maxSegment)
	}
	if o.SegmentAge == 0 {
		o.SegmentAge = time.Hour
		if o.RetainFor > 0 {
			o.SegmentAge = min(max(o.RetainFor/24, time.Minute), time.Hour)
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// Writer appends events to the record in a directory. Append and Lost may be called from several
// goroutines; one goroutine of the writer compresses and writes.
//
// Durability: events wait in memory at most FlushEvery before they are written, so that a killed
// agent loses at most that much; the state file (see state) lets the next agent count what was
// lost. Each second in which something was written ends with fdatasync of the segment, so that a
// crash of the machine loses about the same. A full disk (or any write error) drops the block
// being written, counted by gadget as CauseDiskFull or CauseWriteError; the next blocks are tried
// as usual.
type Writer struct {
	dir  string
	o    Options
	lock *os.File
	st   *state
	prev *previousRun

	mu     sync.Mutex
	room   *sync.Cond // the queue got shorter, or the writer closed
	cur    *block
	spare  []*block
	queue  []item
	seq    uint64
	slots  map[string]int // gadget to its state slot
	closed bool

	kick    chan struct{}
	done    chan struct{}
	stopped chan struct{}
	syncs   chan syncReq
	synced  chan struct{}

	// The writing goroutine's own.
	enc      *blockEncoder
	frame    []byte
	segs     []segInfo // oldest first; the last is being written when active is not nil
	active   *os.File
	next     uint64 // the next segment's number
	total    int64
	dirty    bool // data written since the last fdatasync
	dirDirty bool // segments made or removed since the directory was synced
	failing  bool

	bytes   atomic.Int64
	oldest  atomic.Int64
	written atomic.Uint64
	flushed atomic.Int64
}

type item struct {
	b *block
	m *Marker
}

type segInfo struct {
	num        uint64
	size       int64
	minT, maxT int64 // of its events and markers; 0 while it has none
	begun      time.Time
}

func (s *segInfo) path(dir string) string { return filepath.Join(dir, segmentName(s.num)) }

// Open opens the record in dir for writing, making dir if needed, and continues it: a record
// left by an earlier agent is kept, its torn last frame (if it was killed mid-write) cut off, and
// what that agent took but did not write is counted as lost. Only one writer may hold a
// directory at a time.
func Open(dir string, o Options) (*Writer, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	enc, err := newBlockEncoder()
	if err != nil {
		lock.Close()
		return nil, err
	}
	w := &Writer{dir: dir, o: o, lock: lock, slots: map[string]int{}, cur: newBlock(), enc: enc,
		kick: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{}),
		syncs: make(chan syncReq, 8), synced: make(chan struct{})}
	w.room = sync.NewCond(&w.mu)
	if err := w.scan(); err != nil {
		lock.Close()
		return nil, err
	}
	if w.st, w.prev, err = openState(dir); err != nil {
		lock.Close()
		return nil, err
	}
	now := o.Now()
	w.st.storeTime(stStarted, now)
	w.st.storeTime(stAlive, now)
	w.carryOver(now)
	w.flushed.Store(now.UnixNano())
	w.updateStats()
	go syncing(w.syncs, w.synced)
	go w.run()
	return w, nil
}

// carryOver counts what the previous run left: events it took and never wrote (it was killed),
// and losses it counted but could not write. They become losses of this run, written like any
// other.
func (w *Writer) carryOver(now time.Time) {
	p := w.prev
	if p == nil {
		return
	}
	for _, l := range p.Losses {
		w.addLoss(l.Gadget, l.Cause, l.Count, p.LossFrom)
	}
	if p.Clean {
		return
	}
	w.queue = append(w.queue, item{m: &Marker{Time: now, Kind: MarkKilled, PID: p.PID, LastAlive: p.LastAlive}})
	for _, g := range slices.Sorted(maps.Keys(p.Unwritten)) {
		n := p.Unwritten[g]
		w.addLoss(g, CauseKilled, n, p.LastAlive)
		if w.o.OnLost != nil {
			w.o.OnLost(g, CauseKilled, n)
		}
	}
}

// Previous tells whether the agent before this one was killed (ended without Close), when it was
// last alive, and how many events it had taken and not written.
func (w *Writer) Previous() (killed bool, pid int, lastAlive time.Time, lost uint64) {
	if w.prev == nil || w.prev.Clean {
		return false, 0, time.Time{}, 0
	}
	for _, n := range w.prev.Unwritten {
		lost += n
	}
	return true, w.prev.PID, w.prev.LastAlive, lost
}

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("the flight record in %s is being written by another agent", dir)
		}
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return f, nil
}

// scan reads the segments' frame headers: their sizes and times, for retention; a torn frame at
// the end of the last one (an agent killed mid-write) is cut off.
func (w *Writer) scan() error {
	nums, err := listSegments(w.dir)
	if err != nil {
		return err
	}
	for i, num := range nums {
		last := i == len(nums)-1
		s := segInfo{num: num}
		end, err := scanSegment(s.path(w.dir), &s)
		if err != nil {
			return err
		}
		if last && end < s.size {
			if end < fileHeaderSize {
				if err := os.Remove(s.path(w.dir)); err != nil {
					return err
				}
				w.next = num + 1
				continue
			}
			if err := os.Truncate(s.path(w.dir), end); err != nil {
				return fmt.Errorf("cutting a torn frame off %s: %w", s.path(w.dir), err)
			}
			s.size = end
		}
		w.segs = append(w.segs, s)
		w.total += s.size
		w.next = num + 1
	}
	return nil
}

// scanSegment fills s's size and times, and returns where its last whole frame ends (0: no
// valid file header).
func scanSegment(path string, s *segInfo) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if s.size, err = size(f); err != nil {
		return 0, err
	}
	if err := checkFileHeader(f); err != nil {
		if errors.Is(err, errIncomplete) {
			return 0, nil
		}
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	off := int64(fileHeaderSize)
	var buf []byte
	for {
		var fr frame
		fr, buf, err = readFrame(f, off, s.size, buf)
		if errors.Is(err, errIncomplete) || errors.Is(err, errCorrupt) {
			return off, nil
		}
		if err != nil {
			return 0, err
		}
		minT, maxT, ok := frameTimes(&fr)
		if ok {
			if s.minT == 0 || minT < s.minT {
				s.minT = minT
			}
			s.maxT = max(s.maxT, maxT)
		}
		off = fr.end()
	}
}

// frameTimes is a frame's time range: its events', or a marker's time.
func frameTimes(fr *frame) (minT, maxT int64, ok bool) {
	switch fr.typ {
	case frameData:
		minT, maxT, err := parseTimes(fr.dir)
		return minT, maxT, err == nil
	case frameMarker:
		var m Marker
		if json.Unmarshal(fr.dir, &m) != nil {
			return 0, 0, false
		}
		return m.Time.UnixNano(), m.Time.UnixNano(), true
	}
	return 0, 0, false
}

func listSegments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var nums []uint64
	for _, e := range entries {
		if n, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	return nums, nil
}

// Append takes an event; it is written within FlushEvery. It waits only while maxQueued full
// blocks wait to be written (the disk or the compressor is behind). Appends after Close are
// ignored.
func (w *Writer) Append(r *Record) {
	w.mu.Lock()
	for len(w.queue) >= maxQueued && !w.closed {
		w.room.Wait()
	}
	if w.closed {
		w.mu.Unlock()
		return
	}
	slot, ok := w.slots[r.Gadget]
	if !ok {
		slot = w.st.gadgetSlot(r.Gadget)
		w.slots[r.Gadget] = slot
	}
	w.cur.add(r, w.seq)
	w.seq++
	w.st.add(slot+nameLen, 1)
	full := w.cur.size >= w.o.BlockSize
	if full {
		w.cutLocked()
	}
	w.mu.Unlock()
	if full {
		w.wake()
	}
}

// cutLocked queues the block being built and begins another.
func (w *Writer) cutLocked() {
	w.queue = append(w.queue, item{b: w.cur})
	if n := len(w.spare); n > 0 {
		w.cur, w.spare = w.spare[n-1], w.spare[:n-1]
	} else {
		w.cur = newBlock()
	}
}

func (w *Writer) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Mark writes a marker after the events taken before it.
func (w *Writer) Mark(m Marker) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	if w.cur.count > 0 {
		w.cutLocked()
	}
	w.queue = append(w.queue, item{m: &m})
	w.mu.Unlock()
	w.wake()
}

// Lost counts events lost elsewhere (the kernel's ring buffer, a queue of the agent) for the
// record: they are written as a MarkLost marker at the next flush.
func (w *Writer) Lost(gadget, cause string, n uint64) {
	if n == 0 {
		return
	}
	w.addLoss(gadget, cause, n, w.o.Now())
}

func (w *Writer) addLoss(gadget, cause string, n uint64, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.st.lossSlot(gadget, cause)
	if w.st.load(o+2*nameLen) == 0 {
		w.st.storeTime(o+2*nameLen+8, at)
	}
	w.st.add(o+2*nameLen, n)
}

func (w *Writer) run() {
	defer close(w.stopped)
	tick := time.NewTicker(w.o.FlushEvery)
	defer tick.Stop()
	for {
		var timed, stop bool
		select {
		case <-tick.C:
			timed = true
		case <-w.kick:
		case <-w.done:
			stop = true
		}
		for _, it := range w.take(timed || stop) {
			w.write(it)
		}
		if timed || stop {
			now := w.o.Now()
			w.writeLosses(now)
			w.expire(now)
			w.sync()
			w.st.storeTime(stAlive, now)
			w.flushed.Store(now.UnixNano())
			w.updateStats()
		}
		if stop {
			return
		}
	}
}

// take returns what waits to be written; with all, the block being built too.
func (w *Writer) take(all bool) []item {
	w.mu.Lock()
	defer w.mu.Unlock()
	if all && w.cur.count > 0 {
		w.cutLocked()
	}
	items := w.queue
	w.queue = nil
	w.room.Broadcast()
	return items
}

func (w *Writer) write(it item) {
	if it.m != nil {
		if err := w.putMarker(it.m); err != nil {
			w.writeFailed(err)
		}
		return
	}
	b := it.b
	w.frame = w.enc.encode(w.frame[:0], b)
	err := w.put(w.frame, b.minT, b.maxT)
	w.mu.Lock()
	for g, n := range b.gadgets {
		slot := w.slots[g]
		if err == nil {
			w.st.add(slot+nameLen+8, n)
		} else {
			w.st.add(slot+nameLen+16, n)
		}
	}
	w.mu.Unlock()
	if err == nil {
		w.written.Add(uint64(b.count))
		w.writeWorks()
	} else {
		cause := CauseWriteError
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			cause = CauseDiskFull
		}
		for g, n := range b.gadgets {
			w.addLoss(g, cause, n, time.Unix(0, b.minT))
			if w.o.OnLost != nil {
				w.o.OnLost(g, cause, n)
			}
		}
		w.writeFailed(err)
	}
	b.reset()
	w.mu.Lock()
	w.spare = append(w.spare, b)
	w.mu.Unlock()
}

func (w *Writer) writeFailed(err error) {
	if !w.failing && w.o.OnWriteError != nil {
		w.o.OnWriteError(err)
	}
	w.failing = true
}

func (w *Writer) writeWorks() {
	if w.failing && w.o.OnWriteError != nil {
		w.o.OnWriteError(nil)
	}
	w.failing = false
}

func (w *Writer) putMarker(m *Marker) error {
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	w.frame = appendFrame(w.frame[:0], frameMarker, body, nil)
	t := m.Time.UnixNano()
	return w.put(w.frame, t, t)
}

// writeLosses writes the losses counted since the last marker of them, if any. Until that
// marker is written they stay in the state file, for the next agent if this one is killed.
func (w *Writer) writeLosses(now time.Time) {
	type pending struct {
		off  int
		loss Loss
	}
	var list []pending
	var from time.Time
	w.mu.Lock()
	for i := range lossSlots {
		o := lossSlot0 + i*lossSlotLen
		gadget := cName(w.st.mem[o : o+nameLen])
		if gadget == "" {
			break
		}
		if n := w.st.load(o + 2*nameLen); n > 0 {
			list = append(list, pending{o, Loss{Gadget: gadget, Cause: cName(w.st.mem[o+nameLen : o+2*nameLen]), Count: n}})
			if t := time.Unix(0, int64(w.st.load(o+2*nameLen+8))); from.IsZero() || t.Before(from) {
				from = t
			}
		}
	}
	w.mu.Unlock()
	if len(list) == 0 {
		return
	}
	m := Marker{Time: now, Kind: MarkLost, From: from}
	for _, p := range list {
		m.Lost = append(m.Lost, p.loss)
	}
	if err := w.putMarker(&m); err != nil {
		w.writeFailed(err)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range list {
		w.st.sub(p.off+2*nameLen, p.loss.Count)
		if w.st.load(p.off+2*nameLen) > 0 { // more came while it was written
			w.st.storeTime(p.off+2*nameLen+8, now)
		}
	}
}

// put writes a frame at the end of the segment being written, after making room for it: a new
// segment when this one is full or old, the oldest segments deleted while the record would
// exceed Retain. On a write error nothing of the frame stays.
func (w *Writer) put(frame []byte, minT, maxT int64) error {
	now := w.o.Now()
	if w.active != nil {
		s := &w.segs[len(w.segs)-1]
		if s.size >= w.o.SegmentSize || (s.maxT != 0 && now.Sub(s.begun) >= w.o.SegmentAge) {
			w.seal()
		}
	}
	need := int64(len(frame))
	if w.active == nil {
		need += fileHeaderSize
	}
	for w.total+need > w.o.Retain {
		switch {
		case len(w.segs) > 1 || (len(w.segs) == 1 && w.active == nil):
			if err := w.removeOldest(); err != nil {
				return err
			}
		case w.active != nil:
			w.seal()
			need += fileHeaderSize
		default:
			return fmt.Errorf("a frame of %d bytes is larger than the record may be (%d)", len(frame), w.o.Retain)
		}
	}
	if w.active == nil {
		if err := w.begin(now); err != nil {
			return err
		}
	}
	s := &w.segs[len(w.segs)-1]
	if _, err := w.active.WriteAt(frame, s.size); err != nil {
		// Take back what was written of it, so that the segment ends with a whole frame.
		w.active.Truncate(s.size)
		return fmt.Errorf("writing %s: %w", s.path(w.dir), err)
	}
	s.size += int64(len(frame))
	w.total += int64(len(frame))
	if s.minT == 0 || minT < s.minT {
		s.minT = minT
	}
	s.maxT = max(s.maxT, maxT)
	w.dirty = true
	return nil
}

// begin starts a new segment.
func (w *Writer) begin(now time.Time) error {
	s := segInfo{num: w.next, begun: now}
	f, err := os.OpenFile(s.path(w.dir), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(fileHeader()); err != nil {
		f.Close()
		os.Remove(s.path(w.dir))
		return fmt.Errorf("writing %s: %w", s.path(w.dir), err)
	}
	w.next++
	s.size = fileHeaderSize
	w.total += s.size
	w.segs = append(w.segs, s)
	w.active = f
	w.dirDirty = true
	return nil
}

// seal ends the segment being written (it is synced and closed behind the writer); the next
// frame begins another.
func (w *Writer) seal() {
	if w.active == nil {
		return
	}
	w.syncs <- syncReq{f: w.active, close: true}
	w.active, w.dirty = nil, false
}

func (w *Writer) removeOldest() error {
	s := w.segs[0]
	if err := os.Remove(s.path(w.dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("deleting the oldest segment: %w", err)
	}
	w.segs = w.segs[1:]
	w.total -= s.size
	w.dirDirty = true
	return nil
}

// expire deletes segments whose newest event is older than RetainFor.
func (w *Writer) expire(now time.Time) {
	if w.o.RetainFor == 0 {
		return
	}
	cutoff := now.Add(-w.o.RetainFor).UnixNano()
	for len(w.segs) > 0 && w.segs[0].maxT != 0 && w.segs[0].maxT < cutoff {
		if w.active != nil && len(w.segs) == 1 {
			w.seal()
		}
		if w.removeOldest() != nil {
			return
		}
	}
}

// sync asks for what was written to be made durable: the segment's data, and the directory's
// entries.
func (w *Writer) sync() {
	if w.dirty && w.active != nil {
		w.syncs <- syncReq{f: w.active}
	}
	w.dirty = false
	if w.dirDirty {
		w.syncs <- syncReq{dir: w.dir}
		w.dirDirty = false
	}
}

// syncReq asks the syncing goroutine for an fdatasync of f (then to close it, for a sealed
// segment) or an fsync of a directory.
type syncReq struct {
	f     *os.File
	close bool
	dir   string
}

// syncing runs the syncs, in order, off the writing goroutine: a slow disk's fdatasync would
// otherwise hold up compressing and writing, and behind them the gadgets' readers. A queue of
// them full (a disk far behind) holds the writer up as a full queue of blocks does.
func syncing(reqs <-chan syncReq, done chan<- struct{}) {
	defer close(done)
	for r := range reqs {
		if r.f != nil {
			unix.Fdatasync(int(r.f.Fd()))
			if r.close {
				r.f.Close()
			}
		}
		if r.dir != "" {
			if d, err := os.Open(r.dir); err == nil {
				d.Sync()
				d.Close()
			}
		}
	}
}

func (w *Writer) updateStats() {
	w.bytes.Store(w.total)
	var oldest int64
	for _, s := range w.segs {
		if s.minT != 0 && (oldest == 0 || s.minT < oldest) {
			oldest = s.minT
		}
	}
	w.oldest.Store(oldest)
}

// Stats are the record's figures, as of the last flush.
type Stats struct {
	Bytes   int64     // of the segments on disk
	Oldest  time.Time // the oldest event or marker kept; zero when there is none
	Written uint64    // events written by this writer
	Flushed time.Time // the last flush (every FlushEvery while the writer works)
}

// Stats returns the record's figures.
func (w *Writer) Stats() Stats {
	s := Stats{Bytes: w.bytes.Load(), Written: w.written.Load(), Flushed: time.Unix(0, w.flushed.Load())}
	if o := w.oldest.Load(); o != 0 {
		s.Oldest = time.Unix(0, o)
	}
	return s
}

// Close writes what was taken, syncs, and releases the directory. A later agent finds the run
// ended cleanly.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.room.Broadcast()
	w.mu.Unlock()
	close(w.done)
	<-w.stopped
	w.seal()
	w.sync()
	close(w.syncs)
	<-w.synced
	err := w.st.close(true)
	return errors.Join(err, w.lock.Close())
}
