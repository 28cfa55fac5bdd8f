package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ghostwatch/ghostwatch/gen/header"
	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/setns"
	"github.com/ghostwatch/ghostwatch/tracer/setns/setnstest"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// stormCalls is how many unshare(CLONE_NEWUTS) calls one storm makes.
const stormCalls = 1000000

// BenchmarkStreaming measures streaming: decoding and encoding an event in user space, alone,
// then a storm of namespace changes (one thread making unshare(CLONE_NEWUTS) as fast as it can)
// traced end to end by `trace setns`, beside bpftrace printing the same syscall's events.
func BenchmarkStreaming(b *testing.B) {
	decodeEncode(b)
	storm(b)
}

// decodeEncode times the CLI's per-event work on one core: decode a setns record (containers
// resolved) and append it as a JSON line or a table row to a reused buffer. JSON is timed twice:
// for events of one task, whose proc and ns objects the writer copies from the last event, and
// for events whose namespaces change every time, as in the storm (an unshare per event), where
// only the proc object is copied. (testing.Benchmark cannot run inside a benchmark: it would wait
// for the lock this one holds.)
func decodeEncode(b *testing.B) {
	dec := gadget.NewDecoder(&setns.Gadget, event.NewClock(), container.NewCollection())
	raw := setnstest.Record(true)
	hdr := (*event.Raw)(unsafe.Pointer(&raw[0]))
	j := gadget.JSONLines{JSON: encode.JSON{B: make([]byte, 0, 4096)}}
	row := encode.Row{Columns: setns.Gadget.TableColumns()}
	const n = 1000000
	fmt.Printf("\ndecode + encode of a setns event, one core, median of %d rounds of %d\n", rounds, n)
	met := true
	for _, f := range []struct {
		name   string
		newNS  bool
		encode func(gadget.Event)
	}{
		{"json, one task", false, func(ev gadget.Event) { j.B = j.B[:0]; j.Append(ev) }},
		{"json, new namespaces each event", true, func(ev gadget.Event) { j.B = j.B[:0]; j.Append(ev) }},
		{"table", false, func(ev gadget.Event) { gadget.AppendRow(&row, ev) }},
	} {
		one := func() {
			if f.newNS {
				hdr.Ns[header.HeaderGwNsGW_NS_UTS]++
			}
			ev, err := dec.Decode(raw)
			if err != nil {
				b.Fatal(err)
			}
			f.encode(ev)
		}
		allocs := testing.AllocsPerRun(1000, one)
		var took []float64
		for range rounds {
			start := time.Now()
			for range n {
				one()
			}
			took = append(took, float64(time.Since(start).Nanoseconds())/n)
		}
		ns := median(took)
		fmt.Printf("%-32s %8.1f ns/event %4.0f allocs/event %6.2f M events/s\n", f.name, ns, allocs, 1e3/ns)
		met = met && allocs == 0 && ns <= 1000
	}
	fmt.Printf("targets: 0 allocations and >= 1 M events/s per core: %s\n", verdict(met))
}

// stormRun is one traced storm: how it is traced, and what the tracer delivered and counted as
// lost.
type stormRun struct {
	name            string
	trace           func(r *stormRun) setup
	ours            bool // ghostwatch, whose counts must add up to the calls
	target          float64
	nsPerCall       float64
	delivered, lost uint64
}

