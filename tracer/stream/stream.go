// Package stream reads a gadget's ring buffer without allocating per event and watches the
// kernel's count of events it could not deliver.
package stream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// pollEvery bounds how long a stop request or a new drop waits to be noticed.
const pollEvery = 200 * time.Millisecond

// Reader delivers raw records from a ring buffer.
type Reader struct {
	rd       *ringbuf.Reader
	lost     *ebpf.Map
	rec      ringbuf.Record
	lostSeen uint64
	perCPU   []uint64
}

// New reads events from the ring buffer map events; lost is the per-CPU drop counter.
func New(events, lost *ebpf.Map) (*Reader, error) {
	rd, err := ringbuf.NewReader(events)
	if err != nil {
		return nil, fmt.Errorf("opening ring buffer: %w", err)
	}
	return &Reader{rd: rd, lost: lost}, nil
}

// Run calls handle for every record until ctx is done, then delivers what is still buffered and
// returns nil. The slice passed to handle is reused: handle must copy what it keeps. onLost, if
// not nil, is called with the running total whenever the kernel reports new drops.
func (r *Reader) Run(ctx context.Context, handle func(raw []byte), onLost func(total uint64)) error {
	draining := false
	r.rd.SetDeadline(time.Now().Add(pollEvery))
	for {
		err := r.rd.ReadInto(&r.rec)
		switch {
		case err == nil:
			handle(r.rec.RawSample)
			if !draining && ctx.Err() != nil {
				draining = true
				r.rd.SetDeadline(time.Now())
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			r.checkLost(onLost)
			switch {
			case draining:
				return nil
			case ctx.Err() != nil:
				// Deliver what the kernel wrote before the stop, then return.
				draining = true
				r.rd.SetDeadline(time.Now())
			default:
				r.rd.SetDeadline(time.Now().Add(pollEvery))
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

// Lost returns how many events the kernel could not deliver since the object was loaded.
func (r *Reader) Lost() (uint64, error) {
	if err := r.lost.Lookup(uint32(0), &r.perCPU); err != nil {
		return 0, fmt.Errorf("reading drop counter: %w", err)
	}
	var total uint64
	for _, n := range r.perCPU {
		total += n
	}
	return total, nil
}

// Close stops a Run in progress and releases the reader.
func (r *Reader) Close() error { return r.rd.Close() }
