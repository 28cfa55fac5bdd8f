package netns

import (
	"sync"
	"time"
)

// emptiness is, for each tracker running in this process (trace netns, the agent's), since when
// each namespace it follows has been empty: other gadgets' joins in the same process read it
// (trace netlink's held_by). Guarded by its mutex: those joins run on their own goroutines.
var emptiness = struct {
	sync.Mutex
	by map[*tracker]map[uint32]time.Time
}{by: map[*tracker]map[uint32]time.Time{}}

// EmptySince returns when the last task left a namespace, as a trace netns running in this process
// saw it; false when none saw it, or the namespace is not empty. Without trace netns running
// beside, nothing knows it: the kernel keeps no such time.
func EmptySince(inode uint32) (time.Time, bool) {
	emptiness.Lock()
	defer emptiness.Unlock()
	var since time.Time
	for _, m := range emptiness.by {
		if at, ok := m[inode]; ok && (since.IsZero() || at.Before(since)) {
			since = at // the tracker that has run longest saw it first
		}
	}
	return since, !since.IsZero()
}

// publishEmpty tells EmptySince that a namespace is empty since at.
func (t *tracker) publishEmpty(inode uint32, at time.Time) {
	emptiness.Lock()
	defer emptiness.Unlock()
	m := emptiness.by[t]
	if m == nil {
		m = map[uint32]time.Time{}
		emptiness.by[t] = m
	}
	m[inode] = at
}

// unpublish forgets a namespace this tracker no longer follows (created anew, destroyed or
// forgotten); inode 0: every one, the tracker's run is over.
func (t *tracker) unpublish(inode uint32) {
	emptiness.Lock()
	defer emptiness.Unlock()
	if inode == 0 {
		delete(emptiness.by, t)
		return
	}
	delete(emptiness.by[t], inode)
}
