package flightrec

import (
	"encoding/binary"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/ghostwatch/ghostwatch/tracer/event"
)

// Record is one event as the record keeps it.
type Record struct {
	Time      time.Time
	Gadget    string
	Kind      string           // "" for a gadget with one kind
	Container *event.Container // the actor's; nil: the host
	// Targets are the containers the event is about besides its actor's (the owner of a namespace
	// entered, of a cgroup written to): a query for one of them finds the event too.
	Targets []*event.Container
	JSON    []byte // the JSON line `trace -o json` writes, without its newline
	Row     []byte // the table cells after TIME, separated by rowSep
}

// groupKey is a block's group: the events of one gadget whose actor is one container (the zero
// key: the host). A container is its fields, not its id alone: one seen by its cgroup path only
// (no name, no pod) and the same one known to containerd are two entries, so that a query by pod
// finds the events that named the pod.
type groupKey struct {
	gadget    string
	container containerKey
}

// ptrKey finds a group by the container value events share, without hashing its fields.
type ptrKey struct {
	gadget    string
	container *event.Container
}

func keyOf(c *event.Container) containerKey {
	if c == nil {
		return containerKey{}
	}
	return containerKey{c.ID, c.Name, c.Runtime, c.Image, c.Pod, c.K8sNamespace}
}

// group collects the events of one groupKey in a block being built.
type group struct {
	gadget     string
	container  *event.Container
	count      int
	minT, maxT int64
	kinds      []string
	targets    []*event.Container // the union of its events' targets, by id
	idx        []byte             // per event: seq, time, kind, targets, lengths
	json, row  []byte
}

func (g *group) kindRef(k string) uint64 {
	for i, x := range g.kinds {
		if x == k {
			return uint64(i)
		}
	}
	g.kinds = append(g.kinds, k)
	return uint64(len(g.kinds) - 1)
}

func (g *group) targetRef(c *event.Container) uint64 {
	for i, x := range g.targets {
		if x == c || keyOf(x) == keyOf(c) {
			return uint64(i)
		}
	}
	g.targets = append(g.targets, c)
	return uint64(len(g.targets) - 1)
}

// block is a data frame being built: the events appended since the last one was cut.
type block struct {
	groups   map[groupKey]*group
	byPtr    map[ptrKey]*group
	order    []*group // in order of first event
	free     []*group // reset groups, kept for their buffers
	count    int
	firstSeq uint64
	base     int64 // the first event's time: the directory's times are relative to it
	minT     int64
	maxT     int64
	size     int               // bytes of JSON and rows
	gadgets  map[string]uint64 // events per gadget
}

func newBlock() *block {
	return &block{groups: map[groupKey]*group{}, byPtr: map[ptrKey]*group{}, gadgets: map[string]uint64{}}
}

// reset empties the block, keeping its buffers.
func (b *block) reset() {
	for _, g := range b.order {
		*g = group{kinds: g.kinds[:0], targets: g.targets[:0], idx: g.idx[:0], json: g.json[:0], row: g.row[:0]}
		b.free = append(b.free, g)
	}
	clear(b.groups)
	clear(b.byPtr)
	clear(b.gadgets)
	b.order = b.order[:0]
	b.count, b.size = 0, 0
}

// add appends an event with its sequence number (its place in the agent's order).
func (b *block) add(r *Record, seq uint64) {
	t := r.Time.UnixNano()
	if b.count == 0 {
		b.firstSeq, b.base, b.minT, b.maxT = seq, t, t, t
	}
	b.minT, b.maxT = min(b.minT, t), max(b.maxT, t)
	g := b.group(r, t)
	g.count++
	g.minT, g.maxT = min(g.minT, t), max(g.maxT, t)
	g.idx = binary.AppendUvarint(g.idx, seq-b.firstSeq)
	g.idx = binary.AppendVarint(g.idx, t-b.base)
	g.idx = binary.AppendUvarint(g.idx, g.kindRef(r.Kind))
	g.idx = binary.AppendUvarint(g.idx, uint64(len(r.Targets)))
	for _, c := range r.Targets {
		g.idx = binary.AppendUvarint(g.idx, g.targetRef(c))
	}
	g.idx = binary.AppendUvarint(g.idx, uint64(len(r.JSON)+1))
	g.idx = binary.AppendUvarint(g.idx, uint64(len(r.Row)))
	g.json = append(append(g.json, r.JSON...), '\n')
	g.row = append(g.row, r.Row...)
	b.count++
	b.gadgets[r.Gadget]++
	b.size += len(r.JSON) + 1 + len(r.Row) + 8
}

