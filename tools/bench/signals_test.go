package bench

import (
	"fmt"
	"testing"
)

// BenchmarkSignals measures what `trace signals` adds to a node's ordinary signalling, which its
// kernel filter drops: kill(self, 0) (the kill call's exit, no signal), a signal to its own
// process, and one to a child in the same namespaces (signal_generate's filter, to its mount
// namespace comparison); beside empty programs on the same attach points, and getppid, which the
// syscall tracepoints' slow path makes every syscall take.
func BenchmarkSignals(b *testing.B) {
	loop, ghostwatch, floor, ours := prepare(b)
	configs := besideFloor(floorOn(floor, ours,
		[]string{"sys_exit_kill", "sys_exit_tkill", "sys_exit_tgkill", "sys_exit_pidfd_send_signal"}, floor.FloorSignal),
		traced(ghostwatch, "signals"))
	againstFloor(b, loop, configs, "call",
		loopRun{"kill0", 1000000}, loopRun{"sigself", 1000000}, loopRun{"sigchild", 1000000}, loopRun{"getppid", 1000000})
	fmt.Println("target: trace signals <= 1.3x floor")

	// The wall clock of a busy machine moves by more than these programs cost: the kernel's
	// accounting of their run time, over one sigchild loop (a signal_generate and a kill exit per
	// call) under each.
	runTimeUnder(b, loop, ours, configs[1:], loopRun{"sigchild", 1000000},
		[]string{"floor_signal", "syscall_tp"}, []string{"signal_generate", "kill_exit"})
}
