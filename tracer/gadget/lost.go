package gadget

import (
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/ghostwatch/ghostwatch/gen/header"
)

// LossCause is why events were lost. Every lost event has exactly one.
type LossCause int

// The causes, the kernel's first.
const (
	// LostRingFull: a program could not write its event: the ring buffer was full.
	LostRingFull LossCause = iota
	// LostTableFull: a kernel table had no room for a call in flight or a process to follow, so
	// its events were not written.
	LostTableFull
	// LostRecursion: the kernel skipped a program because another ran on that CPU (counted by
	// kernels from 5.12).
	LostRecursion
	// LostJoinQueueFull: the reader could not hand a record to the join (its queue was full).
	LostJoinQueueFull
	// LostForgotten: a join dropped what it held for want of room, or a kernel table refused what
	// a gadget remembers (setns's sessions, netns's counts), so that a later event may lack the
	// cause it would have had.
	LostForgotten
	numCauses
)

// LossCauses lists every cause, in the order of Lost.
var LossCauses = func() []LossCause {
	c := make([]LossCause, numCauses)
	for i := range c {
		c[i] = LossCause(i)
	}
	return c
}()

var causeNames = [numCauses]string{"ring_full", "table_full", "recursion", "join_queue_full", "forgotten"}

// kernelCauses is the cause of each of the kernel's counts (enum gw_lost).
var kernelCauses = [header.HeaderGwLostGW_LOST_CAUSES]LossCause{
	header.HeaderGwLostGW_LOST_RING:      LostRingFull,
	header.HeaderGwLostGW_LOST_TABLE:     LostTableFull,
	header.HeaderGwLostGW_LOST_FORGOTTEN: LostForgotten,
}

// String is the cause's name in the summary, the metrics and the flight record.
func (c LossCause) String() string { return causeNames[c] }

// Lost counts a gadget's lost events by cause since it was opened.
type Lost [numCauses]uint64

// Total is every lost event, whatever its cause.
func (l Lost) Total() uint64 {
	var t uint64
	for _, n := range l {
		t += n
	}
	return t
}

// String is "ring_full 3, forgotten 1": the causes with losses, or "" when none.
func (l Lost) String() string {
	var b strings.Builder
	for c, n := range l {
		if n == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(LossCause(c).String())
		b.WriteByte(' ')
		b.WriteString(strconv.FormatUint(n, 10))
	}
	return b.String()
}

// ByName is the causes with losses, by name (the summary's lost_by_cause).
func (l Lost) ByName() map[string]uint64 {
	m := map[string]uint64{}
	for c, n := range l {
		if n > 0 {
			m[LossCause(c).String()] = n
		}
	}
	return m
}

// userLost counts the losses of user space (the join's queue, a join's state).
type userLost [numCauses]atomic.Uint64

func (u *userLost) total() uint64 {
	var t uint64
	for i := range numCauses {
		t += u[i].Load()
	}
	return t
}

// Forget is how a join counts what it dropped for want of room (Gadget.Forgot); nil counts nothing
// (a join tested alone).
type Forget func(n uint64)

// Count counts n things forgotten.
func (f Forget) Count(n int) {
	if f != nil && n > 0 {
		f(uint64(n))
	}
}