// group returns the group of a record's gadget and actor, making it if needed.
func (b *block) group(r *Record, t int64) *group {
	pk := ptrKey{r.Gadget, r.Container}
	if g, ok := b.byPtr[pk]; ok {
		return g
	}
	key := groupKey{r.Gadget, keyOf(r.Container)}
	g := b.groups[key]
	if g == nil {
		if n := len(b.free); n > 0 {
			g, b.free = b.free[n-1], b.free[:n-1]
		} else {
			g = &group{}
		}
		g.gadget, g.container, g.minT, g.maxT = r.Gadget, r.Container, t, t
		b.groups[key] = g
		b.order = append(b.order, g)
	}
	b.byPtr[pk] = g
	return g
}

// blockEncoder turns blocks into frames, reusing its buffers.
type blockEncoder struct {
	zstd    *zstd.Encoder
	dir     dirWriter
	body    []byte
	strings map[string]uint64
	strList []string
	conts   map[containerKey]uint64 // a container to its place + 1
	contDir dirWriter
	nConts  uint64
	groups  dirWriter
}

func newBlockEncoder() (*blockEncoder, error) {
	// The fastest level: a storm's JSON compresses about tenfold at it, for a fraction of a core.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(true), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, err
	}
	return &blockEncoder{zstd: enc, strings: map[string]uint64{}, conts: map[containerKey]uint64{}}, nil
}

func (e *blockEncoder) str(s string) uint64 {
	if i, ok := e.strings[s]; ok {
		return i
	}
	i := uint64(len(e.strList))
	e.strings[s] = i
	e.strList = append(e.strList, s)
	return i
}

// cont returns a container's reference: 0 for the host, else its place in the table + 1.
func (e *blockEncoder) cont(c *event.Container) uint64 {
	if c == nil {
		return 0
	}
	key := keyOf(c)
	if i, ok := e.conts[key]; ok {
		return i
	}
	e.nConts++
	e.conts[key] = e.nConts
	for _, s := range []string{c.ID, c.Name, c.Runtime, c.Image, c.Pod, c.K8sNamespace} {
		e.contDir.uint(e.str(s))
	}
	return e.nConts
}

// encode appends the block as a data frame to dst.
func (e *blockEncoder) encode(dst []byte, b *block) []byte {
	clear(e.strings)
	clear(e.conts)
	e.strList, e.nConts = e.strList[:0], 0
	e.contDir.b, e.groups.b, e.body = e.contDir.b[:0], e.groups.b[:0], e.body[:0]
	for _, g := range b.order {
		gw := &e.groups
		gw.uint(e.str(g.gadget))
		gw.uint(e.cont(g.container))
		gw.uint(uint64(g.count))
		gw.int(g.minT - b.base)
		gw.int(g.maxT - b.base)
		gw.uint(uint64(len(g.kinds)))
		for _, k := range g.kinds {
			gw.uint(e.str(k))
		}
		gw.uint(uint64(len(g.targets)))
		for _, c := range g.targets {
			gw.uint(e.cont(c))
		}
		for _, s := range [][]byte{g.idx, g.json, g.row} {
			n := len(e.body)
			e.body = e.zstd.EncodeAll(s, e.body)
			gw.uint(uint64(len(e.body) - n))
			gw.uint(uint64(len(s)))
		}
	}
	d := &e.dir
	d.b = d.b[:0]
	d.int(b.base)
	d.int(b.minT - b.base)
	d.int(b.maxT - b.base)
	d.uint(b.firstSeq)
	d.uint(uint64(b.count))
	d.uint(uint64(len(e.strList)))
	for _, s := range e.strList {
		d.str(s)
	}
	d.uint(e.nConts)
	d.b = append(d.b, e.contDir.b...)
	d.uint(uint64(len(b.order)))
	d.b = append(d.b, e.groups.b...)
	return appendFrame(dst, frameData, d.b, e.body)
}

