package seccomp

import (
	"context"
	"os/exec"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/gen/syscalls"
	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

func names(nums []uint32) []string {
	var out []string
	for _, n := range nums {
		out = append(out, syscalls.Names["x86_64"][n])
	}
	return out
}

// A recording started from user space sees what the namespace does, and only from then on.
func TestRecordARunningNamespace(t *testing.T) {
	testutil.RequirePrivileged(t)
	rec, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	h := testutil.StartHolder(t, unix.CLONE_NEWNS) // sh and cat in a mount namespace of their own
	mnt := container.ProcNS(uint32(h.Pid))["mnt"]
	if err := rec.Start(mnt); err != nil {
		t.Fatal(err)
	}
	h.Stop() // cat reads EOF and exits, sh exits: read, exit_group, wait4...
	s, err := rec.Stop(mnt)
	if err != nil {
		t.Fatal(err)
	}
	got := names(s.Native)
	for _, want := range []string{"read", "exit_group", "wait4"} {
		if !slices.Contains(got, want) {
			t.Errorf("recorded %v: no %s", got, want)
		}
	}
	if slices.Contains(got, "execve") {
		t.Errorf("recorded %v: execve happened before the recording started", got)
	}
	if _, ok, _ := rec.Read(mnt); ok {
		t.Error("a stopped recording is still in the kernel")
	}
}

// With New, a namespace made after start records by itself from its first exec, and says so.
func TestNewNamespacesRecordFromTheirExec(t *testing.T) {
	testutil.RequirePrivileged(t)
	rec, err := New(Options{New: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	self := container.ProcNS(uint32(unix.Getpid()))["mnt"]
	if err := rec.Ignore(self); err != nil {
		t.Fatal(err)
	}
	events := testutil.Collect(t, func(ctx context.Context, emit func(Armed)) error { return rec.Run(ctx, emit, nil) })

	cmd := exec.Command("unshare", "--mount", "true") // unshare, then exec true in the new namespace
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("unshare: %v: %s", err, out)
	}
	a := events.Next(t, "the new namespace armed", func(a Armed) bool { return int(a.Proc.PID) == cmd.Process.Pid }, nil)
	if a.Reason != ArmExec || a.MntNS == 0 || a.MntNS == self {
		t.Fatalf("armed %+v", a)
	}
	s, err := rec.Stop(a.MntNS)
	if err != nil {
		t.Fatal(err)
	}
	got := names(s.Native)
	for _, want := range []string{"execve", "exit_group"} {
		if !slices.Contains(got, want) {
			t.Errorf("recorded %v: no %s", got, want)
		}
	}
	if slices.Contains(got, "unshare") {
		t.Errorf("recorded %v: unshare came before the exec", got)
	}
}
