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
)

// BenchmarkOOM measures what `trace oom` costs. Its hook runs only when the kernel kills a task
// for memory, so it adds nothing to anything else (the getppid and fork loops show that beside an
// empty program on the same attach point); what a kill costs it is the kernel's accounting of the
// program's run time, beside the empty program's, over a series of kills in a 16 MiB memory
// cgroup (a shell doubling a string until it is killed), and the kill's wall time under each.
func BenchmarkOOM(b *testing.B) {
	loop, ghostwatch, floor, ours := prepare(b)
	configs := besideFloor(floorOn(floor, ours, nil, floor.FloorMarkVictim), traced(ghostwatch, "oom"))
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
	programs := []string{"", "floor_mark_victim", "kill_mark_victim"} // configs[i]'s; the untraced run has none
	for i, c := range configs {
		alone(b, ours)
		end := c.setup(b, 0, 0)
		before := runTimes(b, programs[i])
		start := time.Now()
		for range kills {
			oomKill(b, dir)
		}
		perKill := float64(time.Since(start).Microseconds()) / 1000 / kills
		fmt.Printf("%-48s %12.2f ", c.name, perKill)
		if i == 0 {
			fmt.Println()
		} else {
			ns, runs := perRun(runTimes(b, programs[i]), before, programs[i])
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
