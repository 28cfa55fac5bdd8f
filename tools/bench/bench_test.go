// Package bench measures what recording seccomp profiles costs a workload, side by side with the
// floor (an empty BPF program on sys_enter) and with peers (bpftrace, strace), in one run:
// `make bench`. Containers are stood in for by mount namespaces (unshare -m), which is what the
// recorder keys on.
package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	floorgen "github.com/ghostwatch/ghostwatch/gen/floor"
	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
	"github.com/ghostwatch/ghostwatch/tracer/registry"
	"github.com/ghostwatch/ghostwatch/tracer/seccomp"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

const rounds = 5

// setup prepares a configuration for a loop process (pid, mount namespace) before it starts, and
// returns what ends it.
type setup func(b *testing.B, pid int, mntns uint32) (end func())

type config struct {
	name  string
	setup setup
	calls int // syscalls per run: fewer for strace, which is slow
}

func BenchmarkSeccompRecording(b *testing.B) {
	loop, ghostwatch, floor, ours := prepare(b)
	other := startOther(b)
	configs := []config{
		untraced,
		{"floor: empty program on sys_enter", floorOn(floor, ours, nil, floor.SysEnterBtf).setup, 0},
	}
	configs = append(configs, recorderConfigs(other)...)
	configs = append(configs,
		config{"ghostwatch trace setns -o json", traceGadget(ghostwatch, "setns"), 0},
		config{"bpftrace counting this process", bpftrace, 0},
		config{"strace -f -c", strace, 20000})
	for _, mode := range []struct {
		name  string
		calls int
	}{{"getppid", 1000000}, {"mix", 400000}} {
		results := map[string][]float64{}
		for range rounds {
			for _, c := range configs {
				n := mode.calls
				if c.calls > 0 {
					n = c.calls
				}
				results[c.name] = append(results[c.name], runLoop(b, loop, mode.name, n, c.setup))
			}
		}
		report(b, mode.name, configs, results)
	}
	startup(b, ghostwatch, other.Process.Pid)
}

// BenchmarkSeccompKernelTime is the recorder's cost on every syscall in the kernel's own accounting
// (kernelTime), which a busy machine moves far less than the wall clock.
func BenchmarkSeccompKernelTime(b *testing.B) {
	loop, _, floor, ours := prepare(b)
	kernelTime(b, loop, ours, floor, recorderConfigs(startOther(b)))
}

// startOther starts another container: a process in a mount namespace of its own, ended when the
// benchmark ends.
func startOther(b *testing.B) *exec.Cmd {
	other := exec.Command("unshare", "--mount", "sleep", "100000")
	if err := other.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { other.Process.Kill(); other.Wait() })
	waitNS(b, other.Process.Pid)
	return other
}

// recorderConfigs are the recorder's configurations: recording the loop's container or process
// tree, or other's, and waiting (record --new).
func recorderConfigs(other *exec.Cmd) []config {
	otherNS := container.ProcNS(uint32(other.Process.Pid))["mnt"]
	return []config{
		{"ghostwatch recording this container", recording(func(_ int, mnt uint32) uint32 { return mnt }), 0},
		{"ghostwatch recording another container", recording(func(int, uint32) uint32 { return otherNS }), 0},
		{"ghostwatch recording this process tree", recordingTree(func(pid int) int { return pid }), 0},
		{"ghostwatch recording another process tree", recordingTree(func(int) int { return other.Process.Pid }), 0},
		{"ghostwatch record --new, waiting", waiting, 0},
	}
}

