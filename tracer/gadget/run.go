package gadget

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
)

// headerSize is the size of struct gw_header, which every record begins with.
const headerSize = int(unsafe.Sizeof(event.Raw{}))

// Decoder turns a gadget's raw records into events, dispatching on the header's kind. Its events
// are reused: each is valid until the next Decode. It is not safe for concurrent use.
type Decoder struct {
	desc     *Descriptor
	header   event.Decoder
	head     event.Header
	kinds    []decoderKind // by kind value; size 0: no such kind
	multiple bool
}

type decoderKind struct {
	name   string
	size   int
	decode decodeFunc
}

// NewDecoder makes a decoder for one run; r, if not nil, attributes events to containers.
func NewDecoder(d *Descriptor, clock event.Clock, r event.Resolver) *Decoder {
	dec := &Decoder{desc: d, header: event.Decoder{Clock: clock, Resolver: r}, multiple: len(d.Emitted()) > 1}
	for _, k := range d.Kinds {
		if int(k.Value) >= len(dec.kinds) {
			dec.kinds = append(dec.kinds, make([]decoderKind, int(k.Value)+1-len(dec.kinds))...)
		}
		dec.kinds[k.Value] = decoderKind{name: k.Name, size: int(k.record.Size()), decode: k.newDec()}
	}
	return dec
}

// Decode decodes one record. A record too short for its kind, or of an unknown kind, is an error:
// the object and this program disagree, and nothing may be read from it.
func (d *Decoder) Decode(raw []byte) (Event, error) {
	if len(raw) < headerSize {
		return nil, fmt.Errorf("%s: short record (%d bytes, the header alone is %d)", d.desc.Name, len(raw), headerSize)
	}
	h := (*event.Raw)(unsafe.Pointer(&raw[0]))
	if int64(h.Kind) >= int64(len(d.kinds)) || d.kinds[h.Kind].size == 0 {
		return nil, fmt.Errorf("%s: record of unknown kind %d", d.desc.Name, h.Kind)
	}
	k := &d.kinds[h.Kind]
	if len(raw) < k.size {
		return nil, fmt.Errorf("%s: short %s record (%d bytes, want %d)", d.desc.Name, k.name, len(raw), k.size)
	}
	kind := ""
	if d.multiple {
		kind = k.name
	}
	d.header.Decode(&d.head, d.desc.Name, kind, h)
	return k.decode(raw, &d.head, d.header.Resolver), nil
}

// flushEvery is how often a processor is asked to emit what is due.
const flushEvery = time.Second

// joinQueue is how many records wait for the join goroutine. A join may do I/O for an event (a
// holders snapshot of a lingering namespace takes about 0.1 s on a node with 60,000 fds; a
// denial's device node is looked up; an exec's file capabilities are read): the records of a
// storm that arrive meanwhile wait here, not in the kernel's ring buffer, which holds about 16 ms
// of one. What does not fit is counted lost (LostJoinQueueFull).
const joinQueue = 16384

// Run reads the gadget's events until ctx is done, decodes them (attributed with r, if not nil),
// passes them through the gadget's processor and calls emit for each, in order. Events are reused:
// emit must Clone what it keeps. idle, if not nil, is called whenever there is nothing more to
// read (a writer's moment to flush). onLost is told the running total of losses of every cause
// (Lost) when it grows.
//
// A gadget with a processor reads on one goroutine and joins on another, behind a queue of
// joinQueue records: emit and idle are called on the join goroutine, one at a time, and never
// after Run returns.
func (g *Gadget) Run(ctx context.Context, r event.Resolver, emit func(Event), idle func(), onLost func(uint64)) error {
	if g.reader == nil {
		return errors.New(g.Desc.Name + " has no events to read")
	}
	dec := NewDecoder(g.Desc, event.NewClock(), r)
	var told, toldUser uint64
	report := func() {
		l, err := g.Lost()
		if t := l.Total(); err == nil && t != told {
			told = t
			if onLost != nil {
				onLost(t)
			}
		}
	}
	reportUser := func() { // between the kernel's reports: an atomic load per cause
		if t := g.userLost.total(); t != toldUser {
			toldUser = t
			report()
		}
	}
	if g.Desc.NewProcessor == nil {
		err := g.reader.Run(ctx, func(raw []byte) error {
			ev, err := dec.Decode(raw)
			if err != nil {
				return err
			}
			emit(ev)
			return nil
		}, idle, func(uint64) { report() })
		report()
		return err
	}
	// A record the join cannot decode stops the run: the join cancels the reader's context, since
	// no further record may come to return the error through.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	j, err := newJoiner(g, dec, emit, idle, cancel)
	if err != nil {
		return err
	}
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	go j.run(tick.C)
	err = g.reader.Run(rctx, func(raw []byte) error {
		if err := j.failed(); err != nil {
			return err
		}
		j.enqueue(raw)
		return nil
	}, reportUser, func(uint64) { report() })
	close(j.work)
	<-j.done
	if err == nil {
		err = j.failed()
	}
	report()
	return err
}

