package seccomp

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	gen "github.com/ghostwatch/ghostwatch/gen/seccomp"
)

// Slot keys that are no key (see struct rec_slot in bpf/seccomp.bpf.c).
const (
	slotFree = 0
	slotBusy = 0xFFFFFFFF
)

// table is the kernel's table of recordings and of the processes of recorded trees: the slots
// and counters of the object's .bss, mapped into this process, so that user space claims and
// releases slots with the same atomic operations as the kernel, and what did not fit in a slot in
// hash maps.
type table struct {
	mem         []byte
	slots       []gen.SeccompRecSlot
	live, trees *uint32
	notRecorded *uint32
	spill       *ebpf.Map
	memberSlots []gen.SeccompMemberSlot
	members     *ebpf.Map
	// claimMembers: the kernel frees a member's slot at its exit (with compare-and-swap, 5.12), so
	// members may take slots; else they all live in members.
	claimMembers bool
}

// mapTable maps the .bss of a loaded recorder; spec is its object's, for the variables' offsets.
func mapTable(bss, spill, members *ebpf.Map, spec *ebpf.CollectionSpec, claimMembers bool) (*table, error) {
	page := os.Getpagesize()
	size := (int(bss.ValueSize()) + page - 1) / page * page
	mem, err := unix.Mmap(bss.FD(), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping the recordings table: %w", err)
	}
	at := func(name string) unsafe.Pointer {
		return unsafe.Pointer(&mem[spec.Variables[name].Offset])
	}
	n := int(spec.Variables[gen.SeccompVarSlots].Size()) / int(unsafe.Sizeof(gen.SeccompRecSlot{}))
	m := int(spec.Variables[gen.SeccompVarMemberSlots].Size()) / int(unsafe.Sizeof(gen.SeccompMemberSlot{}))
	return &table{
		mem:          mem,
		slots:        unsafe.Slice((*gen.SeccompRecSlot)(at(gen.SeccompVarSlots)), n),
		live:         (*uint32)(at(gen.SeccompVarLive)),
		trees:        (*uint32)(at(gen.SeccompVarTrees)),
		notRecorded:  (*uint32)(at(gen.SeccompVarNotRecorded)),
		spill:        spill,
		memberSlots:  unsafe.Slice((*gen.SeccompMemberSlot)(at(gen.SeccompVarMemberSlots)), m),
		members:      members,
		claimMembers: claimMembers,
	}, nil
}

func (t *table) close() error { return unix.Munmap(t.mem) }

func (t *table) slot(key uint32) *gen.SeccompRecSlot { return &t.slots[int(key)%len(t.slots)] }

// begin starts recording key from now on, with an empty bitmap; nothing if it is recorded already.
func (t *table) begin(key uint32) error {
	if _, ok, err := t.read(key); ok || err != nil {
		return err
	}
	s := t.slot(key)
	if atomic.CompareAndSwapUint64(&s.Key, slotFree, slotBusy) {
		for i := range s.Rec.Words {
			for j := range s.Rec.Words[i] {
				atomic.StoreUint64(&s.Rec.Words[i][j], 0)
			}
		}
		atomic.StoreUint64(&s.Rec.OutOfRange, 0)
		atomic.StoreUint64(&s.Rec.MntnsId, 0)
		atomic.StoreUint64(&s.Key, uint64(key))
	} else {
		// Counted in its slot first, so that no syscall of it misses the spill table.
		atomic.AddUint64(&s.Spilled, 1)
		var empty gen.SeccompRecording
		if err := t.spill.Update(key, &empty, ebpf.UpdateNoExist); err != nil {
			atomic.AddUint64(&s.Spilled, ^uint64(0))
			return fmt.Errorf("recording %d: %w", key, err)
		}
	}
	atomic.AddUint32(t.live, 1)
	return nil
}

