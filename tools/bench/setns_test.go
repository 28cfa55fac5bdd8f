package bench

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/kernel"
)

// BenchmarkSetns measures what `trace setns` adds to every process of a node now that it follows
// entries to their first exec: a map lookup at each fork (the child of a process that entered
// carries its session), exec (enter and exit: the session's command; a runtime's arguments) and
// exit. The fork loop is a clone and exit each; the execfail loop an execve of a missing file, the
// exec hooks without the cost of an exec; the unshare loop a namespace change it reports (the
// storm), with the actor's ancestry read for its entry. Beside each: the empty program on the same
// attach points.
func BenchmarkSetns(b *testing.B) {
	loop, ghostwatch, floor, ours := prepare(b)
	release, err := kernel.Use(kernel.Tracefs)
	if err != nil {
		b.Fatal(err)
	}
	defer release()
	configs := []config{
		{"no tracer", func(*testing.B, int, uint32) func() { return func() {} }, 0},
		{"floor: empty programs on the same attach points", floorOn(floor, ours,
			[]string{"sys_enter_clone", "sys_exit_clone", "sys_enter_execve", "sys_exit_execve", "sys_enter_unshare", "sys_exit_unshare"},
			floor.FloorFork, floor.FloorExit), 0},
		{"ghostwatch trace setns -o json", traceGadget(ghostwatch, "setns"), 0},
	}
	againstFloor(b, loop, configs, "call", loopRun{"fork", 20000}, loopRun{"execfail", 200000}, loopRun{"unshare", 100000})

	// The wall clock of a busy machine moves by more than these programs cost: the kernel's
	// accounting of their run time, over one loop of each kind under each (syscall_tp, the floor's
	// on every syscall tracepoint named, runs for every process of the node that makes those calls).
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()
	programs := [][]string{{"syscall_tp", "floor_fork", "floor_exit"},
		{"clone_enter", "clone_exit", "fork_btf", "exit_btf", "execve_enter", "execve_exit", "unshare_enter", "unshare_exit"}}
	for _, run := range []loopRun{{"fork", 20000}, {"execfail", 200000}, {"unshare", 100000}} {
		fmt.Printf("\nkernel time per run in one %s loop (BPF_STATS_RUN_TIME, which adds a clock read per run)\n", run.mode)
		for i, c := range configs[1:] {
			alone(b, ours)
			runLoop(b, loop, run.mode, run.calls, func(b *testing.B, pid int, mntns uint32) func() {
				end := c.setup(b, pid, mntns)
				before := runTimes(b, programs[i]...) // the floor's ran in the loops before
				return func() {
					fmt.Println(c.name)
					printRunTimeSince(b, before, programs[i]...)
					end()
				}
			})
		}
	}
}
