package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// The test binary is also the command: tests run it as a child with this variable set, the way
// a user runs ghostwatch, so signals, exit codes and cleanup are those of a real process.
func TestMain(m *testing.M) {
	if os.Getenv("GHOSTWATCH_TEST_AS_CLI") == "1" {
		os.Exit(run(os.Args, os.Stdout, os.Stderr))
	}
	dir, err := os.MkdirTemp("", "ghostwatch-test")
	if err == nil {
		binary = filepath.Join(dir, "ghostwatch")
		err = copyExecutable(os.Args[0], binary)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "preparing the command:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func copyExecutable(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		return err
	}
	return os.Chmod(filepath.Dir(to), 0o755)
}

// binary is a copy of the test binary that any user may run (go test's own is private to root).
var binary string

func command(args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Args[0] = "ghostwatch"
	cmd.Env = append(os.Environ(), "GHOSTWATCH_TEST_AS_CLI=1")
	return cmd
}

// oneLineError checks that stderr is a single "ghostwatch: ..." line containing want.
func oneLineError(t *testing.T, stderr, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "ghostwatch: ") || !strings.Contains(lines[0], want) {
		t.Errorf("stderr = %q, want one line with %q", stderr, want)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"trace", "setns", "-o", "xml"}, `unknown output format "xml"`},
		{[]string{"trace", "setns", "--duration", "soon"}, "invalid value"},
		{[]string{"trace", "setns", "--duration", "-3s"}, "--duration must not be negative"},
		{[]string{"trace", "netns", "--linger", "-5s"}, "--linger must not be negative, got -5s"},
		{[]string{"seccomp", "record", "--new", "-o", "dir", "-d", "-1s"}, "--duration must not be negative"},
		{[]string{"trace", "devices", "--pid", "1"}, "devices cannot filter by process or container"},
		{[]string{"trace", "devices", "--host"}, "devices cannot filter by process or container"},
		{[]string{"ps", "--containerd-socket", "/nonexistent/sock"}, "--containerd-socket /nonexistent/sock: no such file"},
		{[]string{"trace", "setns", "--pid", "x"}, "invalid value"},
		{[]string{"trace", "setns", "--pid", "99999999"}, "not a valid process id"},
		{[]string{"trace", "setns", "--comm", "a-name-longer-than-15"}, "longer than the kernel's 15"},
		{[]string{"trace", "setns", "--buffer-size", "3M"}, "--buffer-size 3M is not a power of two from 64K to 1G"},
		{[]string{"trace", "caps", "--buffer-size", "lots"}, `--buffer-size "lots" is not a size`},
		{[]string{"trace", "setns", "--no-such-flag"}, "flag provided but not defined"},
		{[]string{"trace", "setns", "extra"}, `unexpected argument "extra"`},
		{[]string{"trace", "bogus"}, `unknown gadget "bogus"`},
		{[]string{"trace"}, "name a gadget"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"doctor", "-o", "yaml"}, `unknown output format "yaml"`},
		{[]string{"seccomp"}, "name a seccomp command"},
		{[]string{"seccomp", "record"}, "say what to record"},
		{[]string{"seccomp", "record", "--new", "--pid", "1"}, "--new and --pid exclude each other"},
		{[]string{"seccomp", "record", "--host"}, "--host cannot be recorded"},
		{[]string{"seccomp", "record", "--new"}, "-o must name a directory"},
		{[]string{"seccomp", "record", "--container", "a b"}, "is not a container id"},
		{[]string{"seccomp", "merge", "one.json"}, "at least two profiles"},
		{[]string{"netns"}, "name a netns command: holders"},
		{[]string{"netns", "bogus"}, `unknown netns command "bogus"`},
		{[]string{"seccomp", "bogus"}, `unknown seccomp command "bogus"`},
		{[]string{"seccomp", "hook"}, "name a seccomp hook command: prestart, poststop"},
		{[]string{"seccomp", "hook", "bogus"}, `unknown seccomp hook command "bogus"`},
		{[]string{"netns", "holders", "--source", "bpf"}, `--source "bpf": want auto, iterators, proc`},
		{[]string{"netns", "holders", "--netns", "net:[4026531840]"}, `invalid value "net:[4026531840]" for flag -netns`},
		{[]string{"netns", "holders", "extra"}, `unexpected argument "extra"`},
		{[]string{"history", "--data-dir", ""}, "--data-dir must not be empty"},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
		{[]string{"seccomp", "hook", "prestart", "/profiles"}, `unexpected argument "/profiles"`},
		{[]string{"doctor", "extra"}, `unexpected argument "extra"`},
		{[]string{"ps", "extra"}, `unexpected argument "extra"`},
		{[]string{"history", "extra"}, `unexpected argument "extra"`},
		{[]string{"seccomp", "record", "--new", "extra"}, `unexpected argument "extra"`},
		{[]string{"agent", "extra"}, `unexpected argument "extra"`},
		{[]string{"help", "bogus"}, "No help topic for 'bogus'"},
		{[]string{"trace", "help", "bogus"}, "No help topic for 'bogus'"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"ghostwatch"}, tc.args...), &stdout, &stderr)
			if code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			oneLineError(t, stderr.String(), tc.want)
		})
	}
}

