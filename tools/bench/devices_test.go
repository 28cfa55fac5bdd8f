package bench

import "testing"

// BenchmarkDevices measures what `trace devices` adds to every write on the node (a loop of
// one-byte writes to /dev/null, which its rule hook looks at and drops) and to every other
// syscall (getppid: where fexit is refused, its denied hook runs at every syscall's exit), beside
// empty programs on the same tracepoints, attached alone.
func BenchmarkDevices(b *testing.B) {
	loop, ghostwatch, floor, ours := prepare(b)
	// The floor: empty programs on every attach point trace devices takes here, each syscall
	// tracepoint (write's and bpf()'s ends) and tp_btf on every syscall's exit.
	configs := besideFloor(floorOn(floor, ours, []string{"sys_enter_write", "sys_exit_write", "sys_enter_bpf", "sys_exit_bpf"}, floor.SysExitBtf),
		traced(ghostwatch, "devices"))
	againstFloor(b, loop, configs, "syscall", loopRun{"write", 1000000}, loopRun{"getppid", 1000000})
}
