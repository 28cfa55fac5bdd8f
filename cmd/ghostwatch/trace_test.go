package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
	"github.com/ghostwatch/ghostwatch/tracer/netns"
	"github.com/ghostwatch/ghostwatch/tracer/registry"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// The acceptance scenario of `ghostwatch trace setns -o json`, run as a user would.
func TestTraceSetnsJSON(t *testing.T) {
	testutil.RequirePrivileged(t)
	before := bpftoolPrograms(t)
	tr := startTracing(t, "trace", "setns", "-o", "json")

	// sh prints its pid (that of unshare, which execs it) and its new netns, then nsenter enters it.
	script := `echo $$ $(readlink /proc/$$/ns/net); nsenter --net=/proc/self/ns/net true`
	out, err := exec.Command("unshare", "-n", "sh", "-c", script).Output()
	if err != nil {
		t.Fatalf("unshare: %v", err)
	}
	var pid int
	var netns string
	if _, err := fmt.Sscanf(string(out), "%d net:[%s", &pid, &netns); err != nil {
		t.Fatalf("parsing %q: %v", out, err)
	}
	inode, _ := strconv.ParseInt(strings.TrimSuffix(netns, "]"), 10, 64)

	unshare := tr.next(t, "unshare event", func(o map[string]any) bool {
		return get(o, "setns", "syscall") == "unshare" && num(get(o, "proc", "pid")) == int64(pid)
	})
	enter := tr.next(t, "setns event", func(o map[string]any) bool {
		return get(o, "setns", "syscall") == "setns" && num(get(o, "proc", "ppid")) == int64(pid)
	})
	for _, ev := range []map[string]any{unshare, enter} {
		if got := num(get(ev, "setns", "targets", "net")); got != inode {
			t.Errorf("%s: target net inode %d, want %d", get(ev, "setns", "syscall"), got, inode)
		}
		if get(ev, "setns", "result") != "ok" || num(get(ev, "setns", "ret")) != 0 {
			t.Errorf("%s: result %v ret %v, want ok 0", get(ev, "setns", "syscall"), get(ev, "setns", "result"), get(ev, "setns", "ret"))
		}
		if types, _ := get(ev, "setns", "ns_types").([]any); len(types) != 1 || types[0] != "net" {
			t.Errorf("ns_types = %v, want [net]", types)
		}
		for _, key := range []string{"time", "type", "proc", "ns"} {
			if get(ev, key) == nil {
				t.Errorf("event has no %q: %v", key, ev)
			}
		}
	}
	if c := get(unshare, "proc", "comm"); c != "unshare" {
		t.Errorf("unshare event comm = %v", c)
	}
	if c := get(enter, "proc", "comm"); c != "nsenter" {
		t.Errorf("setns event comm = %v", c)
	}
	if _, err := time.Parse(time.RFC3339Nano, get(enter, "time").(string)); err != nil {
		t.Errorf("time is not RFC 3339: %v", err)
	}

	// A setns on a bad fd, from this process.
	if _, err := testutil.OnOwnThread(func() error { return unix.Setns(1<<20, unix.CLONE_NEWNET) }); err != unix.EBADF {
		t.Fatalf("setns on a bad fd: %v", err)
	}
	bad := tr.next(t, "EBADF event", func(o map[string]any) bool {
		return num(get(o, "proc", "pid")) == int64(os.Getpid()) && get(o, "setns", "syscall") == "setns"
	})
	if get(bad, "setns", "result") != "EBADF" || get(bad, "setns", "fd_kind") != "bad" || num(get(bad, "setns", "fd")) != 1<<20 {
		t.Errorf("bad fd event: %v", bad["setns"])
	}

	tr.cmd.Process.Signal(os.Interrupt)
	sum := tr.next(t, "summary", func(o map[string]any) bool { return o["type"] == "summary" })
	if code := tr.wait(t); code != 0 {
		t.Errorf("exit status %d after SIGINT; stderr: %s", code, tr.stderr)
	}
	if num(sum["events"]) < 3 || num(sum["lost"]) != 0 {
		t.Errorf("summary: %v", sum)
	}
	if !strings.Contains(tr.stderr.String(), "lost") {
		t.Errorf("no summary on stderr: %s", tr.stderr)
	}
	testutil.WaitUnloaded(t, before, bpftoolPrograms)
}

