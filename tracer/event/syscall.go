package event

import (
	"strconv"

	"github.com/ghostwatch/ghostwatch/gen/syscalls"
)

// syscallNames are x86-64's syscall names by number, for a lookup per event without a map.
var syscallNames = func() []string {
	table := syscalls.Names["x86_64"]
	out := make([]string, 0, len(table))
	for n, name := range table {
		for int(n) >= len(out) {
			out = append(out, "")
		}
		out[n] = name
	}
	return out
}()

// SyscallName names an x86-64 syscall by number: "-" for none (negative), "syscall_N" for one
// without a name.
func SyscallName(n int32) string {
	switch {
	case n < 0:
		return "-"
	case int(n) < len(syscallNames) && syscallNames[n] != "":
		return syscallNames[n]
	}
	return "syscall_" + strconv.Itoa(int(n))
}
