package bench

import "testing"

// BenchmarkSetns measures what `trace setns` adds to every process of a node now that it follows
// entries to their first exec: a map lookup at each fork (the child of a process that entered
// carries its session), exec (enter and exit: the session's command; a runtime's arguments) and
// exit. The fork loop is a clone and exit each; the execfail loop an execve of a missing file, the
// exec hooks without the cost of an exec; the unshare loop a namespace change it reports (the
// storm), with the actor's ancestry read for its entry. Beside each: the empty program on the same
// attach points.
func BenchmarkSetns(b *testing.B) {
	loop, ghostwatch, floor, ours := prepare(b)
	configs := besideFloor(floorOn(floor, ours,
		[]string{"sys_enter_clone", "sys_exit_clone", "sys_enter_execve", "sys_exit_execve", "sys_enter_unshare", "sys_exit_unshare"},
		floor.FloorFork, floor.FloorExit),
		traced(ghostwatch, "setns"))
	runs := []loopRun{{"fork", 20000}, {"execfail", 200000}, {"unshare", 100000}}
	againstFloor(b, loop, configs, "call", runs...)

	// The wall clock of a busy machine moves by more than these programs cost: the kernel's
	// accounting of their run time, over one loop of each kind under each (syscall_tp, the floor's
	// on every syscall tracepoint named, runs for every process of the node that makes those calls).
	for _, run := range runs {
		runTimeUnder(b, loop, ours, configs[1:], run, []string{"syscall_tp", "floor_fork", "floor_exit"},
			[]string{"clone_enter", "clone_exit", "fork_btf", "exit_btf", "execve_enter", "execve_exit", "unshare_enter", "unshare_exit"})
	}
}