// kernelTime runs the getppid loop more under the floor, the least a program that tells processes
// apart by their mount namespace can do, and the recorder's configurations, interleaved, with the
// kernel's accounting of programs' run time on, and prints the median of what the sys_enter
// program takes per run during the loop, and its ratio to the floor's: the wall-clock figures
// above move by several ns from run to run. The loop runs pinned and real-time (alone1); the
// program runs for every syscall of the node, so those of other processes during a loop are in
// its figure too, and their number in its runs.
func kernelTime(b *testing.B, loop string, ours map[string]bool, floor *floorgen.FloorPrograms, recorder []config) {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()
	type timed struct {
		config
		prog string
	}
	configs := []timed{
		{config{"floor: empty program on sys_enter", floorOn(floor, ours, nil, floor.SysEnterBtf).setup, 0}, "sys_enter_btf"},
		{config{"least: current task's mount namespace read", floorOn(floor, ours, nil, floor.SysEnterMntns).setup, 0}, "sys_enter_mntns"},
	}
	for _, c := range recorder {
		configs = append(configs, timed{c, "sys_enter"})
	}
	defer alone1(b)()
	const calls = 1000000
	perRun, runsOf := map[string][]float64{}, map[string][]float64{}
	for range rounds {
		for _, c := range configs {
			// The kernel frees a stopped recorder's program a little after it exits: read with
			// the next run's, its figures would be mixed in.
			alone(b, ours)
			runLoop(b, loop, "getppid", calls, func(b *testing.B, pid int, mntns uint32) func() {
				end := c.setup(b, pid, mntns)
				before, ok := runTimes(b, c.prog)[c.prog]
				if !ok {
					b.Fatalf("%s: %s is not loaded", c.name, c.prog)
				}
				return func() {
					after := runTimes(b, c.prog)[c.prog]
					if runs := after.RunCount - before.RunCount; runs > 0 {
						perRun[c.name] = append(perRun[c.name], float64((after.Runtime-before.Runtime).Nanoseconds())/float64(runs))
						runsOf[c.name] = append(runsOf[c.name], float64(runs))
					}
					end()
				}
			})
		}
	}
	floorNS := median(perRun[configs[0].name])
	fmt.Printf("\nkernel time of the sys_enter program per run during a getppid loop, median of %d rounds\n", rounds)
	fmt.Printf("(BPF_STATS_RUN_TIME, which adds a clock read per run; runs: the loop's %d and the other processes')\n", calls)
	for _, c := range configs {
		ns := median(perRun[c.name])
		fmt.Printf("%-46s %8.1f ns %6.2f x floor %10.0f runs\n", c.name, ns, ns/floorNS, median(runsOf[c.name]))
	}
}

// alone1 pins this goroutine's thread to the last CPU with a real-time priority (SCHED_FIFO 1),
// which the processes it starts inherit, and returns what undoes it: a loop then runs without
// other processes of a busy machine between its syscalls, whose runs of the program would be
// counted with its own, and which leave the caches the program's run time depends on cold.
func alone1(b *testing.B) (undo func()) {
	runtime.LockOSThread()
	var all, last unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		b.Fatal(err)
	}
	last.Set(runtime.NumCPU() - 1)
	undo = func() {
		unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}, 0)
		unix.SchedSetaffinity(0, &all)
		runtime.UnlockOSThread()
	}
	if err := unix.SchedSetaffinity(0, &last); err != nil {
		undo()
		b.Fatal(err)
	}
	if err := unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}, 0); err != nil {
		undo()
		b.Fatal(err)
	}
	return undo
}

// runLoop runs the workload once under a configuration and returns nanoseconds per syscall.
func runLoop(b *testing.B, loop, mode string, n int, s setup) float64 {
	cmd := exec.Command("unshare", "--mount", loop, mode, strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	if line, _ := out.ReadString('\n'); line != "ready\n" {
		b.Fatalf("loop: %q", line)
	}
	end := s(b, cmd.Process.Pid, container.ProcNS(uint32(cmd.Process.Pid))["mnt"])
	io.WriteString(stdin, "go\n")
	line, _ := out.ReadString('\n')
	cmd.Wait()
	end()
	ns, err := strconv.ParseFloat(strings.TrimSpace(line), 64)
	if err != nil {
		b.Fatalf("loop printed %q", line)
	}
	return ns / float64(n)
}

func bpftrace(b *testing.B, pid int, _ uint32) func() {
	return runBpftrace(b, fmt.Sprintf("tracepoint:raw_syscalls:sys_enter /pid == %d/ { @[args->id] = count(); }", pid))
}

// runBpftrace starts a bpftrace program, its output discarded, and returns what stops it.
func runBpftrace(b *testing.B, prog string) func() {
	cmd := exec.Command("bpftrace", "-e", prog)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatalf("bpftrace: %v", err)
	}
	waitLine(b, stdout, "Attaching")
	go io.Copy(io.Discard, stdout)
	return func() { interrupt(cmd, "bpftrace") }
}

// stopWithin is how long a tracer has to exit after SIGINT before it is killed.
const stopWithin = 20 * time.Second

// interrupt stops a tracer as Ctrl-C does and waits for it to exit; one that has not exited
// within stopWithin is killed, and false returned. bpftrace 0.17 once stayed in epoll_wait after
// the SIGINT that ends a storm row, which left the bench waiting for ever. cmd's pipes, if it has
// any, must have been read to the end by then or be read by another goroutine.
func interrupt(cmd *exec.Cmd, what string) bool {
	cmd.Process.Signal(syscall.SIGINT)
	var killed atomic.Bool
	t := time.AfterFunc(stopWithin, func() { killed.Store(true); cmd.Process.Kill() })
	cmd.Wait()
	t.Stop()
	if killed.Load() {
		fmt.Printf("(%s did not exit within %v of SIGINT: killed; what it had not written is missing)\n", what, stopWithin)
	}
	return !killed.Load()
}

