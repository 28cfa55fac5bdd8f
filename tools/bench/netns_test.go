package bench

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// BenchmarkNetnsHolders measures `ghostwatch netns holders` on a node of at least 2,000 processes
// and 50,000 open fds (sleepers holding /dev/null, pipes and unix sockets), through the BPF
// iterators and through the /proc fallback, beside `lsns -t net` (which only reads each process's
// namespace links, no fds), in one run: wall time and CPU time (user + system) of each.
func BenchmarkNetnsHolders(b *testing.B) {
	testutil.RequirePrivileged(b)
	const procs, fdsEach = 2000, 25
	ghostwatch := build(b, b.TempDir(), "ghostwatch", "../../cmd/ghostwatch")
	files := make([]*os.File, 0, fdsEach)
	for len(files) < fdsEach {
		null, err := os.Open(os.DevNull)
		if err != nil {
			b.Fatal(err)
		}
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, null, r, w, os.NewFile(uintptr(pair[0]), "a"), os.NewFile(uintptr(pair[1]), "b"))
	}
	files = files[:fdsEach]
	var sleepers []*exec.Cmd
	defer func() {
		for _, c := range sleepers {
			c.Process.Kill()
			c.Wait()
		}
	}()
	for range procs {
		c := exec.Command("sleep", "100000")
		c.ExtraFiles = files
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		sleepers = append(sleepers, c)
	}
	for _, f := range files {
		f.Close()
	}
	nprocs, nfds := census(b)
	fmt.Printf("\nnetns holders: %d processes, %d open fds on the node, median of %d runs\n", nprocs, nfds, rounds)
	fmt.Printf("%-48s %10s %10s %10s\n", "", "wall ms", "cpu ms", "x lsns")
	configs := []struct {
		name, path string
		args       []string
	}{
		{"lsns -t net", "lsns", []string{"-t", "net"}},
		{"ghostwatch netns holders (iterators)", ghostwatch, []string{"netns", "holders", "-o", "json", "--source", "iterators"}},
		{"ghostwatch netns holders (/proc)", ghostwatch, []string{"netns", "holders", "-o", "json", "--source", "proc"}},
	}
	var base float64
	for i, c := range configs {
		var walls, cpus []float64
		for range rounds {
			cmd := exec.Command(c.path, c.args...)
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%s: %v: %s", c.name, err, out)
			}
			walls = append(walls, float64(time.Since(start).Microseconds())/1000)
			cpus = append(cpus, float64((cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime()).Microseconds())/1000)
		}
		if i == 0 {
			base = median(walls)
		}
		fmt.Printf("%-48s %10.1f %10.1f %10s\n", c.name, median(walls), median(cpus), ratio(median(walls), base))
	}
}

// census counts the node's processes and open fds, to show the size the bench ran at.
func census(b *testing.B) (procs, fds int) {
	dir, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range dir {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		procs++
		if f, err := os.ReadDir("/proc/" + e.Name() + "/fd"); err == nil {
			fds += len(f)
		}
	}
	return procs, fds
}

// BenchmarkNetnsTrace measures what `trace netns` adds to creating and ending a process (a loop
// of vfork-and-exit children), for processes of the host's namespace (one comparison) and of a
// namespace of their own (counted per task), beside empty programs on the same attach points
// (tp_btf on fork and exit, the unshare and setns syscall tracepoints), attached alone; then the
// kernel's accounting of the fork and exit programs' run time beside the empty ones', which is
// finer than the loop's noise.
func BenchmarkNetnsTrace(b *testing.B) {
	loop, ghostwatch, floor, ours := prepare(b)
	configs := besideFloor(floorOn(floor, ours, []string{"sys_enter_unshare", "sys_exit_unshare", "sys_exit_setns"}, floor.FloorFork, floor.FloorExit),
		traced(ghostwatch, "netns"))
	againstFloor(b, loop, configs, "process", loopRun{"fork", 100000}, loopRun{"forknet", 100000})
	// A process's life costs tens of µs and moves by about a µs from run to run, more than the
	// programs cost: the kernel's own accounting of their run time tells what they add.
	for _, mode := range []string{"fork", "forknet"} {
		runTimeUnder(b, loop, ours, configs[1:], loopRun{mode, 100000},
			[]string{"floor_fork", "floor_exit"}, []string{"member_fork", "member_exit"})
	}
}

// printRunTime prints the kernel's accounting of the named programs' run time, per run.
func printRunTime(b *testing.B, names ...string) { printRunTimeSince(b, nil, names...) }

// printRunTimeSince prints it since before (runTimes): for programs loaded once and run in
// several loops, the floor's.
func printRunTimeSince(b *testing.B, before map[string]*ebpf.ProgramStats, names ...string) {
	now := runTimes(b, names...)
	for _, name := range names {
		if ns, runs := perRun(now, before, name); runs > 0 {
			fmt.Printf("%-48s %10.1f ns per run (%d runs)\n", name, ns, runs)
		}
	}
}

// perRun is the named program's run time per run, and its runs, from its run times now and before
// (nil or without it: since it was loaded); 0 runs where it is not loaded now.
func perRun(now, before map[string]*ebpf.ProgramStats, name string) (ns float64, runs uint64) {
	st, ok := now[name]
	if !ok {
		return 0, 0
	}
	runs, t := st.RunCount, st.Runtime
	if p, ok := before[name]; ok {
		runs, t = runs-p.RunCount, t-p.Runtime
	}
	return float64(t.Nanoseconds()) / float64(max(runs, 1)), runs
}

// runTimes is the kernel's accounting of the named programs loaded now (BPF_STATS_RUN_TIME), by name.
func runTimes(b *testing.B, names ...string) map[string]*ebpf.ProgramStats {
	stats := map[string]*ebpf.ProgramStats{}
	for id, name := range testutil.Programs(b) {
		if !slices.Contains(names, name) {
			continue
		}
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		if err != nil {
			continue // unloaded meanwhile
		}
		if st, err := p.Stats(); err == nil {
			stats[name] = st
		}
		p.Close()
	}
	return stats
}

// runTimeUnder runs the loop once more under each configuration, with the kernel's accounting of
// programs' run time on, and prints what the named programs (programs[i] for configs[i]) take per
// run in that loop (a floor's programs stay loaded and ran in the loops before): on a busy machine
// the wall clock moves by more than such programs cost.
func runTimeUnder(b *testing.B, loop string, ours map[string]bool, configs []config, run loopRun, programs ...[]string) {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()
	fmt.Printf("\nkernel time per run in one %s loop (BPF_STATS_RUN_TIME, which adds a clock read per run)\n", run.mode)
	for i, c := range configs {
		alone(b, ours)
		runLoop(b, loop, run.mode, run.calls, func(b *testing.B, pid int, mntns uint32) func() {
			end := c.setup(b, pid, mntns)
			before := runTimes(b, programs[i]...)
			return func() {
				fmt.Println(c.name)
				printRunTimeSince(b, before, programs[i]...)
				end()
			}
		})
	}
}
