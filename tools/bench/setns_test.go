package bench

import (
	"testing"
)

// BenchmarkSetns measures what `trace setns` adds to every process of a node now that it follows
// entries to their first exec: a map lookup at each fork (the child of a process that entered
// carries its session), exec (enter and exit: the session's command; a runtime's arguments) and
// exit. The fork loop is a clone and exit each; the execfail loop an execve of a missing file, the
// exec hooks without the cost of an exec. Beside each: the empty program on the same attach points.
func BenchmarkSetns(b *testing.B) {
	loop, ghostwatch, floor, ours := prepare(b)
	configs := []config{
		{"no tracer", func(*testing.B, int, uint32) func() { return func() {} }, 0},
		{"floor: empty programs on the same attach points", floorOn(floor, ours,
			[]string{"sys_enter_clone", "sys_exit_clone", "sys_enter_execve", "sys_exit_execve"},
			floor.FloorFork, floor.FloorExit), 0},
		{"ghostwatch trace setns -o json", traceGadget(ghostwatch, "setns"), 0},
	}
	againstFloor(b, loop, configs, "call", loopRun{"fork", 20000}, loopRun{"execfail", 200000})
}
