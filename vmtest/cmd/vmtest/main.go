// Command vmtest runs ghostwatch's privileged test suite inside VMs booted on Debian's kernels and
// prints a table of the results: `make vmtest`. KERNELS (default "5.10 6.1 6.12") chooses the
// kernel series; VMTEST_CACHE where they are unpacked; VMTEST_TIMEOUT bounds each guest.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/registry"
	"github.com/ghostwatch/ghostwatch/vmtest"
)

// packages are the test packages run in every guest.
var packages = []string{"./cmd/...", "./tracer/..."}

// expectAttach is the attach kind every hook of every registered gadget must get on a kernel
// series, as GHOSTWATCH_EXPECT_ATTACH ("gadget/hook=kind,..."): the tests fail on any other, so
// that a silent fallback is caught. Debian's kernels offer every attach point on amd64, so each
// hook must take its best candidate; override lists the exceptions.
func expectAttach(series string) (string, error) {
	best, err := registry.BestChoices()
	if err != nil {
		return "", err
	}
	for hook, kind := range override[series] {
		best[hook] = kind
	}
	parts := make([]string, 0, len(best))
	for hook, kind := range best {
		parts = append(parts, hook+"="+kind)
	}
	slices.Sort(parts)
	return strings.Join(parts, ","), nil
}

// override is, per kernel series, the hooks ("gadget/hook") that must not take their best
// candidate there, and the kind they must take instead ("none" for none).
var override = map[string]map[string]string{}

// lacks is, per kernel series, the features of tracer/kernel it lacks, whose fallbacks must be
// taken there: GHOSTWATCH_EXPECT_LACKS.
var lacks = map[string]string{
	"5.10": "task-btf,fetch-atomics,task-pt-regs,rdonly-cast",
	"6.1":  "rdonly-cast",
	"6.12": "",
}

type result struct {
	name                  string
	ok                    bool
	passed, failed, skips int
	took                  time.Duration
	note                  string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "vmtest:", err)
		os.Exit(1)
	}
}

func run() error {
	series := strings.Fields(strings.ReplaceAll(os.Getenv("KERNELS"), ",", " "))
	if len(series) == 0 {
		series = []string{"5.10", "6.1", "6.12"}
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
	initBin, runBin := filepath.Join(tools, "vminit"), filepath.Join(tools, "vmrun")
	if err := goBuild(initBin, "./vmtest/cmd/vminit"); err != nil {
		return err
	}
	if err := goBuild(runBin, "./vmtest/cmd/vmrun"); err != nil {
		return err
	}

	var kernels []vmtest.Kernel
	for _, s := range series {
		k, err := vmtest.FetchKernel(s, "amd64", cache)
		if err != nil {
			return err
		}
		fmt.Printf("vmtest: kernel %s: %s\n", s, k.Package)
		kernels = append(kernels, k)
	}

	env := []string{"VMTEST_INIT=" + initBin, "CGO_ENABLED=0", "GHOSTWATCH_REQUIRE_PRIVILEGED=1"}
	var results []result
	// The harness itself, on the first kernel: a failing guest fails, a silent one is killed.
	results = append(results, goTest("harness ("+kernels[0].Series+")",
		append(env, "VMTEST_KERNEL="+kernels[0].Image, "VMTEST_RUN="+runBin), "./vmtest"))
	for _, k := range kernels {
		kenv := append(env, "VMTEST_KERNEL="+k.Image)
		want, err := expectAttach(k.Series)
		if err != nil {
			return err
		}
		wantLacks, ok := lacks[k.Series]
		if !ok {
			return fmt.Errorf("no expected features for kernel %s: add it to lacks", k.Series)
		}
		kenv = append(kenv, "GHOSTWATCH_EXPECT_ATTACH="+want, "GHOSTWATCH_EXPECT_LACKS="+wantLacks)
		r := goTest(k.Release, kenv, append([]string{"-exec", runBin}, packages...)...)
		results = append(results, r)
	}

	fmt.Printf("\n%-28s %-6s %6s %6s %7s %8s\n", "KERNEL", "RESULT", "PASSED", "FAILED", "SKIPPED", "SECONDS")
	failed := false
	for _, r := range results {
		verdict := "ok"
		if !r.ok {
			verdict, failed = "FAIL", true
		}
		fmt.Printf("%-28s %-6s %6d %6d %7d %8.0f %s\n", r.name, verdict, r.passed, r.failed, r.skips, r.took.Seconds(), r.note)
	}
	if failed {
		return fmt.Errorf("tests failed")
	}
	return nil
}

func goBuild(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v: %s", pkg, err, b)
	}
	return nil
}

// goTest runs go test -json and counts the results, printing the tests' output as it comes.
func goTest(name string, env []string, args ...string) result {
	r := result{name: name}
	start := time.Now()
	cmd := exec.Command("go", append([]string{"test", "-json", "-count=1", "-p", "1", "-v"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		r.note = err.Error()
		return r
	}
	count(stdout, &r, os.Stdout, "["+name+"] ")
	err = cmd.Wait()
	r.took = time.Since(start)
	r.ok = err == nil && r.failed == 0 && r.passed > 0
	if err != nil {
		r.note = err.Error()
	}
	return r
}

// testEvent is a line of `go test -json`.
type testEvent struct {
	Action string
	Test   string
	Output string
}

func count(rd io.Reader, r *result, out io.Writer, prefix string) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var ev testEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			fmt.Fprintln(out, prefix+sc.Text())
			continue
		}
		switch ev.Action {
		case "output":
			if !strings.HasPrefix(ev.Output, "=== ") {
				fmt.Fprint(out, prefix+ev.Output)
			}
		case "pass", "fail", "skip":
			if ev.Test == "" {
				continue // a package's result
			}
			switch ev.Action {
			case "pass":
				r.passed++
			case "fail":
				r.failed++
			case "skip":
				r.skips++
			}
		}
	}
}