// read returns the recording of key so far; ok is false if key is not recorded.
func (t *table) read(key uint32) (rec gen.SeccompRecording, ok bool, err error) {
	s := t.slot(key)
	if atomic.LoadUint64(&s.Key) == uint64(key) {
		return copySlot(s), true, nil
	}
	if atomic.LoadUint64(&s.Spilled) == 0 {
		return rec, false, nil
	}
	if err := t.spill.Lookup(key, &rec); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return rec, false, nil
		}
		return rec, false, fmt.Errorf("reading the recording of %d: %w", key, err)
	}
	return rec, true, nil
}

// end stops recording key and returns what it recorded; ok is false if it was not recorded.
func (t *table) end(key uint32) (rec gen.SeccompRecording, ok bool, err error) {
	s := t.slot(key)
	if atomic.CompareAndSwapUint64(&s.Key, uint64(key), slotBusy) {
		rec = copySlot(s)
		atomic.StoreUint64(&s.Key, slotFree) // the next claim clears the bitmap
		atomic.AddUint32(t.live, ^uint32(0))
		return rec, true, nil
	}
	if rec, ok, err = t.read(key); !ok || err != nil {
		return rec, ok, err
	}
	if err := t.spill.Delete(key); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) { // ended by another caller meanwhile
			return rec, false, nil
		}
		return rec, false, fmt.Errorf("ending the recording of %d: %w", key, err)
	}
	atomic.AddUint64(&s.Spilled, ^uint64(0))
	atomic.AddUint32(t.live, ^uint32(0))
	return rec, true, nil
}

// copySlot copies a slot's bitmap, which the kernel may be setting bits in.
func copySlot(s *gen.SeccompRecSlot) (rec gen.SeccompRecording) {
	for i := range s.Rec.Words {
		for j := range s.Rec.Words[i] {
			rec.Words[i][j] = atomic.LoadUint64(&s.Rec.Words[i][j])
		}
	}
	rec.OutOfRange = atomic.LoadUint64(&s.Rec.OutOfRange)
	rec.MntnsId = atomic.LoadUint64(&s.Rec.MntnsId)
	return rec
}

func (t *table) memberSlot(tgid uint32) *gen.SeccompMemberSlot {
	return &t.memberSlots[int(tgid)%len(t.memberSlots)]
}

// addMember makes tgid a member of the tree root, as the kernel's add_member does: in its slot if
// the slot is free or holds tgid already, else in members, counted in the slot.
func (t *table) addMember(tgid, root uint32) error {
	s := t.memberSlot(tgid)
	m := uint64(root)<<32 | uint64(tgid)
	for t.claimMembers {
		old := atomic.LoadUint64(&s.Member)
		if old != 0 && uint32(old) != tgid {
			break
		}
		if atomic.CompareAndSwapUint64(&s.Member, old, m) {
			return nil
		}
	}
	// Counted in its slot first, so that no syscall of it misses the members table.
	atomic.AddUint64(&s.Spilled, 1)
	err := t.members.Update(tgid, root, ebpf.UpdateNoExist)
	if err == nil {
		return nil
	}
	atomic.AddUint64(&s.Spilled, ^uint64(0)) // counted once already, or not added
	if errors.Is(err, ebpf.ErrKeyExist) {
		if err = t.members.Update(tgid, root, ebpf.UpdateExist); errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil // it exited meanwhile
		}
	}
	if err != nil {
		return fmt.Errorf("recording process %d: %w", tgid, err)
	}
	return nil
}

// dropTree removes the members of the tree root, from their slots and from members.
func (t *table) dropTree(root uint32) {
	for i := range t.memberSlots {
		s := &t.memberSlots[i]
		if m := atomic.LoadUint64(&s.Member); m != 0 && uint32(m>>32) == root {
			atomic.CompareAndSwapUint64(&s.Member, m, 0) // lost only to its exit, which frees it
		}
	}
	var tgid, key uint32
	var gone []uint32
	for it := t.members.Iterate(); it.Next(&tgid, &key); {
		if key == root {
			gone = append(gone, tgid)
		}
	}
	for _, tgid := range gone {
		if t.members.Delete(tgid) == nil { // else deleted at its exit, which uncounted it
			atomic.AddUint64(&t.memberSlot(tgid).Spilled, ^uint64(0))
		}
	}
}
