// Command vmtest runs ghostwatch's privileged test suite inside VMs booted on Debian's kernels and
// prints a table of the results: `make vmtest`. KERNELS ("5.10 6.1 6.12") and ARCH ("amd64 arm64")
// select rows of the matrix (vmtest.Matrix), by default all but the pending ones; VMTEST_CACHE
// says where kernels are unpacked; VMTEST_TIMEOUT bounds each guest. VMTEST_PACKAGES ("./tracer/cni")
// and VMTEST_TESTS (go test's -run) narrow what runs on each row, to go over one failure again.
//
// Rows run side by side, VMTEST_JOBS at once (default: the host's CPUs): a guest is one host thread
// (single-threaded TCG), so one row at a time would leave every other core idle. With more than one
// at once, each row's output goes to a file of its own and is printed whole when the row ends (its
// path is printed at its start, to follow it); with one, it streams as it comes. An interrupt
// (SIGINT, SIGTERM) stops every row's go test, its vmrun and guests, and their files go.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/registry"
	"github.com/ghostwatch/ghostwatch/vmtest"
)

// packages are the test packages run in every guest.
var packages = []string{"./cmd/...", "./tracer/..."}

// narrowed tells whether VMTEST_PACKAGES or VMTEST_TESTS narrow the run.
func narrowed() bool { return os.Getenv("VMTEST_PACKAGES") != "" || os.Getenv("VMTEST_TESTS") != "" }

// testArgs are go test's arguments on every row: the packages, or VMTEST_PACKAGES and VMTEST_TESTS.
func testArgs() []string {
	pkgs := packages
	if s := os.Getenv("VMTEST_PACKAGES"); s != "" {
		pkgs = strings.Fields(strings.ReplaceAll(s, ",", " "))
	}
	if run := os.Getenv("VMTEST_TESTS"); run != "" {
		return append([]string{"-run", run}, pkgs...)
	}
	return pkgs
}

// expectAttach is the attach kind every hook of every registered gadget must get on a row, as
// GHOSTWATCH_EXPECT_ATTACH ("gadget/hook=kind,..."): the tests fail on any other, so that a silent
// fallback is caught.
func expectAttach(r vmtest.Row) (string, error) {
	best, err := registry.BestChoices()
	if err != nil {
		return "", err
	}
	var parts []string
	for hook, kind := range r.Expect(best) {
		parts = append(parts, hook+"="+kind)
	}
	slices.Sort(parts)
	return strings.Join(parts, ","), nil
}

