package bench

import "testing"

// BenchmarkCNI measures what `trace cni` adds to the execs a node makes that are not CNI plugins
// (fork and exec of /bin/true), beside the floor: empty programs on the same attach points (exec,
// fork, exit, and write(2)'s tracepoint, which the output hook takes), loaded alone. What is
// above the floor is the exec hook's lookup of the binary's directory among the bin dirs.
func BenchmarkCNI(b *testing.B) {
	loop, ghostwatch, floor, ours := prepare(b)
	configs := besideFloor(floorOn(floor, ours, []string{"sys_enter_write"}, floor.FloorExec, floor.FloorFork, floor.FloorExit),
		traced(ghostwatch, "cni"),
		config{"ghostwatch trace cni --plugin-output=false", traceGadget(ghostwatch, "cni", "--plugin-output=false"), 0})
	againstFloor(b, loop, configs, "exec", loopRun{"exec", 2000})
	// The exec hook's lookup is the difference, far below an exec's own cost and the wall clock's
	// noise: the kernel's accounting of each program's run time.
	floorProgs := []string{"floor_exec", "floor_fork", "floor_exit", "syscall_tp"}
	cniProgs := []string{"exec_btf", "fork_btf", "exit_btf", "output_enter"}
	runTimeUnder(b, loop, ours, configs[1:], loopRun{"exec", 2000}, floorProgs, cniProgs, cniProgs)
}

// BenchmarkNetlink measures what `trace netlink` adds to reads that copy a socket buffer (a byte
// written to a unix datagram socket pair and read), which every process of the node pays for:
// its ack hook runs at every such read (TCP's, unix sockets', netlink's) and leaves after one hash
// lookup when the process has no message pending.
func BenchmarkNetlink(b *testing.B) {
	loop, ghostwatch, floor, ours := prepare(b)
	configs := besideFloor(floorOn(floor, ours, nil, floor.FloorDatagram, floor.FloorExtack), traced(ghostwatch, "netlink"))
	againstFloor(b, loop, configs, "send and read", loopRun{"dgram", 200000})
	runTimeUnder(b, loop, ours, configs[1:], loopRun{"dgram", 200000},
		[]string{"floor_datagram", "floor_extack"}, []string{"ack_btf", "extack_btf"})
}
