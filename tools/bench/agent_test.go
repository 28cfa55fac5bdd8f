package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	floorgen "github.com/ghostwatch/ghostwatch/gen/floor"
	"github.com/ghostwatch/ghostwatch/tracer/agent"
	"github.com/ghostwatch/ghostwatch/tracer/flightrec"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/registry"
)

// BenchmarkAgent measures the agent with its defaults on this node: what it adds to every
// syscall (a getppid loop) beside empty programs on the attach points its defaults take here, and
// each gadget alone; its memory and CPU on an idle node; and a storm of 100k capability checks and
// 10k device denials a second, every event delivered or counted.
func BenchmarkAgent(b *testing.B) {
	loop, ghostwatch, floor, ours := prepare(b)

	points := agentAttachPoints(b)
	var names []string
	for _, p := range points {
		names = append(names, p.kind+" "+p.target)
	}
	fmt.Printf("\nagent defaults on this kernel: %d attach points that run programs: %s\n", len(points), strings.Join(names, ", "))
	configs := []config{
		untraced,
		{"floor: empty programs on the same attach points", floorAt(floor, ours, points), 0},
		{"ghostwatch agent (defaults)", runAgent(ghostwatch), 0},
	}
	for _, d := range registry.Streams() {
		configs = append(configs, config{"  only --gadgets " + d.Name, runAgent(ghostwatch, "--gadgets", d.Name), 0})
	}
	againstFloor(b, loop, configs, "syscall", loopRun{"getppid", 1000000})
	fmt.Println("target: the agent <= 1.3x floor")
	kernelTimeOnGetppid(b, loop, ours, configs[1:3])

	idle(b, ghostwatch, 30*time.Second)
	agentStorm(b, loop, ghostwatch, ours)
}

// kernelTimeOnGetppid prints, for one getppid loop under each configuration, the kernel's
// accounting of the programs that ran: on a busy machine the wall clock moves by more than the
// programs cost. A getppid runs one program of the agent's (devices' on every syscall's exit); the
// floor's empty ones are all named floor_fork.
func kernelTimeOnGetppid(b *testing.B, loop string, ours map[string]bool, configs []config) {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()
	fmt.Printf("\nkernel time per run of the programs that ran in one getppid loop (BPF_STATS_RUN_TIME, which adds a clock read per run)\n")
	for _, c := range configs {
		alone(b, ours)
		runLoop(b, loop, "getppid", 1000000, func(b *testing.B, pid int, mntns uint32) func() {
			end := c.setup(b, pid, mntns)
			return func() {
				fmt.Println(c.name)
				printRunTime(b, "floor_fork", "denied_exit")
				end()
			}
		})
	}
}

// attachPoint is one place the agent's programs run: a tracepoint (group:name) or a BTF one.
type attachPoint struct{ kind, target string }

// agentAttachPoints opens every gadget with the agent's defaults, as the agent does, and returns
// the attach points chosen that run a program on events (iterators run only when read).
func agentAttachPoints(b *testing.B) []attachPoint {
	var out []attachPoint
	for _, d := range registry.Streams() {
		g, err := gadget.Open(d, gadget.Options{Params: agent.Defaults[d.Name]})
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range g.Choices() {
			kind, targets, _ := strings.Cut(c.Chosen, " ")
			if kind == "" || kind == "iter" {
				continue
			}
			for _, t := range strings.Split(targets, ",") {
				p := attachPoint{kind, t}
				if !containsPoint(out, p) {
					out = append(out, p)
				}
			}
		}
		g.Close()
	}
	return out
}

func containsPoint(list []attachPoint, p attachPoint) bool {
	for _, x := range list {
		if x == p {
			return true
		}
	}
	return false
}

