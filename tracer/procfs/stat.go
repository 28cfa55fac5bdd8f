// Package procfs reads what ghostwatch needs of /proc when the kernel's own view (BPF
// iterators, events) is not at hand.
package procfs

import (
	"os"
	"strconv"
	"strings"
)

// Stat is the part of /proc/PID/stat ghostwatch reads.
type Stat struct {
	Comm  string // at most 15 bytes, as the kernel keeps it
	PPid  uint32
	Flags uint64 // the task's PF_* flags
	// Start is when the process started, in clock ticks (USER_HZ, 100 on Linux) since boot.
	Start uint64
}

// StartBootNs is when the process started, in nanoseconds of the boot-time clock.
func (s Stat) StartBootNs() uint64 { return s.Start * 10_000_000 }

// pfKthread is PF_KTHREAD.
const pfKthread = 0x00200000

// KernelThread tells whether the task is a kernel thread.
func (s Stat) KernelThread() bool { return s.Flags&pfKthread != 0 }

// ReadStat reads /proc/PID/stat; ok is false when the process is gone or the file unreadable.
func ReadStat(pid int) (s Stat, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return s, false
	}
	return parseStat(string(data))
}

// parseStat reads "pid (comm) state ppid ... flags ...": comm may hold spaces and parentheses, so
// the last ')' ends it.
func parseStat(line string) (s Stat, ok bool) {
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return s, false
	}
	f := strings.Fields(line[end+1:])
	if len(f) < 20 {
		return s, false
	}
	ppid, err1 := strconv.ParseUint(f[1], 10, 32)
	flags, err2 := strconv.ParseUint(f[6], 10, 64)
	start, err3 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return s, false
	}
	return Stat{Comm: line[open+1 : end], PPid: uint32(ppid), Flags: flags, Start: start}, true
}