// However tracing stops, no program of ghostwatch stays loaded, and tracefs, if ghostwatch had to
// mount it, is unmounted again (but after SIGKILL, when nothing can run).
func TestCleanupOnEveryExit(t *testing.T) {
	testutil.RequirePrivileged(t)
	for _, tc := range []struct {
		name     string
		args     []string
		stop     func(*os.Process)
		wantCode int
	}{
		{"SIGINT", nil, func(p *os.Process) { p.Signal(os.Interrupt) }, 0},
		{"SIGTERM", nil, func(p *os.Process) { p.Signal(syscall.SIGTERM) }, 0},
		// Long enough for the listing below, in vmtest's guests too; the wait outlasts it.
		{"duration", []string{"--duration", (testutil.Wait / 2).String()}, func(*os.Process) {}, 0},
		{"SIGKILL", nil, func(p *os.Process) { p.Kill() }, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := bpftoolPrograms(t)
			tracefsBefore := kernel.Tracefs.Mounted()
			tr := startTracing(t, append([]string{"trace", "setns", "-o", "json"}, tc.args...)...)
			ours := 0
			for id, name := range bpftoolPrograms(t) {
				if _, ok := before[id]; !ok && strings.Contains(name, "setns") {
					ours++
				}
			}
			if ours == 0 {
				t.Fatal("ghostwatch's programs are not visible while it runs: the check could not fail")
			}
			tc.stop(tr.cmd.Process)
			if code := tr.wait(t); code != tc.wantCode {
				t.Errorf("exit status %d, want %d; stderr: %s", code, tc.wantCode, tr.stderr)
			}
			testutil.WaitUnloaded(t, before, bpftoolPrograms)
			if !tracefsBefore && kernel.Tracefs.Mounted() {
				unix.Unmount(kernel.Tracefs.Path, 0)
				if tc.name != "SIGKILL" {
					t.Errorf("tracefs left mounted")
				}
			}
		})
	}
}