func storm(b *testing.B) {
	_, ghostwatch, _, ours := prepare(b)
	// The loop, named storm: the comm both tracers filter on.
	stormBin := build(b, b.TempDir(), "storm", "./loop")
	dir := b.TempDir()

	untraced := runLoop(b, stormBin, "unshare", stormCalls, func(b *testing.B, _ int, _ uint32) func() {
		alone(b, ours)
		return func() {}
	})
	runs := []*stormRun{
		{name: "ghostwatch trace setns -o json > /dev/null", trace: stormGhostwatch(ghostwatch, os.DevNull), ours: true, target: 0.9},
		{name: "ghostwatch trace setns -o json > file", trace: stormGhostwatch(ghostwatch, filepath.Join(dir, "gw.json")), ours: true, target: 0.8},
		{name: "  the same, --buffer-size 256K", trace: stormGhostwatch(ghostwatch, filepath.Join(dir, "gw.json"), "--buffer-size", "256K"), ours: true},
		{name: "  the same, --buffer-size 512K", trace: stormGhostwatch(ghostwatch, filepath.Join(dir, "gw.json"), "--buffer-size", "512K"), ours: true},
		{name: "  the same, --buffer-size 4M", trace: stormGhostwatch(ghostwatch, filepath.Join(dir, "gw.json"), "--buffer-size", "4M"), ours: true},
		{name: "bpftrace printf > pipe, read and discarded", trace: stormBpftracePipe},
		{name: "bpftrace printf > file", trace: stormBpftraceFile(filepath.Join(dir, "bpftrace.txt"))},
	}
	for _, r := range runs {
		// A run's output file is gone once counted, but what an earlier one left for writeback
		// would still compete with this one's writes: each starts with nothing dirty.
		syscall.Sync()
		r.nsPerCall = runLoop(b, stormBin, "unshare", stormCalls, r.trace(r))
	}

	fmt.Printf("\nstorm: %d unshare(CLONE_NEWUTS) calls by one thread (comm storm), %.0f k calls/s untraced\n", stormCalls, 1e6/untraced)
	fmt.Printf("%-44s %9s %9s %10s %8s %11s %10s\n", "", "k calls/s", "x slower", "delivered", "lost", "unaccounted", "k events/s")
	var targets []string
	exact := true
	for _, r := range runs {
		missing := int64(stormCalls) - int64(r.delivered) - int64(r.lost)
		delivered := float64(r.delivered) / stormCalls
		fmt.Printf("%-44s %9.0f %9.2f %9.2f%% %7.2f%% %11d %10.0f\n", r.name, 1e6/r.nsPerCall, r.nsPerCall/untraced,
			100*delivered, 100*float64(r.lost)/stormCalls, missing, 1e6*delivered/r.nsPerCall)
		exact = exact && (!r.ours || missing == 0)
		if r.target > 0 {
			targets = append(targets, fmt.Sprintf("%s: >= %.0f%% delivered: %s (%.2f%%)", strings.TrimPrefix(r.name, "ghostwatch trace setns -o json "),
				100*r.target, verdict(delivered >= r.target), 100*delivered))
		}
	}
	fmt.Printf("k events/s: delivered per second of storm; unaccounted: calls neither delivered nor counted as lost\n")
	fmt.Printf("targets (default buffer): %s; ghostwatch's delivered + lost = calls: %s\n", strings.Join(targets, "; "), verdict(exact))
}

// start starts a tracer that, should the benchmark fail before it is stopped, is killed then, so
// that nothing it loaded outlives the run.
func start(b *testing.B, cmd *exec.Cmd, what string) {
	if err := cmd.Start(); err != nil {
		b.Fatalf("%s: %v", what, err)
	}
	b.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
}

// summaryLine is the count `trace` prints on stderr when it stops.
var summaryLine = regexp.MustCompile(`: (\d+) events, (\d+) lost`)

// stormGhostwatch runs `trace setns -o json --comm storm` with its output to out and, when it has
// stopped, reads its count of events and drops; for a file, it checks the lines against it.
func stormGhostwatch(ghostwatch, out string, args ...string) func(*stormRun) setup {
	return func(r *stormRun) setup {
		return func(b *testing.B, _ int, _ uint32) func() {
			f, err := os.Create(out)
			if err != nil {
				b.Fatal(err)
			}
			cmd := exec.Command(ghostwatch, append([]string{"trace", "setns", "-o", "json", "--comm", "storm"}, args...)...)
			cmd.Stdout = f
			stderr := startPiped(b, cmd, &cmd.Stderr, "ghostwatch") // the summary is read while it is waited for
			sc := bufio.NewScanner(stderr)
			waitScan(b, sc, "tracing setns")
			return func() {
				defer stderr.Close()
				stopped := make(chan bool, 1)
				go func() { stopped <- interrupt(cmd, "ghostwatch") }()
				m := waitScan(b, sc, " lost, ") // fails if ghostwatch had to be killed
				go io.Copy(io.Discard, stderr)
				if !<-stopped {
					b.Errorf("%s: ghostwatch did not stop on SIGINT", r.name)
				}
				f.Close()
				n := summaryLine.FindStringSubmatch(m)
				r.delivered, _ = strconv.ParseUint(n[1], 10, 64)
				r.lost, _ = strconv.ParseUint(n[2], 10, 64)
				if out != os.DevNull {
					// Every line but the last (the summary) is an event.
					var lines uint64
					eachLine(b, out, func(string) { lines++ })
					if lines-1 != r.delivered {
						b.Errorf("%s: %d events in the file, %d in the summary", r.name, lines-1, r.delivered)
					}
				}
			}
		}
	}
}

