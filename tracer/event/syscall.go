package event

import (
	"runtime"
	"strconv"

	"github.com/ghostwatch/ghostwatch/gen/syscalls"
)

// syscallNames are the native syscall names by number of the architecture built for (the kernel's:
// events carry its numbers), for a lookup per event without a map.
var syscallNames = func() []string {
	table := syscalls.Names[map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]]
	out := make([]string, 0, len(table))
	for n, name := range table {
		for int(n) >= len(out) {
			out = append(out, "")
		}
		out[n] = name
	}
	return out
}()

// SyscallName names a native syscall by number: "-" for none (negative), "syscall_N" for one
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