// bpftoolPrograms lists loaded programs as `bpftool prog show` sees them: id to name.
func bpftoolPrograms(t testing.TB) map[int]string {
	t.Helper()
	out, err := exec.Command("bpftool", "-j", "prog", "show").Output()
	if err != nil {
		t.Fatalf("bpftool prog show: %v", err)
	}
	var progs []struct {
		ID   int    `json:"id"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(out, &progs); err != nil {
		t.Fatalf("bpftool output: %v", err)
	}
	ids := map[int]string{}
	for _, p := range progs {
		ids[p.ID] = p.Name
	}
	return ids
}

// doctor attaches every gadget for real and reports each hook's choice.
func TestDoctorReportsEveryGadget(t *testing.T) {
	testutil.RequirePrivileged(t)
	var stdout, stderr strings.Builder
	if code := run([]string{"ghostwatch", "doctor", "-o", "json", "--containerd-socket", deadSocket(t)}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var r doctorReport
	if err := json.Unmarshal([]byte(stdout.String()), &r); err != nil {
		t.Fatal(err)
	}
	if !r.BTF || r.Privileges != "ok" || len(r.Gadgets) != len(registry.All) {
		t.Fatalf("report: %+v", r)
	}
	for i, g := range r.Gadgets {
		if g.Name != registry.All[i].Name {
			t.Errorf("gadget %d is %s, want %s", i, g.Name, registry.All[i].Name)
		}
		if g.Error != "" || len(g.Hooks) == 0 {
			t.Errorf("gadget %s: %q, %d hooks", g.Name, g.Error, len(g.Hooks))
		}
	}
	if len(r.Runtimes) == 0 || r.Runtimes[0].Reachable {
		t.Errorf("runtimes: %+v (nothing answers on the socket)", r.Runtimes)
	}
}

// trace --help lists every streaming gadget of the registry, and each has its subcommand.
func TestTraceHelpListsEveryGadget(t *testing.T) {
	help := func(args ...string) string {
		var stdout, stderr strings.Builder
		if code := run(append([]string{"ghostwatch"}, args...), &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr.String())
		}
		return stdout.String()
	}
	list := help("trace", "--help")
	for _, d := range registry.Streams() {
		if !strings.Contains(list, d.Name) || !strings.Contains(list, d.Summary) {
			t.Errorf("trace --help does not list %s (%s):\n%s", d.Name, d.Summary, list)
		}
		own := help("trace", d.Name, "--help")
		for _, p := range d.Params {
			if !strings.Contains(own, "--"+p.Name) {
				t.Errorf("trace %s --help has no --%s", d.Name, p.Name)
			}
		}
	}
}

// Under a storm of namespace changes, with the default ring buffer, every event is either written
// or counted as lost, whether the output is /dev/null or a file: delivered + lost = calls, exactly.
func TestStormEveryEventDeliveredOrCounted(t *testing.T) {
	testutil.RequirePrivileged(t)
	const calls = 100000
	const comm = "gw-storm" // the storm thread's name, which the trace filters on
	for _, tc := range []struct{ name, out string }{
		{"dev-null", os.DevNull},
		{"file", filepath.Join(t.TempDir(), "events.json")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := os.Create(tc.out)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			tr := startTracingTo(t, out, "Ctrl-C to stop", "trace", "setns", "-o", "json", "--comm", comm)
			if err := testutil.Storm(calls, comm); err != nil {
				t.Fatal(err)
			}
			tr.cmd.Process.Signal(os.Interrupt)
			if code := tr.wait(t); code != 0 {
				t.Fatalf("exit status %d; stderr: %s", code, tr.stderr)
			}
			var delivered, lost uint64
			stderr := tr.stderr.String()
			at := strings.Index(stderr, "ghostwatch: setns: ")
			if _, err := fmt.Sscanf(stderr[max(at, 0):], "ghostwatch: setns: %d events, %d lost", &delivered, &lost); at < 0 || err != nil {
				t.Fatalf("no summary on stderr: %s", stderr)
			}
			t.Logf("%d calls: %d delivered, %d lost", calls, delivered, lost)
			if delivered+lost != calls {
				t.Errorf("delivered %d + lost %d != %d calls", delivered, lost, calls)
			}
			if tc.out == os.DevNull {
				return
			}
			data, err := os.ReadFile(tc.out)
			if err != nil {
				t.Fatal(err)
			}
			written := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			if n := uint64(len(written) - 1); n != delivered { // the last line is the summary
				t.Errorf("%d events in the file, %d said delivered", n, delivered)
			}
			var s summary
			if err := json.Unmarshal([]byte(written[len(written)-1]), &s); err != nil || s.Events != delivered || s.Lost != lost {
				t.Errorf("last line %q is not the summary of %d events, %d lost", written[len(written)-1], delivered, lost)
			}
		})
	}
}

// A trace that ends in an error still writes what it decoded and what its join held, and the
// summary. The error here: netns's descriptor without its "empty" kind, so that the record of a
// namespace's last task leaving cannot be decoded, after the "created" event the join holds (it
// waits for the namespace's owner). The netns gadget has no actor filter: any namespace of the
// node that empties ends the run, the test's or another's, maybe before the test's namespace is
// created. So what the join was given is seen (a processor around it), and every namespace whose
// creation it was given must have its created event written; a run that ended before the join was
// given any is run again.
func TestTraceErrorKeepsOutputAndSummary(t *testing.T) {
	testutil.RequirePrivileged(t)
	const runs = 5
	for run := 1; ; run++ {
		if traceUntilError(t) {
			return
		}
		if run == runs {
			t.Fatalf("in %d runs, a namespace emptied before any was created: nothing was tested", runs)
		}
	}
}

// traceUntilError runs `trace netns` until the decoding error and checks its output; false when the
// run ended before its join was given any namespace's creation.
func traceUntilError(t *testing.T) bool {
	t.Helper()
	d := netns.Gadget
	d.Kinds = slices.DeleteFunc(slices.Clone(d.Kinds), func(k gadget.Kind) bool { return k.Name == "empty" })
	given := &givenCreated{}
	d.NewProcessor = func(g *gadget.Gadget, p gadget.Params) (gadget.Processor, error) {
		proc, err := netns.Gadget.NewProcessor(g, p)
		given.Processor = proc
		return given, err
	}
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	app := newApp(&stdout, stderr)
	app.Commands = []*cli.Command{{Name: "trace", Subcommands: []*cli.Command{gadgetCommand(&d)}}}
	done := make(chan error, 1)
	go func() { done <- app.Run([]string{"ghostwatch", "trace", "netns", "-o", "json", "--duration", "1m"}) }()
	for !strings.Contains(stderr.String(), "Ctrl-C to stop") {
		select {
		case err := <-done:
			t.Fatalf("trace ended before it started: %v; stderr: %s", err, stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	holder := testutil.StartHolder(t, unix.CLONE_NEWNET) // its namespace: created, then empty
	netnsInode := testutil.NSInode(t, holder.Pid, "net")
	holder.Stop()
	var err error
	select {
	case err = <-done:
	case <-time.After(testutil.Wait):
		t.Fatalf("no error within %v: the test did not test; stderr: %s", testutil.Wait, stderr)
	}
	if err == nil || !strings.Contains(err.Error(), "unknown kind") {
		t.Fatalf("trace returned %v, want the decoding error", err)
	}
	created := map[uint32]bool{} // the namespaces whose created event was written
	var sum bool
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var o map[string]any
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		if n, ok := get(o, "netns", "netns").(float64); ok && o["kind"] == "created" {
			created[uint32(n)] = true
		}
		sum = sum || o["type"] == "summary"
	}
	if !sum {
		t.Errorf("after the error: no summary written; stdout:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "ghostwatch: netns: ") {
		t.Errorf("no summary on stderr: %s", stderr)
	}
	given.mu.Lock()
	defer given.mu.Unlock()
	if len(given.created) == 0 {
		t.Logf("a namespace emptied (%v) before any was created, the test's %d included: run again", err, netnsInode)
		return false
	}
	for _, n := range given.created {
		if !created[n] {
			t.Errorf("after the error: namespace %d's created event, which the join was given, not written (the test's: %d); stdout:\n%s",
				n, netnsInode, stdout.String())
		}
	}
	return true
}

// givenCreated is a processor around netns's that notes the namespaces whose creation it was given.
type givenCreated struct {
	gadget.Processor
	mu      sync.Mutex
	created []uint32
}

func (g *givenCreated) Process(ev gadget.Event, emit func(gadget.Event)) {
	if e, ok := ev.(*netns.Event); ok && e.Kind == "created" {
		g.mu.Lock()
		g.created = append(g.created, e.NetNS)
		g.mu.Unlock()
	}
	g.Processor.Process(ev, emit)
}