// rows returns the rows KERNELS and ARCH select; with neither, those not pending.
func rows() ([]vmtest.Row, error) {
	series := strings.Fields(strings.ReplaceAll(os.Getenv("KERNELS"), ",", " "))
	arches := strings.Fields(strings.ReplaceAll(os.Getenv("ARCH"), ",", " "))
	var out []vmtest.Row
	for _, r := range vmtest.Matrix {
		if len(series) == 0 && len(arches) == 0 {
			if why, pending := vmtest.Pending[r]; pending {
				fmt.Printf("vmtest: %s %s left out (%s): KERNELS=%s ARCH=%s runs it\n", r.Series, r.Arch, why, r.Series, r.Arch)
				continue
			}
		}
		if (len(series) == 0 || slices.Contains(series, r.Series)) && (len(arches) == 0 || slices.Contains(arches, r.Arch)) {
			out = append(out, r)
		}
	}
	for _, s := range series {
		if !slices.ContainsFunc(vmtest.Matrix, func(r vmtest.Row) bool { return r.Series == s }) {
			return nil, fmt.Errorf("KERNELS names %s: the matrix has %v", s, vmtest.Matrix)
		}
	}
	for _, a := range arches {
		if a != "amd64" && a != "arm64" {
			return nil, fmt.Errorf("ARCH names %s: want amd64 or arm64", a)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("KERNELS=%q ARCH=%q select no row of the matrix %v", os.Getenv("KERNELS"), os.Getenv("ARCH"), vmtest.Matrix)
	}
	return out, nil
}

type result struct {
	name, arch            string
	ok                    bool
	passed, failed, skips int
	took                  time.Duration
	note                  string
	// failures are the failed tests (a package's own failure, a timeout's panic, under the
	// package's name), each with the end of its output: printed again after the table, so that
	// a log's tail names what failed without the whole run's output.
	failures []failure
}

type failure struct {
	test   string
	output []string
}

// keptLines is how much of a failed test's output is printed again after the table.
const keptLines = 60

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	selected, err := rows()
	if err != nil {
		return err
	}
	jobs, err := parallelism()
	if err != nil {
		return err
	}
	cache := os.Getenv("VMTEST_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "ghostwatch-vmtest")
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	tools, err := os.MkdirTemp("", "vmtest-tools")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tools)
	runBin := filepath.Join(tools, "vmrun")
	if err := goBuild(runBin, "./vmtest/cmd/vmrun", ""); err != nil {
		return err
	}
	inits := map[string]string{} // the guest init, per architecture
	var arm64Root string
	for _, r := range selected {
		if inits[r.Arch] != "" {
			continue
		}
		inits[r.Arch] = filepath.Join(tools, "vminit-"+r.Arch)
		if err := goBuild(inits[r.Arch], "./vmtest/cmd/vminit", r.Arch); err != nil {
			return err
		}
		if r.Arch == "arm64" {
			if arm64Root, err = vmtest.Arm64Root(cache); err != nil {
				return err
			}
		}
	}

	var kernels []vmtest.Kernel
	for _, r := range selected {
		k, err := vmtest.FetchKernel(r.Series, r.Arch, cache)
		if err != nil {
			return err
		}
		fmt.Printf("vmtest: kernel %s %s: %s\n", r.Series, r.Arch, k.Package)
		kernels = append(kernels, k)
	}

	env := []string{"CGO_ENABLED=0", "GHOSTWATCH_REQUIRE_PRIVILEGED=1", "VMTEST_ROOT=" + arm64Root}
	var todo []testRun
	// The harness itself, on the first kernel: a failing guest fails, a silent one is killed. A
	// narrowed run leaves it out.
	if k0 := kernels[0]; !narrowed() {
		todo = append(todo, testRun{name: "harness (" + k0.Series + ")", arch: k0.Arch,
			env:  append(slices.Clip(env), "VMTEST_KERNEL="+k0.Image, "VMTEST_ARCH="+k0.Arch, "VMTEST_INIT="+inits[k0.Arch], "VMTEST_RUN="+runBin),
			args: []string{"./vmtest"}})
	}
	for _, k := range kernels {
		r := vmtest.Row{Series: k.Series, Arch: k.Arch}
		kenv := append(slices.Clip(env), "VMTEST_KERNEL="+k.Image, "VMTEST_ARCH="+k.Arch, "VMTEST_INIT="+inits[k.Arch], "GOARCH="+k.Arch)
		want, err := expectAttach(r)
		if err != nil {
			return err
		}
		wantLacks, ok := vmtest.Lacks[k.Series]
		if !ok {
			return fmt.Errorf("no expected features for kernel %s: add it to vmtest.Lacks", k.Series)
		}
		kenv = append(kenv, "GHOSTWATCH_EXPECT_ATTACH="+want, "GHOSTWATCH_EXPECT_LACKS="+wantLacks)
		todo = append(todo, testRun{name: k.Release, arch: k.Arch, env: kenv, args: append([]string{"-exec", runBin}, testArgs()...)})
	}
	results, err := runAll(ctx, todo, jobs)
	if err != nil {
		return err
	}

	fmt.Printf("\n%-28s %-5s %-6s %6s %6s %7s %8s\n", "KERNEL", "ARCH", "RESULT", "PASSED", "FAILED", "SKIPPED", "SECONDS")
	failed := false
	for _, r := range results {
		verdict := "ok"
		if !r.ok {
			verdict, failed = "FAIL", true
		}
		fmt.Printf("%-28s %-5s %-6s %6d %6d %7d %8.0f %s\n", r.name, r.arch, verdict, r.passed, r.failed, r.skips, r.took.Seconds(), r.note)
	}
	for _, r := range results {
		for _, f := range r.failures {
			fmt.Printf("\nvmtest: %s %s: FAIL %s, the end of its output:\n", r.name, r.arch, f.test)
			for _, l := range f.output {
				fmt.Print("    " + l)
			}
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted")
	}
	if failed {
		return fmt.Errorf("tests failed")
	}
	return nil
}

// parallelism is how many rows run at once: VMTEST_JOBS, by default the host's CPUs.
func parallelism() (int, error) {
	s := os.Getenv("VMTEST_JOBS")
	if s == "" {
		return runtime.NumCPU(), nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("VMTEST_JOBS=%q: want a number of rows to run at once, 1 or more", s)
	}
	return n, nil
}

// testRun is one go test run: a row of the matrix, or the harness's own tests.
type testRun struct {
	name, arch string
	env, args  []string
}

// runAll runs the test runs, jobs at once, arm64's first (TCG's arm64 guests are the slowest, so
// starting them first lets the short runs fill in beside them), and returns their results in the
// order given. With one at a time the output streams; otherwise each run's output goes to a file,
// printed whole when the run ends.
func runAll(ctx context.Context, runs []testRun, jobs int) ([]result, error) {
	logs := ""
	if jobs > 1 && len(runs) > 1 {
		var err error
		if logs, err = os.MkdirTemp("", "vmtest-logs"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(logs)
	}
	order := make([]int, len(runs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return boolInt(runs[b].arch == "arm64") - boolInt(runs[a].arch == "arm64") })
	results := make([]result, len(runs))
	var printing sync.Mutex // one run's output at a time on stdout
	slots := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	for _, i := range order {
		slots <- struct{}{}
		wg.Add(1)
		go func(i int, tr testRun) {
			defer func() { <-slots; wg.Done() }()
			if ctx.Err() != nil {
				results[i] = result{name: tr.name, arch: tr.arch, note: "not run: interrupted"}
				return
			}
			if logs == "" {
				results[i] = goTest(ctx, tr, os.Stdout)
				return
			}
			path := filepath.Join(logs, strings.NewReplacer(" ", "-", "(", "", ")", "").Replace(tr.name)+"-"+tr.arch+".log")
			f, err := os.Create(path)
			if err != nil {
				results[i] = result{name: tr.name, arch: tr.arch, note: err.Error()}
				return
			}
			defer f.Close()
			printing.Lock()
			fmt.Printf("vmtest: %s %s started, its output in %s\n", tr.name, tr.arch, path)
			printing.Unlock()
			results[i] = goTest(ctx, tr, f)
			printing.Lock()
			defer printing.Unlock()
			fmt.Printf("vmtest: %s %s ended after %.0f s; its output:\n", tr.name, tr.arch, results[i].took.Seconds())
			if _, err := f.Seek(0, io.SeekStart); err == nil {
				io.Copy(os.Stdout, f)
			}
		}(i, runs[i])
	}
	wg.Wait()
	return results, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// goBuild builds a static binary, for another architecture when goarch is set.
func goBuild(out, pkg, goarch string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if goarch != "" {
		cmd.Env = append(cmd.Env, "GOARCH="+goarch)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v: %s", pkg, err, b)
	}
	return nil
}

// goTest runs go test -json and counts the results, writing the tests' output to out as it comes.
// go test runs in a process group of its own, which an interrupt (ctx) signals as a whole: go test
// waits for its test process, vmrun stops its guest and removes its files. Whatever is left of
// the group after that is killed.
func goTest(ctx context.Context, tr testRun, out io.Writer) result {
	r := result{name: tr.name, arch: tr.arch}
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", append([]string{"test", "-json", "-count=1", "-p", "1", "-v"}, tr.args...)...)
	cmd.Env = append(os.Environ(), tr.env...)
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 10 * time.Second
	// Through an io.Pipe, not StdoutPipe: Wait then bounds the reading too (WaitDelay), should
	// anything the interrupt left behind still hold go test's stdout.
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	counted := make(chan struct{})
	go func() {
		count(pr, &r, out, "["+tr.name+"] ")
		io.Copy(io.Discard, pr) // past a line too long to scan, so that go test is not blocked
		close(counted)
	}()
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
		if ctx.Err() != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	pw.Close()
	<-counted
	r.took = time.Since(start)
	r.ok = err == nil && r.failed == 0 && r.passed > 0
	if err != nil {
		r.note = err.Error()
	}
	return r
}

// testEvent is a line of `go test -json`.
type testEvent struct {
	Action      string
	Package     string
	Test        string
	Output      string
	ImportPath  string // a build's, with build-output
	FailedBuild string // the ImportPath whose build failed a package
}

func count(rd io.Reader, r *result, out io.Writer, prefix string) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	// The end of each running top-level test's output (its subtests' included), and of each
	// package's own, keyed by package and test.
	running := map[[2]string][]string{}
	for sc.Scan() {
		var ev testEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			fmt.Fprintln(out, prefix+sc.Text())
			continue
		}
		top, _, sub := strings.Cut(ev.Test, "/")
		key := [2]string{ev.Package, top}
		if ev.FailedBuild != "" {
			key = [2]string{ev.FailedBuild}
		}
		switch ev.Action {
		case "build-output": // the compiler's errors, which go test -json does not repeat as output
			key = [2]string{ev.ImportPath}
			fallthrough
		case "output":
			if !strings.HasPrefix(ev.Output, "=== ") {
				fmt.Fprint(out, prefix+ev.Output)
				lines := append(running[key], ev.Output)
				running[key] = lines[max(0, len(lines)-keptLines):]
			}
		case "pass", "fail", "skip":
			if ev.Test == "" { // a package's result: its failure is news only when no test of it failed
				if ev.Action == "fail" && !slices.ContainsFunc(r.failures, func(f failure) bool { return strings.HasPrefix(f.test, ev.Package+" ") }) {
					r.failures = append(r.failures, failure{test: ev.Package, output: running[key]})
				}
				delete(running, key)
				continue
			}
			switch ev.Action {
			case "pass":
				r.passed++
			case "fail":
				r.failed++
			case "skip":
				r.skips++
			}
			if sub {
				continue // its output is kept with its top-level test's
			}
			if ev.Action == "fail" {
				r.failures = append(r.failures, failure{test: ev.Package + " " + ev.Test, output: running[key]})
			}
			delete(running, key)
		}
	}
}