func strace(b *testing.B, pid int, _ uint32) func() {
	cmd := exec.Command("strace", "-f", "-c", "-o", "/dev/null", "-p", strconv.Itoa(pid))
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		b.Fatalf("strace: %v", err)
	}
	waitLine(b, stderr, "attached")
	go io.Copy(io.Discard, stderr)
	return func() { cmd.Wait() } // strace ends with the process
}

func waitLine(b *testing.B, r io.Reader, s string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return
		}
	}
	b.Fatalf("no %q", s)
}

// waitNS waits until unshare has made the mount namespace and exec'd.
func waitNS(b *testing.B, pid int) {
	self := container.ProcNS(uint32(os.Getpid()))["mnt"]
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if mnt := container.ProcNS(uint32(pid))["mnt"]; mnt != 0 && mnt != self {
			return
		}
	}
	b.Fatal("unshare made no mount namespace")
}

// waiting loads the recorder as record --new does (every namespace there is now ignored), and
// checks at the end that it recorded nothing: it measures what waiting costs everyone.
func waiting(b *testing.B, _ int, _ uint32) func() {
	rec, err := seccomp.New(seccomp.Options{New: true})
	if err != nil {
		b.Fatal(err)
	}
	return func() {
		if n := rec.Live(); n != 0 {
			b.Errorf("record --new began %d recordings during the run: it did not only wait", n)
		}
		rec.Close()
	}
}

