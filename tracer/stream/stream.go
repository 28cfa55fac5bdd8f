// Package stream reads a gadget's ring buffer without allocating per event and watches the
// kernel's count of events it could not deliver.
package stream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/ghostwatch/ghostwatch/gen/header"
)

// pollEvery bounds how long a stop request or a new drop waits to be noticed.
const pollEvery = 200 * time.Millisecond

// batchPause is how long the reader waits, once it has emptied the buffer, before it reads again.
// The kernel wakes the reader for a record only when the reader has read everything before it,
// and that wake-up (an interrupt, then a wake on another CPU) costs the traced task about 5 µs
// here: a reader that keeps up record by record makes every event that slow. Pausing lets records
// gather, so that one wake-up serves a batch. The default 1 MiB buffer holds about 16 ms of the
// storm of the README's streaming figures, so the pause loses nothing there.
const batchPause = time.Millisecond

// Reader delivers raw records from a ring buffer.
type Reader struct {
	rd       *ringbuf.Reader
	lost     *ebpf.Map
	progs    []*ebpf.Program
	rec      ringbuf.Record
	lostSeen uint64
	perCPU   []uint64
	peak     atomic.Uint64 // the most bytes seen waiting in the buffer since PeakFill
}

// New reads events from the ring buffer map events. lost holds the per-CPU counts of events the
// programs could not write, at the index of their cause (enum gw_lost); the runs progs missed
// because the kernel was already running a BPF program on the same CPU (recursion) are lost events
// too.
func New(events, lost *ebpf.Map, progs []*ebpf.Program) (*Reader, error) {
	rd, err := ringbuf.NewReader(events)
	if err != nil {
		return nil, fmt.Errorf("opening ring buffer: %w", err)
	}
	return &Reader{rd: rd, lost: lost, progs: progs}, nil
}

// Run calls handle for every record until ctx is done, then delivers what is still buffered and
// returns nil; an error from handle stops it. The slice passed to handle is reused: handle must
// copy what it keeps. idle, if not nil, is called whenever the buffer has been emptied, and at
// least every pollEvery. onLost, if not nil, is called with the running total whenever the
// kernel reports new drops.
func (r *Reader) Run(ctx context.Context, handle func(raw []byte) error, idle func(), onLost func(total uint64)) error {
	draining := false
	next := time.Now().Add(pollEvery)
	r.rd.SetDeadline(next)
	for {
		err := r.rd.ReadInto(&r.rec)
		switch {
		case err == nil:
			if n := uint64(r.rec.Remaining); n > r.peak.Load() {
				r.peak.Store(n)
			}
			if err := handle(r.rec.RawSample); err != nil {
				return err
			}
			if r.rec.Remaining == 0 {
				if idle != nil {
					idle()
				}
				if !draining {
					time.Sleep(batchPause)
				}
			}
			if !draining && ctx.Err() != nil {
				draining = true
				r.rd.SetDeadline(time.Now())
			} else if !draining && time.Now().After(next) { // busy: look at drops anyway
				r.checkLost(onLost)
				next = time.Now().Add(pollEvery)
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			r.checkLost(onLost)
			if idle != nil {
				idle()
			}
			switch {
			case draining:
				return nil
			case ctx.Err() != nil:
				// Deliver what the kernel wrote before the stop, then return.
				draining = true
				r.rd.SetDeadline(time.Now())
			default:
				next = time.Now().Add(pollEvery)
				r.rd.SetDeadline(next)
			}
		case errors.Is(err, ringbuf.ErrClosed):
			return nil
		default:
			return fmt.Errorf("reading ring buffer: %w", err)
		}
	}
}

func (r *Reader) checkLost(onLost func(uint64)) {
	total, err := r.Lost()
	if err != nil || total == r.lostSeen {
		return
	}
	r.lostSeen = total
	if onLost != nil {
		onLost(total)
	}
}

// Lost returns how many events the kernel could not deliver since the object was loaded: those the
// programs counted, and the runs the kernel skipped for recursion. A skipped run counts as one
// event, whether or not it would have written one (a filter may have dropped it, an entry program
// writes none): an upper bound, so that no loss is hidden.
func (r *Reader) Lost() (uint64, error) {
	l, err := r.LostByCause()
	total := l.Recursion
	for _, n := range l.Counted {
		total += n
	}
	return total, err
}

// KernelLost is what the kernel lost, by cause: the programs' counts, indexed by enum gw_lost, and
// the runs the kernel skipped for recursion.
type KernelLost struct {
	Counted   [header.HeaderGwLostGW_LOST_CAUSES]uint64
	Recursion uint64
}

// LostByCause splits Lost by cause.
func (r *Reader) LostByCause() (KernelLost, error) {
	var l KernelLost
	for c := range l.Counted {
		n, err := sumLost(r.lost, uint32(c), &r.perCPU)
		if err != nil {
			return l, err
		}
		l.Counted[c] = n
	}
	var err error
	l.Recursion, err = recursionMisses(r.progs)
	return l, err
}

// Backlog is how many bytes the kernel has written and the reader not yet read. Safe to call
// while Run runs.
func (r *Reader) Backlog() int { return r.rd.AvailableBytes() }

// PeakFill is the fullest the buffer was seen, from 0 to 1, since the last call: the bytes left
// to read when a record was read. Safe to call while Run runs.
func (r *Reader) PeakFill() float64 {
	return float64(r.peak.Swap(0)) / float64(r.rd.BufferSize())
}

// sumLost adds up a per-CPU drop counter (perCPU is reused between calls).
func sumLost(lost *ebpf.Map, cause uint32, perCPU *[]uint64) (uint64, error) {
	if err := lost.Lookup(cause, perCPU); err != nil {
		return 0, fmt.Errorf("reading drop counter: %w", err)
	}
	var total uint64
	for _, n := range *perCPU {
		total += n
	}
	return total, nil
}

// recursionMisses is how many times the kernel did not run these programs because a BPF program
// was already running on that CPU (kernels before 5.12 do not count it: 0).
func recursionMisses(progs []*ebpf.Program) (uint64, error) {
	var total uint64
	for _, p := range progs {
		st, err := p.Stats()
		if err != nil {
			return 0, fmt.Errorf("reading program stats: %w", err)
		}
		total += st.RecursionMisses
	}
	return total, nil
}

// Close stops a Run in progress and releases the reader.
func (r *Reader) Close() error { return r.rd.Close() }
