package flightrec

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/event"
)

// Query selects events of a record. Zero values select everything.
type Query struct {
	From, To time.Time // events at From or later, before To
	Gadgets  []string
	Kinds    []string
	// Select picks containers as trace's filters do. An event matches when its actor's container,
	// or a container it is about (Record.Targets), is selected; with Host, only host processes'.
	Select container.Selector
	// JSON and Rows say which forms of the events to read: only those are decompressed.
	JSON, Rows bool
}

// Entry is one event read. Its slices are valid until the callback it was passed to returns.
type Entry struct {
	Time      time.Time
	Gadget    string
	Kind      string
	Container *event.Container // the actor's; nil for the host
	JSON      []byte           // the JSON line, with its newline (Query.JSON)
	Row       []byte           // the table cells after TIME, separated by 0x1f (Query.Rows)
}

// Summary is what a scan saw: the events that matched, and the record's gaps in its time range.
type Summary struct {
	Events uint64    `json:"events"`
	First  time.Time `json:"first,omitzero"` // of the events matched
	Last   time.Time `json:"last,omitzero"`
	Since  time.Time `json:"record_since,omitzero"` // the oldest frame kept in the record
	Gaps   []Gap     `json:"gaps"`
	// Skipped counts bytes of frames that did not check (corruption) in segments being read.
	Skipped int64 `json:"skipped_bytes,omitempty"`
}

// Gap is a time in which the record may miss events.
type Gap struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Reason: GapStopped (no agent ran), GapKilled (the agent ended without stopping; Lost has
	// what it had taken and not written), or GapLost (events lost while it ran).
	Reason string `json:"reason"`
	Lost   []Loss `json:"lost,omitempty"`
}

// Gap reasons.
const (
	GapStopped = "stopped"
	GapKilled  = "killed"
	GapLost    = "lost"
)

// Reader reads a record, also while an agent writes it. It is not safe for concurrent use.
type Reader struct {
	dir   string
	dec   *zstd.Decoder
	strs  map[string]string
	conts map[containerKey]*event.Container
	buf   []byte // a directory
	raw   []byte // compressed streams
	sel   []selected
	slots []slot
}

// selected is a group of a block that a query reads, decompressed.
type selected struct {
	g              *groupDir
	all            bool // its actor matches: no need to look at each event's targets
	idx, json, row []byte
}

// slot is an event of a block, by its sequence: the group it is in and where.
type slot struct {
	grp          int32 // -1: not selected
	t            int64
	kind         string
	json, row    []byte
	targetsMatch bool
	kindMatch    bool
}

// NewReader opens the record in dir.
func NewReader(dir string) (*Reader, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("no flight record in %s: %w", dir, errors.Unwrap(err))
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return nil, err
	}
	return &Reader{dir: dir, dec: dec, strs: map[string]string{}, conts: map[containerKey]*event.Container{}}, nil
}

// Close releases the reader.
func (r *Reader) Close() { r.dec.Close() }

// Scan calls fn for every event that matches q, in the order the agent took them, and returns
// what it saw. An error from fn stops it.
func (r *Reader) Scan(ctx context.Context, q Query, fn func(*Entry) error) (Summary, error) {
	s := newScan(r, q, fn)
	err := s.pass(ctx)
	return s.summary(), err
}

// Follow scans as Scan does, then waits for events written later and passes them on as they come,
// until ctx is done (nil error) or fn fails. every is how often it looks.
func (r *Reader) Follow(ctx context.Context, q Query, every time.Duration, fn func(*Entry) error) (Summary, error) {
	s := newScan(r, q, fn)
	for {
		if err := s.pass(ctx); err != nil {
			return s.summary(), err
		}
		select {
		case <-ctx.Done():
			return s.summary(), nil
		case <-time.After(every):
		}
	}
}

