package bench

import (
	"fmt"
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// BenchmarkCaps measures what `trace caps` adds to every syscall (a getppid loop: no capability
// check, but the syscall tracepoints of capset are enabled) and to a loop of capability checks
// (setuid(0) as root), beside empty programs on the same hooks and bpftrace's cap_capable
// one-liner printing each check, as `trace caps -o json` writes each.
func BenchmarkCaps(b *testing.B) {
	loop, ghostwatch, floor, ours := prepare(b)

	empty := func(p *ebpf.Program) setup {
		return func(b *testing.B, _ int, _ uint32) func() {
			l, err := link.AttachTracing(link.TracingOptions{Program: p})
			if err != nil {
				b.Fatal(err)
			}
			alone(b, ours)
			return func() { l.Close() }
		}
	}
	configs := []config{
		untraced,
		{"floor: empty program on sys_enter", empty(floor.SysEnterBtf), 0},
		{"floor: empty program on cap_capable", empty(floor.CapCapableBtf), 0},
		{"ghostwatch trace caps -o json", traceCaps(ghostwatch), 0},
		{"ghostwatch trace caps --denied", traceCaps(ghostwatch, "--denied"), 0},
		{"trace caps --denied --capset=false", traceCaps(ghostwatch, "--denied", "--capset=false"), 0},
		{"bpftrace printing each check", bpftraceCaps, 0},
	}
	for _, mode := range []struct {
		name  string
		calls int
		floor string
	}{{"getppid", 1000000, configs[1].name}, {"setuid", 400000, configs[2].name}} {
		results := map[string][]float64{}
		for range rounds {
			for _, c := range configs {
				results[c.name] = append(results[c.name], runLoop(b, loop, mode.name, mode.calls, c.setup))
			}
		}
		base := median(results[configs[0].name])
		added := func(name string) float64 { return median(results[name]) - base }
		floor, peer := added(mode.floor), added("bpftrace printing each check")
		fmt.Printf("\n%s loop, median of %d rounds (%.1f ns per syscall untraced); ratios to %q\n", mode.name, rounds, base, mode.floor)
		fmt.Printf("%-42s %12s %10s %10s\n", "", "added ns", "x floor", "x bpftrace")
		for _, c := range configs[1:] {
			a := added(c.name)
			fmt.Printf("%-42s %12.1f %10s %10s\n", c.name, a, ratio(a, floor), ratio(a, peer))
		}
	}
}

// traceCaps runs `trace caps` as a user would, its events written to /dev/null.
func traceCaps(ghostwatch string, args ...string) setup {
	return traceGadget(ghostwatch, "caps", args...)
}

// traced is the configuration of `trace NAME -o json`, as a user runs it.
func traced(ghostwatch, name string) config {
	return config{"ghostwatch trace " + name + " -o json", traceGadget(ghostwatch, name), 0}
}

// traceGadget runs `trace NAME -o json` as a user would, its events written to /dev/null.
func traceGadget(ghostwatch, name string, args ...string) setup {
	return func(b *testing.B, _ int, _ uint32) func() {
		cmd := exec.Command(ghostwatch, append([]string{"trace", name, "-o", "json"}, args...)...)
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		waitLine(b, stderr, "tracing "+name)
		go io.Copy(io.Discard, stderr)
		return func() {
			if !interrupt(cmd, "ghostwatch") {
				b.Errorf("ghostwatch trace %s did not stop on SIGINT", name)
			}
		}
	}
}

func bpftraceCaps(b *testing.B, _ int, _ uint32) func() {
	return runBpftrace(b, `tracepoint:capability:cap_capable { printf("%d %d %d %s\n", pid, args->cap, args->ret, comm); }`)
}

// ratio is a/b, or "-" when b is within noise of nothing (bpftrace on cap_capable adds nothing to
// getppid).
func ratio(a, b float64) string {
	if b < 2 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// BenchmarkCapsUnique measures, in the kernel's accounting of program run time, what a check costs
// the cap_capable program when every check is written (`trace caps`), when --unique finds it seen
// already, and when --denied drops it at once, beside the empty floor program: over setuid loops
// (whose checks --unique writes once), since on a busy machine the wall clock moves by more than that.
func BenchmarkCapsUnique(b *testing.B) {
	loop, ghostwatch, floor, ours := prepare(b)
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()
	checks := []string{"check_btf", "check_fexit", "check_kprobe", "check_kretprobe"}
	configs := []struct {
		config
		programs []string
	}{
		{config{"floor: empty program on cap_capable", floorOn(floor, ours, nil, floor.CapCapableBtf).setup, 0}, []string{"cap_capable_btf"}},
		{config{"trace caps: every check written", traceCaps(ghostwatch, "--capset=false"), 0}, checks},
		{config{"trace caps --unique: each seen before", traceCaps(ghostwatch, "--unique", "--capset=false"), 0}, checks},
		{config{"trace caps --denied: each allowed", traceCaps(ghostwatch, "--denied", "--capset=false"), 0}, checks},
	}
	// The run time of the loop alone: the floor's program stays loaded between its runs, and a
	// tracer's programs run for ghostwatch's own checks before the loop.
	total := func(names []string) (time.Duration, uint64) {
		var d time.Duration
		var n uint64
		for _, st := range runTimes(b, names...) {
			d, n = d+st.Runtime, n+st.RunCount
		}
		return d, n
	}
	runNs := map[string][]float64{}
	for range rounds {
		for _, c := range configs {
			alone(b, ours)
			runLoop(b, loop, "setuid", 400000, func(b *testing.B, pid int, mntns uint32) func() {
				end := c.setup(b, pid, mntns)
				d0, n0 := total(c.programs)
				return func() {
					d, n := total(c.programs)
					if n > n0 {
						runNs[c.name] = append(runNs[c.name], float64(d-d0)/float64(n-n0))
					}
					end()
				}
			})
		}
	}
	fmt.Printf("\nkernel time of the cap_capable program per run, setuid loop, --capset=false, median of %d rounds\n", rounds)
	fmt.Printf("(BPF_STATS_RUN_TIME, which adds a clock read per run)\n")
	for _, c := range configs {
		fmt.Printf("%-42s %10.1f ns\n", c.name, median(runNs[c.name]))
	}
	written, unique, denied := median(runNs[configs[1].name]), median(runNs[configs[2].name]), median(runNs[configs[3].name])
	fmt.Printf("--unique's lookup costs %.1f ns beside --denied's first test, and saves %.1f ns of writing: %.2f\n",
		unique-denied, written-unique, (unique-denied)/(written-unique))
}