// A flag's usage that tells of another flag names one of its own command: the agent's gadget
// options said "--capset=false avoids that", a flag only trace has (the agent's is --caps-capset).
func TestFlagUsagesNameTheirCommandsFlags(t *testing.T) {
	mention := regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
	var check func(path string, cmds []*cli.Command)
	check = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			name := strings.TrimSpace(path + " " + c.Name)
			has := map[string]bool{}
			for _, f := range c.Flags {
				for _, n := range f.Names() {
					has[n] = true
				}
			}
			for _, f := range c.Flags {
				usage := f.(cli.DocGenerationFlag).GetUsage()
				for _, m := range mention.FindAllStringSubmatch(usage, -1) {
					if !has[m[1]] {
						t.Errorf("%s --%s: its usage names --%s, which %s has not: %q", name, f.Names()[0], m[1], name, usage)
					}
				}
			}
			check(name, c.Subcommands)
		}
	}
	check("", newApp(io.Discard, io.Discard).Commands)
}

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"ghostwatch", "version"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "ghostwatch ") {
		t.Errorf("version printed %q", stdout.String())
	}
}

// Without the capabilities, tracing stops at once with one line naming them, and so does a
// snapshot (`netns holders` used to fall back to /proc and list what an unprivileged user can see,
// with exit status 0), whatever its source.
func TestMissingPrivileges(t *testing.T) {
	for _, args := range [][]string{{"trace", "setns", "--duration", "1s"}, {"netns", "holders"}, {"netns", "holders", "--source", "proc"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) { failsUnprivileged(t, command(args...)) })
	}
	// The OCI hook, asked to record a container: it said "container init PID is gone" (it could
	// not read the init's namespaces), after a warning.
	t.Run("seccomp hook prestart", func(t *testing.T) {
		cmd := command("seccomp", "hook", "prestart")
		cmd.Stdin = strings.NewReader(fmt.Sprintf(`{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":%d,"annotations":{"io.containers.trace-syscall":"of:%s"}}`,
			os.Getpid(), filepath.Join(os.TempDir(), "ghostwatch-unprivileged-hook.json")))
		failsUnprivileged(t, cmd)
	})
}

// failsUnprivileged runs cmd as nobody (when root) and checks that it stops with exit status 1 and
// one line naming the capabilities.
func failsUnprivileged(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit status %d (%v), want 1; stderr: %s", code, err, stderr.String())
	}
	oneLineError(t, stderr.String(), "CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)")
}

// tracing is a running `ghostwatch trace ...` child.
type tracing struct {
	cmd        *exec.Cmd
	lines      chan string // stdout
	stderr     *syncBuffer
	stderrRead chan struct{} // closed once stderr is read to its end
}

// startTracing runs ghostwatch with args and returns once it reports that it is attached.
func startTracing(t *testing.T, args ...string) *tracing {
	t.Helper()
	return startTracingWith(t, "Ctrl-C to stop", args...)
}

// startTracingWith runs ghostwatch and returns once a line of its stderr contains ready.
func startTracingWith(t *testing.T, readyLine string, args ...string) *tracing {
	t.Helper()
	return startTracingTo(t, nil, readyLine, args...)
}

// startTracingTo starts ghostwatch with its stdout to out, or, if out is nil, into tr.lines.
func startTracingTo(t *testing.T, out *os.File, readyLine string, args ...string) *tracing {
	t.Helper()
	cmd := command(args...)
	tr := &tracing{cmd: cmd, lines: make(chan string, 1024), stderr: &syncBuffer{}, stderrRead: make(chan struct{})}
	if out != nil {
		cmd.Stdout = out
		close(tr.lines)
	} else {
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				tr.lines <- sc.Text()
			}
			close(tr.lines)
		}()
	}
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	ready := make(chan struct{})
	go func() {
		defer close(tr.stderrRead)
		sc := bufio.NewScanner(stderrPipe)
		for sc.Scan() {
			tr.stderr.WriteLine(sc.Text())
			if strings.Contains(sc.Text(), readyLine) {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(startWait):
		t.Fatalf("ghostwatch did not start within %v; stderr: %s", startWait, tr.stderr)
	}
	return tr
}

// startWait bounds loading: the agent verifies and attaches six objects, which took 26 s under
// the race detector on a 2-CPU machine with two CPU loops beside it (and over 30 s once, when
// TestAgentIncidents failed so with nothing on stderr), and a minute or more in vmtest's guests.
// Only a failure waits this long.
var startWait = max(2*time.Minute, 3*testutil.Wait)

// next returns the next stdout JSON object for which match is true.
func (tr *tracing) next(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	timer := time.NewTimer(testutil.Wait)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-tr.lines:
			if !ok {
				t.Fatalf("output ended before %s; stderr: %s", what, tr.stderr)
			}
			var obj map[string]any
			if err := json.Unmarshal([]byte(line), &obj); err != nil {
				t.Fatalf("output line is not JSON: %q: %v", line, err)
			}
			if match(obj) {
				return obj
			}
		case <-timer.C:
			t.Fatalf("no %s within %v; stderr: %s", what, testutil.Wait, tr.stderr)
		}
	}
}

// wait waits for the process to end and returns its exit status, with all it wrote on stderr
// in tr.stderr: Wait closes the pipe, so it comes after the read that found the pipe's end (a
// summary written just before the exit was lost to a Wait that came first, if the reading
// goroutine had not run yet).
func (tr *tracing) wait(t *testing.T) int {
	t.Helper()
	done := make(chan struct{})
	go func() { <-tr.stderrRead; tr.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(testutil.Wait):
		t.Fatalf("ghostwatch did not exit within %v", testutil.Wait)
	}
	return tr.cmd.ProcessState.ExitCode()
}

// get walks a JSON object: get(obj, "setns", "targets", "net").
func get(obj map[string]any, path ...string) any {
	var v any = obj
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

// syncBuffer collects stderr lines from one goroutine for reading in another.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) WriteLine(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprintln(&b.buf, s)
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
