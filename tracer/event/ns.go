package event

import (
	"github.com/ghostwatch/ghostwatch/gen/header"
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

// NSNames names the namespace types whose CLONE_NEW* bits are set in mask, in index order.
func NSNames(mask uint64) []string {
	var names []string
	for _, t := range NSTypes {
		if mask&t.Flag != 0 {
			names = append(names, t.Name)
		}
	}
	return names
}
