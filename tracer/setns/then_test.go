package setns

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// execerEnv makes the test binary a process that enters the network namespace at the path given
// (on its leader thread), then execs itself from the thread named by execerThreadEnv ("leader" or
// "other"), with execerEnv set to execerDone, which makes it exit 0.
const (
	execerEnv       = "GHOSTWATCH_SETNS_EXECER"
	execerThreadEnv = "GHOSTWATCH_SETNS_EXECER_THREAD"
	execerDone      = "done"
)

// execerArgv is the argv of the execer's exec, as a then event should tell it.
var execerArgv = []string{"setns-execer", "exec"}

func init() {
	if os.Getenv(execerEnv) != "" {
		runtime.LockOSThread() // main, and so TestMain, runs on the leader thread and stays there
	}
}

func TestMain(m *testing.M) {
	switch path := os.Getenv(execerEnv); path {
	case "":
		os.Exit(m.Run())
	case execerDone:
		os.Exit(0)
	default:
		os.Exit(execer(path, os.Getenv(execerThreadEnv) == "other"))
	}
}

func execer(path string, other bool) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "execer:", err)
		return 1
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fail(err)
	}
	os.Setenv(execerEnv, execerDone) // not appended: Go reads the first of duplicates
	env := os.Environ()
	run := func() error {
		if leader := unix.Gettid() == unix.Getpid(); leader == other {
			return fmt.Errorf("exec on thread %d of %d: not the thread asked for", unix.Gettid(), unix.Getpid())
		}
		return unix.Exec("/proc/self/exe", execerArgv, env)
	}
	if !other {
		return fail(run())
	}
	// The leader is locked to main's goroutine: another goroutine runs on another thread.
	errc := make(chan error)
	go func() {
		runtime.LockOSThread()
		errc <- run()
	}()
	return fail(<-errc)
}

// A process that entered a container's namespaces with setns and then execs is reported with a
// then event for that exec, whichever of its threads execs: an exec by a thread other than the
// leader returns as the leader.
func TestThenOfExec(t *testing.T) {
	testutil.RequirePrivileged(t)
	_, _, thens := startTracer(t, gadget.Filter{}, nil)
	holder := testutil.StartHolder(t, unix.CLONE_NEWNET)
	netns := fmt.Sprintf("/proc/%d/ns/net", holder.Pid)

	for _, thread := range []string{"leader", "other"} {
		t.Run("exec by the "+thread+" thread", func(t *testing.T) {
			cmd := exec.Command("/proc/self/exe")
			cmd.Env = append(os.Environ(), execerEnv+"="+netns, execerThreadEnv+"="+thread)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("execer: %v: %s", err, out)
			}
			pid := cmd.Process.Pid
			th := thens.Next(t, fmt.Sprintf("the then event of process %d", pid), func(e *Then) bool {
				return int(e.Proc.PID) == pid
			}, nil)
			d := th.Then
			if !d.Exec || d.Result != "ok" || d.File != "/proc/self/exe" || !slices.Equal(d.Argv, execerArgv) ||
				int(d.EnteredBy) != pid || int(th.Proc.TID) != pid {
				t.Errorf("then of process %d: tid %d, exec %v, result %s, file %q, argv %q, entered by %d; want its exec of /proc/self/exe %q, entered by and told by its pid",
					pid, th.Proc.TID, d.Exec, d.Result, d.File, d.Argv, d.EnteredBy, execerArgv)
			}
		})
	}
}