// startPiped starts cmd with one of its outputs (out: &cmd.Stdout or &cmd.Stderr) into a pipe and
// returns the pipe's read end, for the caller to close. Unlike StdoutPipe's, Wait does not close
// it, so a tracer can be waited for while its output is read: everything it wrote before it
// exited is read to the end (StdoutPipe's may be closed by Wait with lines still in it).
func startPiped(b *testing.B, cmd *exec.Cmd, out *io.Writer, what string) *os.File {
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	*out = w
	start(b, cmd, what)
	w.Close()
	return r
}

// waitScan reads lines until one contains s, and returns it.
func waitScan(b *testing.B, sc *bufio.Scanner, s string) string {
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return sc.Text()
		}
	}
	b.Fatalf("no %q", s)
	return ""
}

// stormBpftraceProgram prints each storm unshare as it returns, as `trace setns` reports it.
const stormBpftraceProgram = `tracepoint:syscalls:sys_exit_unshare /comm == "storm"/ { printf("%d %d %d\n", pid, tid, args->ret); }`

// bpftraceCount counts bpftrace's output: event lines, and the events it reports lost ("Lost N
// events").
func bpftraceCount(r *stormRun, line string) {
	var lost uint64
	switch {
	case line != "" && line[0] >= '0' && line[0] <= '9':
		r.delivered++
	case strings.HasPrefix(line, "Lost "):
		if _, err := fmt.Sscanf(line, "Lost %d events", &lost); err == nil {
			r.lost += lost
		}
	}
}

// stormBpftracePipe runs bpftrace with its output into a pipe that is read and counted, which is
// /dev/null that can count.
func stormBpftracePipe(r *stormRun) setup {
	return func(b *testing.B, _ int, _ uint32) func() {
		cmd := exec.Command("bpftrace", "-e", stormBpftraceProgram)
		stdout := startPiped(b, cmd, &cmd.Stdout, "bpftrace")
		sc := bufio.NewScanner(stdout)
		waitScan(b, sc, "Attaching")
		done := make(chan struct{})
		go func() {
			for sc.Scan() {
				bpftraceCount(r, sc.Text())
			}
			close(done)
		}()
		return func() { interrupt(cmd, "bpftrace"); <-done; stdout.Close() }
	}
}

// stormBpftraceFile runs bpftrace with its output to a file, counted when it has stopped.
func stormBpftraceFile(out string) func(*stormRun) setup {
	return func(r *stormRun) setup {
		return func(b *testing.B, _ int, _ uint32) func() {
			f, err := os.Create(out)
			if err != nil {
				b.Fatal(err)
			}
			cmd := exec.Command("bpftrace", "-e", stormBpftraceProgram)
			cmd.Stdout = f
			start(b, cmd, "bpftrace")
			// A file has nothing to wait on: poll it for bpftrace's first line.
			for deadline := time.Now().Add(testutil.Wait); !bytes.Contains(readFile(b, out), []byte("Attaching")); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatal("bpftrace did not attach")
				}
			}
			return func() {
				interrupt(cmd, "bpftrace")
				f.Close()
				eachLine(b, out, func(line string) { bpftraceCount(r, line) })
			}
		}
	}
}

func readFile(b *testing.B, path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// eachLine calls f with each line of the file at path, then removes it: a storm's output is
// hundreds of megabytes.
func eachLine(b *testing.B, path string, f func(line string)) {
	in, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(path)
	defer in.Close()
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f(sc.Text())
	}
	if err := sc.Err(); err != nil {
		b.Fatalf("reading %s: %v", path, err)
	}
}
