package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// `ghostwatch trace setns -o json | head -1`: once the reader of the output is gone, the next
// write ends the trace, quietly and with exit status 0 (the reader had enough), and the summary
// on stderr counts the events decoded but not written, so that none passes for delivered.
func TestTraceOutputClosedEarly(t *testing.T) {
	testutil.RequirePrivileged(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	tr := startTracingTo(t, w, "Ctrl-C to stop", "trace", "setns", "-o", "json", "--comm", "unshare")
	w.Close()
	event := func() {
		if out, err := exec.Command("unshare", "--uts", "true").CombinedOutput(); err != nil {
			t.Fatalf("unshare: %v: %s", err, out)
		}
	}

	// head -1: one line read, then the pipe closed.
	first := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		first <- line
	}()
	event()
	select {
	case line := <-first:
		if !strings.Contains(line, `"type":"setns"`) {
			t.Fatalf("first line %q is no setns event", line)
		}
	case <-time.After(testutil.Wait):
		t.Fatalf("no event written within %v; stderr: %s", testutil.Wait, tr.stderr)
	}
	r.Close()

	// The next write finds the pipe closed: ghostwatch stops by itself, and prints its summary
	// (read before the process is waited for, which closes the pipe of its stderr).
	deadline := time.Now().Add(testutil.Wait)
	for !strings.Contains(tr.stderr.String(), "ghostwatch: setns: ") {
		if time.Now().After(deadline) {
			t.Fatalf("ghostwatch went on tracing into a closed pipe; stderr: %s", tr.stderr)
		}
		event()
	}
	if code := tr.wait(t); code != 0 {
		t.Errorf("exit status %d (%v), want 0; stderr: %s", code, tr.cmd.ProcessState, tr.stderr)
	}
	stderr := tr.stderr.String()
	var events, unwritten, lost uint64
	at := strings.Index(stderr, "ghostwatch: setns: ")
	if _, err := fmt.Sscanf(stderr[max(at, 0):], "ghostwatch: setns: %d events (%d not written: the output was closed), %d lost", &events, &unwritten, &lost); at < 0 || err != nil {
		t.Fatalf("no summary counting the events not written on stderr: %s", stderr)
	}
	if unwritten == 0 || unwritten >= events {
		t.Errorf("%d events, %d not written: want some written (the first) and some not", events, unwritten)
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if strings.Contains(line, "pipe") && !strings.Contains(line, "not written") {
			t.Errorf("stderr has an error for the closed output: %q", line)
		}
	}
}

// A report or a profile whose destination is a pipe (or /dev/stdout, /dev/full: not a regular
// file) is written into it, and the pipe is left a pipe: the written-then-renamed file used to
// replace it (`--report /dev/full` as root replaced the device with a file).
func TestOutputIntoAPipe(t *testing.T) {
	records := t.TempDir()
	writeHistory(t, records, historyEvents(time.Date(2026, 3, 1, 2, 10, 0, 0, time.UTC)))
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	os.WriteFile(a, []byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`), 0o644)
	os.WriteFile(b, []byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["close"],"action":"SCMP_ACT_ALLOW"}]}`), 0o644)
	for _, tc := range []struct {
		name string
		args func(pipe string) []string
		want string
	}{
		{"history --report", func(p string) []string { return []string{"history", "--data-dir", records, "--report", p} }, "<html"},
		{"seccomp merge -o", func(p string) []string { return []string{"seccomp", "merge", "-o", p, a, b} }, `"close"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pipe := filepath.Join(t.TempDir(), "pipe")
			if err := syscall.Mkfifo(pipe, 0o600); err != nil {
				t.Fatal(err)
			}
			read := make(chan string, 1)
			go func() { // opening blocks until ghostwatch opens the pipe to write
				data, _ := os.ReadFile(pipe)
				read <- string(data)
			}()
			var stdout, stderr bytes.Buffer
			if code := run(append([]string{"ghostwatch"}, tc.args(pipe)...), &stdout, &stderr); code != 0 {
				t.Errorf("exit status %d: %s", code, stderr.String())
			}
			if st, err := os.Lstat(pipe); err != nil || st.Mode().Type() != os.ModeNamedPipe {
				t.Fatalf("the pipe is now %v (%v), want a pipe still", st.Mode(), err)
			}
			select {
			case got := <-read:
				if !strings.Contains(got, tc.want) {
					t.Errorf("read from the pipe %.200q, want %q in it", got, tc.want)
				}
			case <-time.After(testutil.Wait):
				t.Fatalf("nothing was written into the pipe within %v", testutil.Wait)
			}
		})
	}
}

// Output to a full disk is an error, in one line, whatever the command: doctor's table and version
// used to exit 0 having written nothing. Run as nobody, so that doctor loads nothing.
func TestOutputToAFullDisk(t *testing.T) {
	for _, args := range [][]string{{"doctor", "-o", "table"}, {"doctor", "-o", "json"}, {"version"}, {"completion", "bash"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
			if err != nil {
				t.Skip(err)
			}
			defer full.Close()
			cmd := command(args...)
			if os.Geteuid() == 0 {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			}
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = full, &stderr
			cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Errorf("exit status %d, want 1; stderr: %s", code, stderr.String())
			}
			oneLineError(t, stderr.String(), "no space left on device")
		})
	}
}
