package setns

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	gen "github.com/ghostwatch/ghostwatch/gen/setns"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// Every event is either delivered or counted as lost: overflow the ring buffer while nothing
// reads it, then check that delivered + lost is what was caused, and that the loss is reported.
func TestDropsAreCountedNotSilent(t *testing.T) {
	testutil.RequirePrivileged(t)
	tr, err := New(gadget.Filter{PID: uint32(os.Getpid())}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()

	const calls = 12000 // about twice what the 1 MiB ring buffer holds
	if err := testutil.Storm(calls, ""); err != nil {
		t.Fatal(err)
	}
	byCause, err := tr.Lost()
	lost := byCause.Total()
	if err != nil {
		t.Fatal(err)
	}
	if lost == 0 {
		t.Fatal("nothing was lost: the ring buffer did not overflow, so this test proves nothing")
	}

	var delivered int
	var reported atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // deliver what is buffered, then stop
	if err := tr.Run(ctx, func(e gadget.Event) {
		if c, ok := e.(*Event); ok && c.Setns.Syscall == "unshare" {
			delivered++
		}
	}, func(total uint64) { reported.Store(total) }); err != nil {
		t.Fatal(err)
	}
	if uint64(delivered)+lost != calls {
		t.Errorf("delivered %d + lost %d != %d calls", delivered, lost, calls)
	}
	if reported.Load() != lost {
		t.Errorf("loss reported as %d, counted %d", reported.Load(), lost)
	}
}

// A call the kernel's table of calls in flight has no room for is counted as table_full, not as a
// ring buffer's loss: the table is filled from here, then calls are made.
func TestFullCallTableIsCounted(t *testing.T) {
	testutil.RequirePrivileged(t)
	tr, err := New(gadget.Filter{PID: uint32(os.Getpid())}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	pending := tr.Set().Map(gen.SetnsMapPending)
	var none gen.SetnsEvent
	for i := range pending.MaxEntries() {
		if err := pending.Put(uint32(1<<30+i), &none); err != nil { // no thread has such an id
			t.Fatalf("filling the table, entry %d: %v", i, err)
		}
	}
	const calls = 10
	if err := testutil.Storm(calls, ""); err != nil {
		t.Fatal(err)
	}
	lost, err := tr.Lost()
	if err != nil {
		t.Fatal(err)
	}
	if lost[gadget.LostTableFull] != calls || lost.Total() != calls {
		t.Errorf("lost %v after %d calls with the table full: want table_full %[2]d, nothing else", lost, calls)
	}
}

// A process that entered namespaces is followed (its session) until its first exec or its exit, in
// a kernel table of bounded size: what the table has no room for is counted as forgotten, never
// pushed out unseen. More processes than the bound hold a session at once: nsenter entering its
// own pid namespace forks the command and waits for it, so the nsenter holds its session (no exec)
// until the test lets the commands end.
func TestFullSessionsAreCounted(t *testing.T) {
	testutil.RequirePrivileged(t)
	if os.Getenv("GHOSTWATCH_VMTEST") == "1" {
		t.Skip("8000 processes: on the host only (a full hash map refuses an entry alike on every kernel)")
	}
	spec, err := gen.LoadSetns()
	if err != nil {
		t.Fatal(err)
	}
	bound := int(spec.Maps[gen.SetnsMapSessions].MaxEntries)
	holders := bound + 64

	tr, err := New(gadget.Filter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	// Lost is read where the run tells of a change, on its reading goroutine (it is not safe
	// beside the run); the latest is passed on.
	lostNow := make(chan gadget.Lost, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- tr.Run(ctx, func(gadget.Event) {}, func(uint64) {
			l, err := tr.Lost()
			if err != nil {
				t.Error(err)
				return
			}
			select {
			case <-lostNow:
			default:
			}
			lostNow <- l
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	// Each holder's command says it runs, then reads fd 3 until the test closes its end.
	release, hold, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ready, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `i=0; while [ $i -lt $1 ]; do
		nsenter --pid=/proc/self/ns/pid sh -c 'echo; read x' <&3 & i=$((i+1)); done; wait`, "sh", strconv.Itoa(holders))
	cmd.ExtraFiles, cmd.Stdout, cmd.Stderr = []*os.File{release}, readyW, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	release.Close()
	readyW.Close()
	defer func() {
		hold.Close() // every command reads EOF and ends, then its nsenter
		if err := cmd.Wait(); err != nil {
			t.Errorf("holders: %v", err)
		}
	}()
	ready.SetReadDeadline(time.Now().Add(3 * time.Minute))
	if n, err := io.ReadFull(ready, make([]byte, holders)); err != nil {
		t.Fatalf("%d of %d holders running: %v", n, holders, err)
	}

	// Each holder entered before it forked its command: at least holders - bound were refused.
	// The processor counts them at its flush, every second.
	deadline := time.After(30 * time.Second)
	var lost gadget.Lost
	for lost[gadget.LostForgotten] < uint64(holders-bound) {
		select {
		case lost = <-lostNow:
		case <-deadline:
			t.Fatalf("%d processes held a session at once, table of %d: lost %v, want at least %d forgotten", holders, bound, lost.ByName(), holders-bound)
		}
	}
	t.Logf("%d processes held a session at once, table of %d: lost %v", holders, bound, lost)
}
