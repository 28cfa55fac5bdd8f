package main

import (
	"context"
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