// scan is one query's progress through the record: it can be resumed where it stopped.
type scan struct {
	r       *Reader
	q       Query
	fn      func(*Entry) error
	from    int64
	to      int64 // exclusive; max when open
	gadgets map[string]bool
	kinds   map[string]bool
	matches map[*event.Container]bool

	seg   uint64 // the segment being read, and where
	off   int64
	begun bool
	entry Entry

	sum      Summary
	runSeen  bool  // frames of the current run were read
	runEnd   int64 // the last time seen of the current run
	ended    bool  // its end is known: a stop or a killed marker
	stopped  int64 // its stop marker's time, if any
	lastKill int   // index in sum.Gaps of the last killed gap, -1
}

func newScan(r *Reader, q Query, fn func(*Entry) error) *scan {
	s := &scan{r: r, q: q, fn: fn, to: 1<<63 - 1, matches: map[*event.Container]bool{}, lastKill: -1}
	if !q.From.IsZero() {
		s.from = q.From.UnixNano()
	}
	if !q.To.IsZero() {
		s.to = q.To.UnixNano()
	}
	if len(q.Gadgets) > 0 {
		s.gadgets = map[string]bool{}
		for _, g := range q.Gadgets {
			s.gadgets[g] = true
		}
	}
	if len(q.Kinds) > 0 {
		s.kinds = map[string]bool{}
		for _, k := range q.Kinds {
			s.kinds[k] = true
		}
	}
	return s
}

// pass reads from where the scan stopped to the end of what is written now.
func (s *scan) pass(ctx context.Context) error {
	for {
		nums, err := listSegments(s.r.dir)
		if err != nil {
			return err
		}
		i, _ := slices.BinarySearch(nums, s.seg)
		if !s.begun || i == len(nums) || nums[i] != s.seg {
			// Not begun, or the segment being read was deleted (retention): the next one kept.
			if i == len(nums) {
				return nil
			}
			s.seg, s.off, s.begun = nums[i], fileHeaderSize, true
		}
		last := i == len(nums)-1
		done, err := s.segment(ctx, last)
		if err != nil {
			return err
		}
		if !done || last {
			return nil
		}
		s.seg, s.off = nums[i+1], fileHeaderSize
	}
}

// segment reads the current segment from s.off; done when it will not grow (a later one exists
// and this one was read to its end, or to a frame that does not check).
func (s *scan) segment(ctx context.Context, last bool) (done bool, err error) {
	f, err := os.Open(filepath.Join(s.r.dir, segmentName(s.seg)))
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	sz, err := size(f)
	if err != nil {
		return false, err
	}
	if s.off == fileHeaderSize {
		if err := checkFileHeader(f); err != nil {
			if errors.Is(err, errIncomplete) && last {
				return false, nil
			}
			return true, fmt.Errorf("%s: %w", f.Name(), err)
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return false, nil
		}
		var fr frame
		fr, s.r.buf, err = readFrame(f, s.off, sz, s.r.buf)
		switch {
		case (errors.Is(err, errIncomplete) || errors.Is(err, errCorrupt)) && last:
			return false, nil // being written; a torn end is cut off by the next agent
		case errors.Is(err, errIncomplete) || errors.Is(err, errCorrupt):
			s.sum.Skipped += sz - s.off
			return true, nil
		case err != nil:
			return false, err
		}
		switch fr.typ {
		case frameData:
			err = s.block(f, &fr)
		case frameMarker:
			s.marker(fr.dir)
		}
		if err != nil {
			return false, err
		}
		s.off = fr.end()
	}
}

func (s *scan) seen(minT, maxT int64) {
	if s.sum.Since.IsZero() || minT < s.sum.Since.UnixNano() {
		s.sum.Since = time.Unix(0, minT)
	}
	s.runSeen = true
	s.runEnd = max(s.runEnd, maxT)
}

