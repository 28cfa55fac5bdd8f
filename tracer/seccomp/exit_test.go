package seccomp

import (
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// A signal that interrupts the wait for a container's exit (poll returns EINTR) is not its exit:
// the wait goes on, and ends when it is told to stop, with the process still alive.
func TestWaitExitOutlivesASignal(t *testing.T) {
	h := testutil.StartHolder(t, 0)
	var stop [2]int
	if err := unix.Pipe2(stop[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(stop[0])
	type result struct {
		exited bool
		err    error
	}
	tids, done := make(chan int, 1), make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread the signal is sent to ends with it
		tids <- unix.Gettid()
		exited, err := waitExit(uint32(h.Pid), stop[0])
		done <- result{exited, err}
	}()
	tid := <-tids
	waitInPoll(t, tid)

	// Caught, so that it interrupts the poll rather than ending the test.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGUSR1)
	defer signal.Stop(sigs)
	if err := unix.Tgkill(unix.Getpid(), tid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	<-sigs // handled on the waiting thread: its poll has returned EINTR
	unix.Close(stop[1])
	r := <-done
	if r.err != nil || r.exited {
		t.Errorf("waitExit = %v, %v after a signal and a stop, with the process alive; want false, nil", r.exited, r.err)
	}

	// And the process's exit ends the wait as such.
	if err := unix.Pipe2(stop[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(stop[0])
	defer unix.Close(stop[1])
	go func() {
		exited, err := waitExit(uint32(h.Pid), stop[0])
		done <- result{exited, err}
	}()
	h.Stop()
	if r := <-done; r.err != nil || !r.exited {
		t.Errorf("waitExit = %v, %v after the process exited; want true, nil", r.exited, r.err)
	}
}

// waitInPoll waits until thread tid of this process blocks in poll (or ppoll, as arm64 has it).
func waitInPoll(t *testing.T, tid int) {
	t.Helper()
	want := map[string]bool{strconv.Itoa(unix.SYS_PPOLL): true}
	if runtime.GOARCH == "amd64" {
		want["7"] = true // SYS_POLL, which arm64 lacks
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/syscall")
		if err != nil {
			t.Fatal(err)
		}
		if nr, _, _ := strings.Cut(string(data), " "); want[nr] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d is not in poll: /proc says %q", tid, data)
		}
		time.Sleep(time.Millisecond) // a thread's state has nothing to block on
	}
}