// floorAt is a floor of empty programs, each attached alone, on the given attach points: the
// empty tracepoint program on each tracepoint, and the empty tp_btf program loaded for each BTF
// tracepoint (it reads no argument, so it verifies for any).
func floorAt(floor *floorgen.FloorPrograms, ours map[string]bool, points []attachPoint) setup {
	return func(b *testing.B, _ int, _ uint32) func() {
		spec, err := floorgen.LoadFloor()
		if err != nil {
			b.Fatal(err)
		}
		var closers []io.Closer
		closeAll := func() {
			for _, c := range closers {
				c.Close()
			}
		}
		for _, p := range points {
			switch p.kind {
			case "tracepoint":
				group, name, _ := strings.Cut(p.target, ":")
				l, err := link.Tracepoint(group, name, floor.SyscallTp, nil)
				if err != nil {
					closeAll()
					b.Fatal(err)
				}
				closers = append(closers, l)
			case "tp_btf":
				ps := spec.Programs["floor_fork"].Copy()
				ps.AttachTo = p.target
				prog, err := ebpf.NewProgram(ps)
				if err != nil {
					closeAll()
					b.Fatalf("an empty tp_btf program on %s: %v", p.target, err)
				}
				closers = append(closers, prog)
				l, err := link.AttachTracing(link.TracingOptions{Program: prog})
				if err != nil {
					closeAll()
					b.Fatal(err)
				}
				closers = append(closers, l)
			default:
				closeAll()
				b.Fatalf("no floor for %s %s", p.kind, p.target)
			}
		}
		alone(b, ours)
		return closeAll
	}
}

// runAgent runs the agent for one run, its record in a directory of its own and no metrics
// endpoint.
func runAgent(ghostwatch string, args ...string) setup {
	return func(b *testing.B, _ int, _ uint32) func() {
		cmd, _ := startAgent(b, ghostwatch, b.TempDir(), args...)
		return func() {
			if !interrupt(cmd, "ghostwatch agent") {
				b.Errorf("ghostwatch agent did not stop on SIGINT")
			}
		}
	}
}

// startAgent starts the agent on dir and returns once it records, with its stderr so far.
func startAgent(b *testing.B, ghostwatch, dir string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command(ghostwatch, append([]string{"agent", "--data-dir", dir, "--metrics-addr", ""}, args...)...)
	stderr, _ := cmd.StderrPipe()
	start(b, cmd, "ghostwatch agent")
	var log bytes.Buffer
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "agent recording") {
			break
		}
	}
	if !strings.Contains(log.String(), "agent recording") {
		b.Fatalf("the agent did not start: %s", log.String())
	}
	go func() { io.Copy(&log, stderr) }()
	return cmd, &log
}

// idle runs the agent with its defaults (and its metrics endpoint) on the node as it is, and
// reads its memory and CPU time.
func idle(b *testing.B, ghostwatch string, over time.Duration) {
	cmd := exec.Command(ghostwatch, "agent", "--data-dir", b.TempDir(), "--metrics-addr", "127.0.0.1:0")
	stderr, _ := cmd.StderrPipe()
	start(b, cmd, "ghostwatch agent")
	waitLine(b, stderr, "agent recording")
	go io.Copy(io.Discard, stderr)
	time.Sleep(5 * time.Second) // past start-up (the netns census, the container scan)
	cpu0 := cpuTime(b, cmd.Process.Pid)
	time.Sleep(over)
	cpu := cpuTime(b, cmd.Process.Pid) - cpu0
	rss, hwm := statusKB(b, cmd.Process.Pid, "VmRSS:"), statusKB(b, cmd.Process.Pid, "VmHWM:")
	interrupt(cmd, "ghostwatch agent")
	pct := 100 * cpu.Seconds() / over.Seconds()
	fmt.Printf("\nagent, defaults, idle node (what else runs here goes on), %v: RSS %.1f MB (peak %.1f MB), CPU %.2f%% of one core (%v)\n",
		over, float64(rss)/1024, float64(hwm)/1024, pct, cpu)
	fmt.Printf("targets: RSS < 80 MB: %s; CPU < 1%%: %s\n", verdict(rss < 80*1024), verdict(pct < 1))
}

// cpuTime is a process's user and system time, from /proc/PID/stat.
func cpuTime(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

func statusKB(b *testing.B, pid int, field string) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, field) {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	return 0
}

// stormSlices is the storm's length in 10 ms slices of the loop's capsdev mode.
const stormSlices = 500