func (s *scan) marker(body []byte) {
	var m Marker
	if json.Unmarshal(body, &m) != nil {
		return
	}
	t := m.Time.UnixNano()
	switch m.Kind {
	case MarkStart:
		if s.runSeen && !s.ended {
			// The run before ended with neither a stop nor a killed marker: a stop that could
			// not be written (a full disk). It was not running after its last sign.
			s.stopped = s.runEnd
		}
		if s.stopped != 0 {
			s.gap(Gap{From: time.Unix(0, s.stopped), To: m.Time, Reason: GapStopped})
		}
		s.stopped, s.runEnd, s.ended = 0, 0, false
	case MarkStop:
		s.stopped, s.ended = t, true
	case MarkKilled:
		s.stopped, s.ended = 0, true
		if s.gap(Gap{From: m.LastAlive, To: m.Time, Reason: GapKilled}) {
			s.lastKill = len(s.sum.Gaps) - 1
		}
	case MarkLost:
		var lost, killed []Loss
		for _, l := range m.Lost {
			if s.gadgets != nil && !s.gadgets[l.Gadget] {
				continue
			}
			if l.Cause == CauseKilled {
				killed = append(killed, l)
			} else {
				lost = append(lost, l)
			}
		}
		if len(killed) > 0 && s.lastKill >= 0 {
			g := &s.sum.Gaps[s.lastKill]
			g.Lost = append(g.Lost, killed...)
		} else {
			lost = append(lost, killed...)
		}
		if len(lost) > 0 {
			s.gap(Gap{From: m.From, To: m.Time, Reason: GapLost, Lost: lost})
		}
	}
	s.seen(t, t)
}

// gap keeps a gap that overlaps the query's time range.
func (s *scan) gap(g Gap) bool {
	if g.To.UnixNano() < s.from || g.From.UnixNano() >= s.to {
		return false
	}
	s.sum.Gaps = append(s.sum.Gaps, g)
	return true
}

func (s *scan) summary() Summary { return s.sum }

// matchContainer tells whether the query selects a container (nil: the host), remembering the
// answer for each container value (the reader makes one per container).
func (s *scan) matchContainer(c *event.Container) bool {
	sel := &s.q.Select
	if sel.Host {
		return c == nil
	}
	if !sel.Active() {
		return true
	}
	if c == nil {
		return false
	}
	m, ok := s.matches[c]
	if !ok {
		m = sel.Matches(&container.Container{Container: c})
		s.matches[c] = m
	}
	return m
}

// block reads the events of a data frame that the query selects.
func (s *scan) block(f *os.File, fr *frame) error {
	r := s.r
	d, err := parseBlockDir(fr.dir, r.strs, r.conts)
	if err != nil {
		s.sum.Skipped += fr.end() - fr.off
		return nil
	}
	s.seen(d.minT, d.maxT)
	if d.maxT < s.from || d.minT >= s.to {
		return nil
	}
	targeted := s.q.Select.Active() && !s.q.Select.Host
	r.sel = r.sel[:0]
	for i := range d.groups {
		g := &d.groups[i]
		if g.maxT < s.from || g.minT >= s.to || (s.gadgets != nil && !s.gadgets[g.gadget]) {
			continue
		}
		if s.kinds != nil && !slices.ContainsFunc(g.kinds, func(k string) bool { return s.kinds[k] }) {
			continue
		}
		all := s.matchContainer(g.container)
		if !all && !(targeted && slices.ContainsFunc(g.targets, s.matchContainer)) {
			continue
		}
		if len(r.sel) < cap(r.sel) {
			r.sel = r.sel[:len(r.sel)+1]
		} else {
			r.sel = append(r.sel, selected{})
		}
		sl := &r.sel[len(r.sel)-1]
		sl.g, sl.all = g, all
		if err := s.read(f, fr, sl); err != nil {
			return err
		}
	}
	if len(r.sel) == 0 {
		return nil
	}
	return s.emit(&d)
}