// recording loads the recorder for one run, alone, recording the mount namespace that which
// returns.
func recording(which func(pid int, mntns uint32) uint32) setup {
	return func(b *testing.B, pid int, mntns uint32) func() {
		rec, err := seccomp.New(seccomp.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := rec.Start(which(pid, mntns)); err != nil {
			b.Fatal(err)
		}
		return func() { rec.Close() }
	}
}

// recordingTree loads the recorder for one run, alone, recording the process tree whose root which
// returns.
func recordingTree(which func(pid int) int) setup {
	return func(b *testing.B, pid int, _ uint32) func() {
		rec, err := seccomp.New(seccomp.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := rec.StartTree(uint32(which(pid))); err != nil {
			b.Fatal(err)
		}
		return func() { rec.Close() }
	}
}

type loopRun struct {
	mode  string
	calls int
}

// againstFloor runs each loop under each configuration (the first: no tracer; the second: the
// floor), interleaved, and prints for each what it added per unit, and its ratio to the floor.
func againstFloor(b *testing.B, loop string, configs []config, unit string, runs ...loopRun) {
	for _, run := range runs {
		results := map[string][]float64{}
		for range rounds {
			for _, c := range configs {
				results[c.name] = append(results[c.name], runLoop(b, loop, run.mode, run.calls, c.setup))
			}
		}
		base := median(results[configs[0].name])
		floor := median(results[configs[1].name]) - base
		fmt.Printf("\n%s loop, median of %d rounds (%.1f ns per %s untraced)\n", run.mode, rounds, base, unit)
		fmt.Printf("%-48s %12s %10s\n", "", "added ns", "x floor")
		for _, c := range configs[1:] {
			a := median(results[c.name]) - base
			fmt.Printf("%-48s %12.1f %10s\n", c.name, a, ratio(a, floor))
		}
	}
}

// untraced is the configuration every comparison starts with: the loop alone.
var untraced = config{"no tracer", func(*testing.B, int, uint32) func() { return func() {} }, 0}

// besideFloor is a gadget benchmark's configurations in againstFloor's order: untraced, the floor
// (floorOn's), then the tracers measured.
func besideFloor(floor config, tracers ...config) []config {
	return append([]config{untraced, floor}, tracers...)
}

// floorOn is a floor: the empty tracepoint program on each syscall tracepoint named, and each
// empty tp_btf program given, attached alone.
func floorOn(floor *floorgen.FloorPrograms, ours map[string]bool, syscallTracepoints []string, btf ...*ebpf.Program) config {
	name := "floor: empty programs on the same attach points"
	if len(syscallTracepoints)+len(btf) == 1 {
		name = "floor: empty program on the same attach point"
	}
	return config{name, func(b *testing.B, _ int, _ uint32) func() {
		var links []link.Link
		closeAll := func() {
			for _, l := range links {
				l.Close()
			}
		}
		for _, tp := range syscallTracepoints {
			l, err := link.Tracepoint("syscalls", tp, floor.SyscallTp, nil)
			if err != nil {
				closeAll()
				b.Fatal(err)
			}
			links = append(links, l)
		}
		for _, p := range btf {
			l, err := link.AttachTracing(link.TracingOptions{Program: p})
			if err != nil {
				closeAll()
				b.Fatal(err)
			}
			links = append(links, l)
		}
		alone(b, ours)
		return closeAll
	}, 0}
}

// prepare is what every benchmark starts with: the loop and ghostwatch built, tracefs mounted (a
// floor's syscall tracepoints are found there), the floor's empty programs loaded (closed when the
// benchmark ends), and the names of our programs, none of which may be loaded while a floor runs.
func prepare(b *testing.B) (loop, ghostwatch string, floor *floorgen.FloorPrograms, ours map[string]bool) {
	testutil.RequirePrivileged(b)
	release, err := kernel.Use(kernel.Tracefs)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(release)
	dir := b.TempDir()
	loop = build(b, dir, "loop", "./loop")
	ghostwatch = build(b, dir, "ghostwatch", "../../cmd/ghostwatch")
	floor = &floorgen.FloorPrograms{}
	if err = floorgen.LoadFloorObjects(floor, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { floor.Close() })
	return loop, ghostwatch, floor, gadgetPrograms(b)
}

// gadgetPrograms are the names of every program of every gadget, as testutil.Programs shows them
// (whole: where the kernel keeps 15 characters, cilium/ebpf reads the rest from the program's BTF).
func gadgetPrograms(b *testing.B) map[string]bool {
	names := map[string]bool{}
	for _, d := range registry.All {
		spec, err := d.Load()
		if err != nil {
			b.Fatal(err)
		}
		for name := range spec.Programs {
			names[name] = true
		}
	}
	return names
}

// alone fails the benchmark if a program of a gadget is still loaded before a run that must have
// none: a floor would then measure two programs, and every ratio to it would be meaningless, and a
// run's kernel time would be printed beside an earlier run's. The kernel frees a closed program
// shortly after, so this waits a little for the last run's to go.
func alone(b *testing.B, ours map[string]bool) {
	deadline := time.Now().Add(testutil.Wait)
	for {
		var left []string
		for id, name := range testutil.Programs(b) {
			if ours[name] {
				left = append(left, fmt.Sprintf("%d:%s", id, name))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("programs of ghostwatch from an earlier run are still loaded: %v", left)
		}
		time.Sleep(20 * time.Millisecond) // polling a kernel list: there is nothing to wait on
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func report(b *testing.B, mode string, configs []config, results map[string][]float64) {
	base := median(results[configs[0].name])
	added := func(name string) float64 { return median(results[name]) - base }
	floor, peer := added(configs[1].name), added("bpftrace counting this process")
	fmt.Printf("\n%s loop, median of %d rounds (%.1f ns per syscall untraced)\n", mode, rounds, base)
	fmt.Printf("%-42s %12s %10s %10s\n", "", "added ns", "x floor", "x bpftrace")
	for _, c := range configs[1:] {
		a := added(c.name)
		fmt.Printf("%-42s %12.1f %10.2f %10.2f\n", c.name, a, a/floor, a/peer)
	}
	var line []string
	for _, t := range []struct {
		what, config string
		limit        float64
	}{
		{"recorded", "ghostwatch recording this container", 1.3},
		{"tree recorded", "ghostwatch recording this process tree", 1.3},
		{"other", "ghostwatch recording another container", 1.15},
		{"other tree", "ghostwatch recording another process tree", 1.15},
		{"waiting", "ghostwatch record --new, waiting", 1.15},
	} {
		a := added(t.config)
		line = append(line, fmt.Sprintf("%s <= %.2fx floor: %s (%.2f)", t.what, t.limit, verdict(a <= t.limit*floor), a/floor))
	}
	rec := added("ghostwatch recording this container")
	line = append(line, fmt.Sprintf("recorded <= 0.5x bpftrace: %s (%.2f)", verdict(rec <= peer/2), rec/peer))
	fmt.Printf("targets: %s\n", strings.Join(line, "; "))
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// startup measures the CLI from launch to recording, and its memory while recording.
func startup(b *testing.B, ghostwatch string, pid int) {
	var took []float64
	var rss string
	for range rounds {
		cmd := exec.Command(ghostwatch, "seccomp", "record", "--pid", strconv.Itoa(pid), "-o", filepath.Join(b.TempDir(), "p.json"))
		stderr, _ := cmd.StderrPipe()
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		waitLine(b, stderr, "recording syscalls")
		took = append(took, float64(time.Since(start).Milliseconds()))
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "VmRSS:") {
				rss = strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
			}
		}
		cmd.Process.Signal(syscall.SIGINT)
		go io.Copy(io.Discard, stderr)
		cmd.Wait()
	}
	ms := median(took)
	fmt.Printf("\nghostwatch seccomp record: %.0f ms from launch to recording (median of %d; target 200 ms: %s), RSS %s\n",
		ms, rounds, verdict(ms <= 200), rss)
}

func build(b *testing.B, dir, name, pkg string) string {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v: %s", pkg, err, msg)
	}
	return out
}