// blockDir is a data frame's directory, read back.
type blockDir struct {
	base       int64 // the index's times are relative to it
	minT, maxT int64
	firstSeq   uint64
	count      int
	containers []*event.Container // by reference - 1
	groups     []groupDir
}

// groupDir is one group of a block, and where its three streams are in the frame's body.
type groupDir struct {
	gadget     string
	container  *event.Container // nil: the host
	count      int
	minT, maxT int64
	kinds      []string
	targets    []*event.Container
	streams    [3]streamDir // index, JSON, rows
}

type streamDir struct {
	off, len int64 // in the body
	raw      int   // uncompressed
}

const (
	streamIdx = iota
	streamJSON
	streamRow
)

// containerKey is a container's fields, as a map key.
type containerKey struct{ id, name, runtime, image, pod, k8sNamespace string }

// parseTimes reads only a block directory's time range.
func parseTimes(dir []byte) (minT, maxT int64, err error) {
	r := dirReader{b: dir}
	base := r.int()
	minT, maxT = base+r.int(), base+r.int()
	return minT, maxT, r.err
}

// parseBlockDir reads a data frame's directory. strs interns its strings across blocks.
func parseBlockDir(dir []byte, strs map[string]string, conts map[containerKey]*event.Container) (blockDir, error) {
	r := dirReader{b: dir}
	var d blockDir
	base := r.int()
	d.base, d.minT, d.maxT = base, base+r.int(), base+r.int()
	d.firstSeq = r.uint()
	d.count = int(r.uint())
	strList := make([]string, r.count())
	for i := range strList {
		b := r.bytes()
		s, ok := strs[string(b)]
		if !ok {
			s = string(b)
			strs[s] = s
		}
		strList[i] = s
	}
	str := func() string {
		i := r.uint()
		if i >= uint64(len(strList)) {
			r.err = errCorrupt
			return ""
		}
		return strList[i]
	}
	d.containers = make([]*event.Container, r.count())
	for i := range d.containers {
		c := containerKey{str(), str(), str(), str(), str(), str()}
		// The same container in every block is one value, so that a reader's label and JSON of it
		// are made once.
		p, ok := conts[c]
		if !ok {
			p = &event.Container{ID: c.id, Name: c.name, Runtime: c.runtime, Image: c.image, Pod: c.pod, K8sNamespace: c.k8sNamespace}
			conts[c] = p
		}
		d.containers[i] = p
	}
	cont := func() *event.Container {
		i := r.uint()
		if i > uint64(len(d.containers)) {
			r.err = errCorrupt
			return nil
		}
		if i == 0 {
			return nil
		}
		return d.containers[i-1]
	}
	d.groups = make([]groupDir, r.count())
	var off int64
	for i := range d.groups {
		g := &d.groups[i]
		g.gadget = str()
		g.container = cont()
		g.count = int(r.uint())
		g.minT, g.maxT = base+r.int(), base+r.int()
		g.kinds = make([]string, r.count())
		for k := range g.kinds {
			g.kinds[k] = str()
		}
		g.targets = make([]*event.Container, r.count())
		for k := range g.targets {
			g.targets[k] = cont()
		}
		for s := range g.streams {
			n := int64(r.uint())
			g.streams[s] = streamDir{off: off, len: n, raw: int(r.uint())}
			off += n
		}
	}
	return d, r.err
}
