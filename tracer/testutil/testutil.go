// Package testutil helps privileged tests: the skip-or-fail rule, running code on a thread of its
// own, and namespace holder processes.
package testutil

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RequirePrivileged skips the test when not root, unless GHOSTWATCH_REQUIRE_PRIVILEGED=1, which
// makes it fail instead (CI sets it, so a privileged test can never pass by skipping).
func RequirePrivileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("GHOSTWATCH_REQUIRE_PRIVILEGED") == "1" {
		t.Fatal("this test needs root and GHOSTWATCH_REQUIRE_PRIVILEGED=1 forbids skipping it")
	}
	t.Skip("needs root (set GHOSTWATCH_REQUIRE_PRIVILEGED=1 to make this a failure)")
}

// OnOwnThread runs f on a locked OS thread that is thrown away afterwards, so that namespace
// changes f makes to its thread never leak into other goroutines. It returns the thread id.
func OnOwnThread(f func() error) (tid int, err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the runtime ends the thread with the goroutine
		tid = unix.Gettid()
		err = f()
	}()
	<-done
	return tid, err
}

// Storm makes calls unshare(CLONE_NEWUTS) calls as fast as it can on a thread of its own, named
// comm if comm is not empty (the name is the thread's alone): a storm of namespace changes.
func Storm(calls int, comm string) error {
	_, err := OnOwnThread(func() error {
		if comm != "" {
			name, err := unix.BytePtrFromString(comm)
			if err != nil {
				return err
			}
			if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(name)), 0, 0, 0); err != nil {
				return err
			}
		}
		for range calls {
			if err := unix.Unshare(unix.CLONE_NEWUTS); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// Holder is a process that sits in namespaces of its own until stopped.
type Holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	Pid   int
}

// StartHolder starts a process that waits on its stdin, after unshare(flags) in the child.
func StartHolder(t testing.TB, unshareFlags uintptr) *Holder {
	t.Helper()
	return startHolder(t, &syscall.SysProcAttr{Unshareflags: unshareFlags})
}

// StartCloned starts the same in a child created by clone with cloneFlags (clone3 when CLONE_NEWTIME
// is among them: that is how Go's os/exec does it).
func StartCloned(t testing.TB, cloneFlags uintptr) *Holder {
	t.Helper()
	return startHolder(t, &syscall.SysProcAttr{Cloneflags: cloneFlags})
}

func startHolder(t testing.TB, attr *syscall.SysProcAttr) *Holder {
	// cat runs as a child of sh, so that a new pid namespace gets its init and
	// /proc/PID/ns/pid_for_children can be read once "ready" is written.
	cmd := exec.Command("sh", "-c", "(echo ready; exec cat); exit 0")
	cmd.SysProcAttr = attr
	h, line := StartProcess(t, cmd)
	if line != "ready" {
		t.Fatalf("namespace holder did not start: %q", line)
	}
	return h
}

// StartProcess starts cmd with pipes on its stdin and stdout, waits for the first line it writes
// and returns it (without its newline); cleanup closes its stdin and waits for it.
func StartProcess(t testing.TB, cmd *exec.Cmd) (*Holder, string) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", cmd.Args, err)
	}
	h := &Holder{cmd: cmd, stdin: stdin, Pid: cmd.Process.Pid}
	t.Cleanup(h.Stop)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("%v wrote %q: %v", cmd.Args, line, err)
	}
	return h, strings.TrimSuffix(line, "\n")
}

// Stop ends the holder and waits for it.
func (h *Holder) Stop() {
	if h.stdin != nil {
		h.stdin.Close()
		h.cmd.Wait()
		h.stdin = nil
	}
}

// NSInode returns the inode of /proc/PID/ns/NAME (NAME may be e.g. pid_for_children).
func NSInode(t testing.TB, pid int, name string) uint32 {
	t.Helper()
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, name))
	if err != nil {
		t.Fatal(err)
	}
	// "net:[4026531840]"
	_, rest, _ := strings.Cut(link, "[")
	n, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 32)
	if err != nil {
		t.Fatalf("parsing %s: %v", link, err)
	}
	return uint32(n)
}

// RequireTool returns the path of a program a test runs, such as a shell or a browser. It skips
// in vmtest guests, which carry only what the kernel tests need, and where the program is
// missing, unless GHOSTWATCH_REQUIRE_PRIVILEGED=1 (CI, whose set-up installs it), which makes
// that a failure.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if os.Getenv("GHOSTWATCH_VMTEST") == "1" {
		t.Skipf("%s is not in vmtest guests", name)
	}
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("GHOSTWATCH_REQUIRE_PRIVILEGED") == "1" {
		t.Fatalf("%s is missing (tools/setup.sh installs it) and GHOSTWATCH_REQUIRE_PRIVILEGED=1 forbids skipping", name)
	}
	t.Skipf("%s is missing: tools/setup.sh installs it", name)
	return ""
}
