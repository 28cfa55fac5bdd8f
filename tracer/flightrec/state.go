package flightrec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// state is the writer's accounting in a small file mapped into memory (DIR/state): how many events
// of each gadget were taken and how many written, the drops not yet written into the record, and
// when the agent was last alive. A store to a shared mapping is in the page cache at once, so it
// outlives the process however it ends (kill -9, OOM kill; not a crash of the machine) for the
// price of a memory store per event; the next agent reads what the last one could not write.
type state struct {
	mem []byte
}

const (
	stateFile    = "state"
	stateSize    = 16384
	stateVersion = 1
	nameLen      = 24

	// Header offsets.
	stMagic   = 0  // "GWST"
	stVersion = 4  // u32
	stPID     = 8  // u32
	stClean   = 12 // u32: 1 once the run ended with Close
	stStarted = 16 // i64 unix ns
	stAlive   = 24 // i64 unix ns: the last flush

	// Gadget slots: name, events taken, events written, events dropped by the record (counted
	// as a loss of their own).
	gadgetSlots   = 64
	gadgetSlot0   = 64
	gadgetSlotLen = nameLen + 24

	// Loss slots: gadget, cause, count not yet written into the record, when the first of them
	// happened.
	lossSlots   = 128
	lossSlot0   = gadgetSlot0 + gadgetSlots*gadgetSlotLen
	lossSlotLen = 2*nameLen + 16
)

var stateMagic = [4]byte{'G', 'W', 'S', 'T'}

func init() {
	if lossSlot0+lossSlots*lossSlotLen > stateSize {
		panic("flightrec: state layout larger than the state file")
	}
}

// openState maps DIR/state, creating it if needed, and returns what the previous run left in it:
// nil when there is nothing to account for (no file, or a run that ended with Close and wrote all
// its losses).
func openState(dir string) (*state, *previousRun, error) {
	f, err := os.OpenFile(filepath.Join(dir, stateFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sz, err := size(f)
	if err != nil {
		return nil, nil, err
	}
	if sz != stateSize {
		// A new file, or one torn before it was sized: nothing in it to account for. Its pages are
		// allocated now, so that a full disk cannot fail a store to it later.
		if err := f.Truncate(0); err != nil {
			return nil, nil, err
		}
		if err := unix.Fallocate(int(f.Fd()), 0, 0, stateSize); err != nil {
			return nil, nil, fmt.Errorf("allocating %s: %w", f.Name(), err)
		}
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, stateSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mapping %s: %w", f.Name(), err)
	}
	s := &state{mem: mem}
	prev := s.previous()
	clear(mem)
	copy(mem, stateMagic[:])
	binary.LittleEndian.PutUint32(mem[stVersion:], stateVersion)
	binary.LittleEndian.PutUint32(mem[stPID:], uint32(os.Getpid()))
	return s, prev, nil
}

// previousRun is what the last run left unaccounted.
type previousRun struct {
	PID       int
	Clean     bool
	Started   time.Time
	LastAlive time.Time
	Unwritten map[string]uint64 // events taken and neither written nor dropped, by gadget
	Losses    []Loss            // drops not yet in the record
	LossFrom  time.Time
}

func (s *state) previous() *previousRun {
	m := s.mem
	if [4]byte(m[:4]) != stateMagic || binary.LittleEndian.Uint32(m[stVersion:]) != stateVersion {
		return nil
	}
	p := &previousRun{
		PID:       int(binary.LittleEndian.Uint32(m[stPID:])),
		Clean:     binary.LittleEndian.Uint32(m[stClean:]) == 1,
		Started:   time.Unix(0, int64(binary.LittleEndian.Uint64(m[stStarted:]))),
		LastAlive: time.Unix(0, int64(binary.LittleEndian.Uint64(m[stAlive:]))),
		Unwritten: map[string]uint64{},
	}
	for i := range gadgetSlots {
		o := gadgetSlot0 + i*gadgetSlotLen
		name := cName(m[o : o+nameLen])
		if name == "" {
			break
		}
		taken, written, dropped := s.load(o+nameLen), s.load(o+nameLen+8), s.load(o+nameLen+16)
		if n := taken - written - dropped; taken >= written+dropped && n > 0 {
			p.Unwritten[name] = n
		}
	}
	for i := range lossSlots {
		o := lossSlot0 + i*lossSlotLen
		gadget := cName(m[o : o+nameLen])
		if gadget == "" {
			break
		}
		if n := s.load(o + 2*nameLen); n > 0 {
			p.Losses = append(p.Losses, Loss{Gadget: gadget, Cause: cName(m[o+nameLen : o+2*nameLen]), Count: n})
			if from := time.Unix(0, int64(s.load(o+2*nameLen+8))); p.LossFrom.IsZero() || from.Before(p.LossFrom) {
				p.LossFrom = from
			}
		}
	}
	if p.Clean && len(p.Losses) == 0 {
		return nil
	}
	return p
}

func cName(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func (s *state) word(off int) *uint64 { return (*uint64)(unsafe.Pointer(&s.mem[off])) }

func (s *state) load(off int) uint64            { return atomic.LoadUint64(s.word(off)) }
func (s *state) store(off int, v uint64)        { atomic.StoreUint64(s.word(off), v) }
func (s *state) add(off int, v uint64)          { atomic.AddUint64(s.word(off), v) }
func (s *state) sub(off int, v uint64)          { atomic.AddUint64(s.word(off), ^(v - 1)) }
func (s *state) storeTime(off int, t time.Time) { s.store(off, uint64(t.UnixNano())) }

// gadgetSlot returns the offset of a gadget's counters, naming a free slot for it if needed.
// Slots are taken under the writer's lock.
func (s *state) gadgetSlot(name string) int {
	return s.slot(gadgetSlot0, gadgetSlotLen, gadgetSlots, name, "")
}

// lossSlot returns the offset of a (gadget, cause) loss counter.
func (s *state) lossSlot(gadget, cause string) int {
	return s.slot(lossSlot0, lossSlotLen, lossSlots, gadget, cause)
}

// overflowName names the last slot of a table once the others are taken: more gadgets or causes
// than slots are counted together there rather than not at all.
const overflowName = "other"

func (s *state) slot(first, length, n int, a, b string) int {
	a, b = truncName(a), truncName(b)
	for i := range n {
		o := first + i*length
		if i == n-1 {
			a = overflowName
			if b != "" {
				b = overflowName
			}
		}
		name := cName(s.mem[o : o+nameLen])
		if name == "" {
			copy(s.mem[o:], a)
			if b != "" { // only loss slots have a second name
				copy(s.mem[o+nameLen:], b)
			}
			return o
		}
		if name == a && (b == "" || cName(s.mem[o+nameLen:o+2*nameLen]) == b) {
			return o
		}
	}
	return first + (n-1)*length
}

func truncName(s string) string {
	if len(s) >= nameLen {
		return s[:nameLen-1]
	}
	return s
}

func (s *state) close(clean bool) error {
	if clean {
		binary.LittleEndian.PutUint32(s.mem[stClean:], 1)
	}
	err := unix.Msync(s.mem, unix.MS_SYNC)
	return errors.Join(err, unix.Munmap(s.mem))
}
