package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/kernel"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// BenchmarkOOM measures what `trace oom` costs. Its hook runs only when the kernel kills a task
// for memory, so it adds nothing to anything else (the getppid and fork loops show that beside an
// empty program on the same attach point); what a kill costs it is the kernel's accounting of the
// program's run time, beside the empty program's, over a series of kills in a 16 MiB memory
// cgroup (a shell doubling a string until it is killed), and the kill's wall time under each.
func BenchmarkOOM(b *testing.B) {
	loop, ghostwatch, floor, ours := prepare(b)
	release, err := kernel.Use(kernel.Tracefs)
	if err != nil {
		b.Fatal(err)
	}
	defer release()
	configs := []config{
		{"no tracer", func(*testing.B, int, uint32) func() { return func() {} }, 0},
		{"floor: empty program on the same attach point", floorOn(floor, ours, nil, floor.FloorMarkVictim), 0},
		{"ghostwatch trace oom -o json", traceGadget(ghostwatch, "oom"), 0},
	}
	againstFloor(b, loop, configs, "call", loopRun{"getppid", 1000000}, loopRun{"fork", 100000})

	dir := "/sys/fs/cgroup/memory/gw-bench-oom"
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	defer os.Remove(dir)
	if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte("16M"), 0o644); err != nil {
		b.Fatal(err)
	}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()
	const kills = 20
	fmt.Printf("\n%d OOM kills in a 16 MiB memory cgroup (a shell doubling a string until killed)\n", kills)
	fmt.Printf("%-48s %12s %22s\n", "", "ms per kill", "program ns per run")
	for _, c := range configs {
		alone(b, ours)
		end := c.setup(b, 0, 0)
		var before *ebpf.ProgramStats
		if c.name == configs[1].name {
			if before, err = floor.FloorMarkVictim.Stats(); err != nil {
				b.Fatal(err)
			}
		}
		start := time.Now()
		for range kills {
			oomKill(b, dir)
		}
		perKill := float64(time.Since(start).Microseconds()) / 1000 / kills
		fmt.Printf("%-48s %12.2f ", c.name, perKill)
		switch c.name {
		case configs[0].name:
			fmt.Println()
		case configs[1].name:
			after, err := floor.FloorMarkVictim.Stats()
			if err != nil {
				b.Fatal(err)
			}
			runs := after.RunCount - before.RunCount
			fmt.Printf("%12.1f (%d runs)\n", float64((after.Runtime-before.Runtime).Nanoseconds())/float64(max(runs, 1)), runs)
		default:
			ns, runs := runTime(b, "kill_mark_victim")
			fmt.Printf("%12.1f (%d runs)\n", ns, runs)
		}
		end()
	}
}

// oomKill runs a shell in the memory cgroup that allocates until the kernel kills it.
func oomKill(b *testing.B, memcg string) {
	cmd := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && a=x && while :; do a=$a$a; done`, "sh", memcg)
	err := cmd.Run()
	if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || st.Signal() != syscall.SIGKILL {
		b.Fatalf("the allocating shell ended with %v, not killed", err)
	}
}

// runTime is the kernel's accounting of a loaded program's run time per run, by its name; runs 0
// when no such program has run.
func runTime(b *testing.B, name string) (ns float64, runs uint64) {
	for id, n := range testutil.Programs(b) {
		if n != name {
			continue
		}
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		if err != nil {
			continue // unloaded meanwhile
		}
		st, err := p.Stats()
		p.Close()
		if err == nil && st.RunCount > 0 {
			return float64(st.Runtime.Nanoseconds()) / float64(st.RunCount), st.RunCount
		}
	}
	return 0, 0
}