// read decompresses what the query needs of a group.
func (s *scan) read(f *os.File, fr *frame, sl *selected) error {
	g := sl.g
	last := streamJSON
	if s.q.Rows {
		last = streamRow
	}
	start, end := g.streams[streamIdx].off, g.streams[last].off+g.streams[last].len
	r := s.r
	if int64(cap(r.raw)) < end-start {
		r.raw = make([]byte, end-start)
	}
	raw := r.raw[:end-start]
	if _, err := f.ReadAt(raw, fr.bodyOff+start); err != nil {
		return fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	var err error
	part := func(st int) []byte { return raw[g.streams[st].off-start : g.streams[st].off-start+g.streams[st].len] }
	decode := func(st int, dst []byte) []byte {
		if err != nil {
			return dst
		}
		dst, err = r.dec.DecodeAll(part(st), dst[:0])
		return dst
	}
	sl.idx = decode(streamIdx, sl.idx)
	if s.q.JSON {
		sl.json = decode(streamJSON, sl.json)
	}
	if s.q.Rows {
		sl.row = decode(streamRow, sl.row)
	}
	if err != nil {
		return fmt.Errorf("%s: a block at %d does not decompress: %w", f.Name(), fr.off, err)
	}
	return nil
}

// emit puts the selected groups' events in the order the agent took them and passes those that
// match on.
func (s *scan) emit(d *blockDir) error {
	r := s.r
	if cap(r.slots) < d.count {
		r.slots = make([]slot, d.count)
	}
	slots := r.slots[:d.count]
	for i := range slots {
		slots[i].grp = -1
	}
	for gi := range r.sel {
		sl := &r.sel[gi]
		if err := s.place(slots, d.base, int32(gi), sl); err != nil {
			return err
		}
	}
	e := &s.entry
	for i := range slots {
		sl := &slots[i]
		if sl.grp < 0 || sl.t < s.from || sl.t >= s.to || !sl.kindMatch || !sl.targetsMatch {
			continue
		}
		g := r.sel[sl.grp].g
		*e = Entry{Time: time.Unix(0, sl.t), Gadget: g.gadget, Kind: sl.kind, Container: g.container, JSON: sl.json, Row: sl.row}
		if s.sum.First.IsZero() || e.Time.Before(s.sum.First) {
			s.sum.First = e.Time
		}
		if e.Time.After(s.sum.Last) {
			s.sum.Last = e.Time
		}
		s.sum.Events++
		if err := s.fn(e); err != nil {
			return err
		}
	}
	return nil
}

// place reads a group's index into the block's slots.
func (s *scan) place(slots []slot, base int64, gi int32, sl *selected) error {
	g := sl.g
	idx, jsonOff, rowOff := sl.idx, 0, 0
	next := func() uint64 {
		v, n := binary.Uvarint(idx)
		if n <= 0 {
			idx = nil
			return 0
		}
		idx = idx[n:]
		return v
	}
	for range g.count {
		seq := next()
		dt, n := binary.Varint(idx)
		if n <= 0 || seq >= uint64(len(slots)) {
			return errCorrupt
		}
		idx = idx[n:]
		kind := next()
		ok := sl.all
		for nt := next(); nt > 0; nt-- {
			if t := next(); !ok && t < uint64(len(g.targets)) {
				ok = s.matchContainer(g.targets[t])
			}
		}
		jl, rl := int(next()), int(next())
		if kind >= uint64(len(g.kinds)) || (s.q.JSON && jsonOff+jl > len(sl.json)) || (s.q.Rows && rowOff+rl > len(sl.row)) {
			return errCorrupt
		}
		k := g.kinds[kind]
		x := &slots[seq]
		*x = slot{grp: gi, t: base + dt, kind: k, targetsMatch: ok, kindMatch: s.kinds == nil || s.kinds[k]}
		if s.q.JSON {
			x.json = sl.json[jsonOff : jsonOff+jl]
		}
		if s.q.Rows {
			x.row = sl.row[rowOff : rowOff+rl]
		}
		jsonOff += jl
		rowOff += rl
	}
	return nil
}
