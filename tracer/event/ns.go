package event

import (
	"cmp"
	"slices"

	"github.com/ghostwatch/ghostwatch/gen/header"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"golang.org/x/sys/unix"
)

// NSType is one namespace type, with its index in the kernel's per-type arrays.
type NSType struct {
	Name  string // as in /proc/PID/ns and in JSON keys
	Index header.HeaderGwNs
	Flag  uint64 // CLONE_NEW*
}

// NSTypes lists every namespace type, in the kernel's index order.
var NSTypes = []NSType{
	{"mnt", header.HeaderGwNsGW_NS_MNT, unix.CLONE_NEWNS},
	{"net", header.HeaderGwNsGW_NS_NET, unix.CLONE_NEWNET},
	{"pid", header.HeaderGwNsGW_NS_PID, unix.CLONE_NEWPID},
	{"user", header.HeaderGwNsGW_NS_USER, unix.CLONE_NEWUSER},
	{"uts", header.HeaderGwNsGW_NS_UTS, unix.CLONE_NEWUTS},
	{"ipc", header.HeaderGwNsGW_NS_IPC, unix.CLONE_NEWIPC},
	{"cgroup", header.HeaderGwNsGW_NS_CGROUP, unix.CLONE_NEWCGROUP},
	{"time", header.HeaderGwNsGW_NS_TIME, unix.CLONE_NEWTIME},
}

// byName is NSTypes in the order of their names: the order encoding/json gives a map's keys.
var byName = slices.SortedFunc(slices.Values(NSTypes), func(a, b NSType) int { return cmp.Compare(a.Name, b.Name) })

// nsNames holds, for every combination of types (a bit per type, by index), their names in
// index order: made once, so that events share them instead of building them.
var nsNames = func() [][]string {
	out := make([][]string, 1<<len(NSTypes))
	for set := 1; set < len(out); set++ {
		for _, t := range NSTypes {
			if set&(1<<t.Index) != 0 {
				out[set] = append(out[set], t.Name)
			}
		}
	}
	return out
}()

// indexSet turns CLONE_NEW* bits into a bit per type index.
func indexSet(mask uint64) int {
	set := 0
	for _, t := range NSTypes {
		if mask&t.Flag != 0 {
			set |= 1 << t.Index
		}
	}
	return set
}

// NSNames names the namespace types whose CLONE_NEW* bits are set in mask, in index order. The
// slice is shared: callers must not change it.
func NSNames(mask uint64) []string { return nsNames[indexSet(mask)] }

// NSInodes are namespace inodes for some of the types: those whose CLONE_NEW* bits are in Mask.
// In JSON it is an object from type name to inode, keys in name order.
type NSInodes struct {
	Mask  uint64
	Inode [len(Raw{}.Ns)]uint32 // by type index
}

// Set records the inode of a type and adds the type to the mask.
func (n *NSInodes) Set(t NSType, inode uint32) {
	n.Mask |= t.Flag
	n.Inode[t.Index] = inode
}

// Map returns the inodes by type name.
func (n *NSInodes) Map() map[string]uint32 {
	m := map[string]uint32{}
	for _, t := range NSTypes {
		if n.Mask&t.Flag != 0 {
			m[t.Name] = n.Inode[t.Index]
		}
	}
	return m
}

// AppendJSON appends the object.
func (n *NSInodes) AppendJSON(j *encode.JSON) {
	j.Object()
	for _, t := range byName {
		if n.Mask&t.Flag != 0 {
			j.Uint(t.Name, uint64(n.Inode[t.Index]))
		}
	}
	j.End()
}

// MarshalJSON writes what AppendJSON writes, for encoding/json users.
func (n NSInodes) MarshalJSON() ([]byte, error) {
	j := encode.JSON{}
	n.AppendJSON(&j)
	return j.B, nil
}