// joiner decodes and joins a processor gadget's records on a goroutine of its own.
type joiner struct {
	g     *Gadget
	dec   *Decoder
	proc  Processor
	emit  func(Event)
	idle  func()
	work  chan []byte // records to decode, in order
	free  chan []byte // buffers to copy records into: when none is free, the queue is full
	done  chan struct{}
	stop  context.CancelFunc // stops the reader
	errMu sync.Mutex
	err   error // a record that could not be decoded: the run stops
}

// newJoiner makes the gadget's processor: a processor that cannot be set up is the run's error.
func newJoiner(g *Gadget, dec *Decoder, emit func(Event), idle func(), stop context.CancelFunc) (*joiner, error) {
	proc, err := g.Desc.NewProcessor(g, g.Params)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", g.Desc.Name, err)
	}
	j := &joiner{g: g, dec: dec, proc: proc, emit: emit, idle: idle, stop: stop,
		work: make(chan []byte, joinQueue), free: make(chan []byte, joinQueue), done: make(chan struct{})}
	if u, ok := j.proc.(ResolverUser); ok && dec.header.Resolver != nil {
		u.UseResolver(dec.header.Resolver)
	}
	for range joinQueue {
		j.free <- nil // buffers are made as needed, and kept
	}
	return j, nil
}

// enqueue copies a record for the join goroutine, or counts it lost when the queue is full.
func (j *joiner) enqueue(raw []byte) {
	select {
	case buf := <-j.free:
		j.work <- append(buf[:0], raw...)
	default:
		j.g.CountLost(LostJoinQueueFull, 1)
	}
}

func (j *joiner) failed() error {
	j.errMu.Lock()
	defer j.errMu.Unlock()
	return j.err
}

// run joins records until the work channel is closed, then emits what the processor holds. Every
// tick asks the processor to emit what is due.
func (j *joiner) run(ticks <-chan time.Time) {
	defer close(j.done)
	for {
		select {
		case buf, ok := <-j.work:
			if !ok {
				j.proc.Flush(time.Now(), true, j.emit)
				return
			}
			if j.failed() == nil {
				if ev, err := j.dec.Decode(buf); err != nil {
					j.errMu.Lock()
					j.err = err
					j.errMu.Unlock()
					j.stop()
				} else {
					j.proc.Process(ev, j.emit)
				}
			}
			j.free <- buf
			if len(j.work) > 0 {
				continue
			}
		case <-ticks:
			j.proc.Flush(time.Now(), false, j.emit)
		}
		if j.idle != nil {
			j.idle()
		}
	}
}

// Tracer is a loaded gadget whose events are all of type E, for library users and tests.
type Tracer[E Event] struct {
	*Gadget
	Resolver event.Resolver
}

// OpenTracer opens a gadget whose events are of type E.
func OpenTracer[E Event](d *Descriptor, o Options, r event.Resolver) (*Tracer[E], error) {
	g, err := Open(d, o)
	if err != nil {
		return nil, err
	}
	return &Tracer[E]{g, r}, nil
}

// Run calls emit for each event until ctx is done; onLost is told the running total of drops.
// Events are reused (see Gadget.Run).
func (t *Tracer[E]) Run(ctx context.Context, emit func(E), onLost func(uint64)) error {
	return t.Gadget.Run(ctx, t.Resolver, func(ev Event) { emit(ev.(E)) }, nil, onLost)
}

// JSONLines appends events to B as JSON lines. It keeps how the last event's actor was written,
// so that the next event of the same task copies it instead of formatting fourteen numbers again:
// decoding and writing an event of one task went from about 500 ns to 310 here
// (BenchmarkStreaming). One serves one writer.
type JSONLines struct {
	encode.JSON
	actor event.ActorMemo
}

// Append appends ev as one JSON object and a newline.
func (w *JSONLines) Append(ev Event) {
	j := &w.JSON
	j.Object()
	h := ev.Head()
	h.AppendJSON(j, &w.actor)
	j.Key(h.Type)
	ev.AppendJSON(j)
	j.End()
	j.B = append(j.B, '\n')
}

// AppendRow appends an event as a table row: the common cells, then the gadget's.
func AppendRow(r *encode.Row, ev Event) {
	r.Start()
	r.Begin()
	r.Clock(ev.Head().Time)
	AppendCells(r, ev)
	r.End()
}

// AppendCells appends an event's cells after TIME to a row: the actor's, then the gadget's.
func AppendCells(r *encode.Row, ev Event) {
	h := ev.Head()
	r.Cell(h.Container.Label())
	r.Begin()
	r.Uint(uint64(h.Proc.PID))
	r.Cell(h.Proc.Comm)
	ev.AppendRow(r)
}

// TableColumns returns a gadget's table columns, the common ones first.
func (d *Descriptor) TableColumns() []encode.Column {
	return append(append([]encode.Column{}, CommonColumns...), d.Columns...)
}
