package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeGo puts a `go` first in PATH that, as `go test -json`, runs the shell script body.
func fakeGo(t *testing.T, body string) string {
	dir := t.TempDir()
	script := "#!/bin/sh\nd=" + dir + "\n" + body
	if err := os.WriteFile(filepath.Join(dir, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return dir
}

// Runs go side by side, VMTEST_JOBS at once: with two slots both are running together (each waits
// up to 20 s for the other), with one never; each result is its own run's, in the order given.
func TestRunAllRunsJobsAtOnce(t *testing.T) {
	dir := fakeGo(t, `touch $d/$$.running
i=0
while [ $(ls $d | grep -c running) -lt $WANT ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
n=$(ls $d | grep -c running)
sleep 0.2
rm $d/$$.running
echo "{\"Action\":\"output\",\"Output\":\"$NAME saw $n\\n\"}"
if [ $n -eq $WANT ]; then echo "{\"Action\":\"pass\",\"Test\":\"Test$NAME\"}"; else echo "{\"Action\":\"fail\",\"Test\":\"Test$NAME\"}"; fi
`)
	for _, jobs := range []int{1, 2} {
		want := "WANT=" + strconv.Itoa(jobs)
		runs := []testRun{{name: "a", arch: "amd64", env: []string{"NAME=a", want}}, {name: "b", arch: "arm64", env: []string{"NAME=b", want}}}
		results, err := runAll(context.Background(), runs, jobs)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range results {
			if r.name != runs[i].name || !r.ok || r.passed != 1 {
				t.Errorf("%d at once: result %d is %+v, want %s's, passed", jobs, i, r, runs[i].name)
			}
		}
		if left, _ := filepath.Glob(filepath.Join(dir, "*.running")); len(left) > 0 {
			t.Errorf("%d at once: runs left running: %v", jobs, left)
		}
	}
}

// An interrupt stops go test's whole process group, the test process it started included, within
// WaitDelay (then it is killed).
func TestInterruptStopsTheGroup(t *testing.T) {
	dir := fakeGo(t, `sh -c 'trap "" INT; exec sleep 300' & echo $! > $d/child
wait
`)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(filepath.Join(dir, "child")); err == nil {
				time.Sleep(100 * time.Millisecond) // the pid is written
				cancel()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	start := time.Now()
	r := goTest(ctx, testRun{name: "x", arch: "amd64"}, os.Stdout)
	if r.ok || time.Since(start) > time.Minute {
		t.Errorf("interrupted run: %+v after %v", r, time.Since(start))
	}
	b, err := os.ReadFile(filepath.Join(dir, "child"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	// The child ignores SIGINT: only the group's SIGKILL stops it. Once killed it is reaped by init,
	// which may take a moment.
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run's child %d outlived the interrupt", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A failed test is kept with the end of its output, its subtests' included; a package that fails
// with no failed test (a timeout's panic, a build's errors) is kept under its own name; passed
// tests are not kept.
func TestCountKeepsFailures(t *testing.T) {
	var lines []string
	ev := func(action, pkg, test, output string) {
		b, err := json.Marshal(testEvent{Action: action, Package: pkg, Test: test, Output: output})
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	ev("output", "p/a", "TestOK", "fine\n")
	ev("pass", "p/a", "TestOK", "")
	ev("output", "p/a", "TestBad", "=== RUN TestBad\n")
	for i := range keptLines + 5 {
		ev("output", "p/a", "TestBad/sub", fmt.Sprintf("line %d\n", i))
	}
	ev("fail", "p/a", "TestBad/sub", "")
	ev("fail", "p/a", "TestBad", "")
	ev("fail", "p/a", "", "")
	ev("output", "p/b", "TestHung", "waiting\n")
	ev("output", "p/b", "", "panic: test timed out after 10m0s\n")
	ev("fail", "p/b", "", "")
	lines = append(lines, `{"ImportPath":"p/c [p/c.test]","Action":"build-output","Output":"./x_test.go:3:28: undefined: f\n"}`,
		`{"ImportPath":"p/c [p/c.test]","Action":"build-fail"}`,
		`{"Action":"output","Package":"p/c","Output":"FAIL\tp/c [build failed]\n"}`,
		`{"Action":"fail","Package":"p/c","FailedBuild":"p/c [p/c.test]"}`)
	var r result
	var out strings.Builder
	count(strings.NewReader(strings.Join(lines, "\n")+"\n"), &r, &out, "[x] ")
	if r.passed != 1 || r.failed != 2 {
		t.Errorf("passed %d failed %d, want 1 and 2", r.passed, r.failed)
	}
	if len(r.failures) != 3 {
		t.Fatalf("failures %+v, want TestBad's, p/b's and p/c's", r.failures)
	}
	bad, pkg, build := r.failures[0], r.failures[1], r.failures[2]
	if bad.test != "p/a TestBad" || len(bad.output) != keptLines || bad.output[keptLines-1] != fmt.Sprintf("line %d\n", keptLines+4) {
		t.Errorf("TestBad kept as %q with %d lines ending %q", bad.test, len(bad.output), bad.output[len(bad.output)-1])
	}
	if pkg.test != "p/b" || len(pkg.output) != 1 || !strings.Contains(pkg.output[0], "timed out") {
		t.Errorf("p/b kept as %q: %q", pkg.test, pkg.output)
	}
	if build.test != "p/c" || len(build.output) != 1 || !strings.Contains(build.output[0], "undefined: f") {
		t.Errorf("p/c kept as %q: %q, want its compiler error", build.test, build.output)
	}
	if !strings.Contains(out.String(), "[x] line 3\n") || !strings.Contains(out.String(), "[x] ./x_test.go:3:28") {
		t.Errorf("output not streamed: %q", out.String())
	}
}