// agentStorm runs 5 s of 100k setuid(0) checks and 10k refused opens of /dev/null a second (the
// loop, in a v1 device cgroup that denies everything) under the agent with its defaults, and
// with every check an event (--caps-denied=false --caps-unique=false), and counts from the
// record what was delivered and from its markers what was counted lost.
func agentStorm(b *testing.B, loop, ghostwatch string, ours map[string]bool) {
	cg := filepath.Join("/sys/fs/cgroup/devices", fmt.Sprintf("gw-bench-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		b.Fatal(err)
	}
	defer os.Remove(cg)
	if err := os.WriteFile(filepath.Join(cg, "devices.deny"), []byte("a"), 0); err != nil {
		b.Fatal(err)
	}
	checks, denials := stormSlices*1000, stormSlices*100
	fmt.Printf("\nstorm: %d s of 100k setuid(0) capability checks/s and 10k opens of /dev/null/s refused by the device cgroup (one thread, comm loop)\n",
		stormSlices/100)
	fmt.Printf("%-44s %-15s %9s %9s %9s %11s %9s\n", "", "events", "caused", "recorded", "lost", "unaccounted", "agent cpu")
	for _, run := range []struct {
		name       string
		args       []string
		everyCheck bool
	}{
		{"ghostwatch agent (defaults)", nil, false},
		{"ghostwatch agent, every check an event", []string{"--caps-denied=false", "--caps-unique=false"}, true},
	} {
		alone(b, ours)
		dir := b.TempDir()
		cmd, log := startAgent(b, ghostwatch, dir, run.args...)
		cpu0 := cpuTime(b, cmd.Process.Pid)
		stormLoop(b, loop, cg)
		// What the storm caused is written within a second; the joins hold a denial up to one.
		time.Sleep(3 * time.Second)
		cpu := cpuTime(b, cmd.Process.Pid) - cpu0
		interrupt(cmd, "ghostwatch agent")
		recorded, lost := countRecord(b, dir)
		rows := []struct {
			events string
			caused int
			key    string
			gadget string
		}{{"caps check", 0, "caps/check", "caps"}, {"devices denied", denials, "devices/denied", "devices"}}
		if run.everyCheck {
			rows[0].caused = checks
		}
		for i, r := range rows {
			name, cpuCol := run.name, fmt.Sprintf("%.0f%%", 100*cpu.Seconds()/(stormSlices/100+3))
			if i > 0 {
				name, cpuCol = "", ""
			}
			caused := strconv.Itoa(r.caused)
			if !run.everyCheck && r.gadget == "caps" {
				caused = "0 denied" // root's checks are allowed: the defaults drop them in the kernel
			}
			fmt.Printf("%-44s %-15s %9s %9d %9d %11d %9s\n", name, r.events, caused, recorded[r.key], lost[r.gadget],
				max(int64(r.caused)-int64(recorded[r.key])-int64(lost[r.gadget]), 0), cpuCol)
		}
		if !strings.Contains(log.String(), "ghostwatch: agent: ") {
			b.Errorf("%s: no summary at stop: %s", run.name, log)
		}
	}
	fmt.Println("recorded: events of the loop in the record; lost: counted lost by the gadget (any process); unaccounted: caused, neither recorded nor counted")
}

// stormLoop runs the loop's capsdev storm in the device cgroup cg.
func stormLoop(b *testing.B, loop, cg string) {
	cmd := exec.Command(loop, "capsdev", strconv.Itoa(stormSlices))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	if line, _ := out.ReadString('\n'); line != "ready\n" {
		b.Fatalf("loop: %q", line)
	}
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		b.Fatal(err)
	}
	io.WriteString(stdin, "go\n")
	out.ReadString('\n')
	if err := cmd.Wait(); err != nil {
		b.Fatalf("loop capsdev: %v: %s", err, stderr.String())
	}
}

// countRecord reads a record: the storm's events by gadget/kind, and the losses its markers
// count by gadget.
func countRecord(b *testing.B, dir string) (recorded map[string]uint64, lost map[string]uint64) {
	r, err := flightrec.NewReader(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	recorded = map[string]uint64{}
	// The storm's own: the loop's checks in setuid (not its start-up's), its refused opens of
	// /dev/null.
	mark := map[string][]byte{"caps": []byte(`"syscall":"setuid"`), "devices": []byte(`"path":"/dev/null"`)}
	sum, err := r.Scan(context.Background(), flightrec.Query{JSON: true}, func(e *flightrec.Entry) error {
		if bytes.Contains(e.JSON, []byte(`"comm":"loop"`)) && bytes.Contains(e.JSON, mark[e.Gadget]) {
			recorded[e.Gadget+"/"+e.Kind]++
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	lost = map[string]uint64{}
	for _, g := range sum.Gaps {
		for _, l := range g.Lost {
			lost[l.Gadget] += l.Count
		}
	}
	return recorded, lost
}
