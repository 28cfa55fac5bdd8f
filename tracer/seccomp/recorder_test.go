package seccomp

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/gadget/gadgettest"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

func names(nums []uint32) []string {
	var out []string
	for _, n := range nums {
		out = append(out, tables[0].names[n]) // the native table of the architecture built for
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
	h.Stop() // cat's read returns EOF and it exits; sh waits for it and exits

	s, err := rec.Stop(mnt)
	if err != nil {
		t.Fatal(err)
	}
	got := names(s.Native)
	// cat may have entered its read before the recording started: only what follows EOF is sure.
	for _, want := range []string{"exit_group", "wait4"} {
		if !slices.Contains(got, want) {
			t.Errorf("recorded %v: no %s", got, want)
		}
	}
	// The holder's only write is "ready", made before the recording started (its exec of cat
	// may come after, so execve proves nothing either way).
	if slices.Contains(got, "write") {
		t.Errorf("recorded %v: write happened before the recording started", got)
	}
	if _, ok, _ := rec.Read(mnt); ok {
		t.Error("a stopped recording is still in the kernel")
	}
}

// recordNew runs `unshare --mount PROGRAM` under a recorder in New mode and returns how the new
// namespace's recording began and what it recorded.
func recordNew(t *testing.T, program string) (Armed, Syscalls) {
	t.Helper()
	testutil.RequirePrivileged(t)
	rec, err := New(Options{New: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	self := container.ProcNS(uint32(unix.Getpid()))["mnt"]
	events := gadgettest.Collect(t, func(ctx context.Context, emit func(Armed)) error { return rec.Run(ctx, emit, nil) })
	cmd := exec.Command("unshare", "--mount", program) // unshare, then exec program in the new namespace
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("unshare --mount %s: %v: %s", program, err, out)
	}
	a := events.Next(t, "the new namespace armed", func(a Armed) bool { return int(a.Proc.PID) == cmd.Process.Pid }, nil)
	if a.MntNS == 0 || a.MntNS == self {
		t.Fatalf("armed %+v", a)
	}
	s, err := rec.Stop(a.MntNS)
	if err != nil {
		t.Fatal(err)
	}
	events.Stop(t)
	return a, s
}

// With New, a namespace made after start records by itself from its first exec, and says so.
func TestNewNamespacesRecordFromTheirExec(t *testing.T) {
	a, s := recordNew(t, "true")
	if a.Reason != ArmExec {
		t.Errorf("armed by %d, want by exec", a.Reason)
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

// i386Program is a static 32-bit x86 executable that calls getpid and exit through int 0x80:
// the compat table.
func i386Program() []byte {
	return testutil.Executable([]byte{
		0xb8, 20, 0, 0, 0, // mov eax, 20 (getpid)
		0xcd, 0x80, // int 0x80
		0xb8, 1, 0, 0, 0, // mov eax, 1 (exit)
		0x31, 0xdb, // xor ebx, ebx
		0xcd, 0x80, // int 0x80
	}, false)
}

// 32-bit syscalls are recorded in their own table, and named from the x86 table.
func TestCompatSyscalls(t *testing.T) {
	prog := filepath.Join(t.TempDir(), "i386")
	if err := os.WriteFile(prog, i386Program(), 0o755); err != nil {
		t.Fatal(err)
	}
	// arm64 kernels, and x86-64 kernels without IA-32 emulation (ia32_emulation=0), run no i386
	// program: there are no such syscalls to record there.
	if err := exec.Command(prog).Run(); errors.Is(err, unix.ENOEXEC) {
		t.Skipf("this kernel does not run i386 programs: %v", err)
	}
	_, s := recordNew(t, prog)
	if !slices.Equal(s.Compat, []uint32{1, 20}) {
		t.Errorf("compat table %v, want [1 20] (exit, getpid)", s.Compat)
	}
	if slices.Contains(s.Native, unix.SYS_GETPID) {
		t.Errorf("a 32-bit getpid went to the native table: %v", s.Native)
	}
	p := Build(s)
	if !slices.Contains(p.Syscalls[0].Names, "getpid") || !slices.Contains(p.Syscalls[0].Names, "exit") {
		t.Errorf("profile names %v", p.Syscalls[0].Names)
	}
}

// A process tree records its processes, those it starts after the recording began included, and
// nothing else of its mount namespace (here the host's).
func TestRecordProcessTree(t *testing.T) {
	testutil.RequirePrivileged(t)
	rec, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	dir := t.TempDir()
	tree := exec.Command("sh", "-c", "read x && mkdir "+filepath.Join(dir, "made"))
	stdin, err := tree.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.Start(); err != nil {
		t.Fatal(err)
	}
	root := uint32(tree.Process.Pid)
	if err := rec.StartTree(root); err != nil {
		t.Fatal(err)
	}
	// Another process of the same mount namespace, with a syscall nobody in the tree makes.
	if out, err := exec.Command("unshare", "--uts", "hostname", "gw-outsider").CombinedOutput(); err != nil {
		t.Fatalf("unshare --uts hostname: %v: %s", err, out)
	}
	stdin.Write([]byte("go\n"))
	if err := tree.Wait(); err != nil {
		t.Fatal(err)
	}
	s, err := rec.Stop(root)
	if err != nil {
		t.Fatal(err)
	}
	got := names(s.Native)
	if !slices.Contains(got, "mkdir") && !slices.Contains(got, "mkdirat") {
		t.Errorf("recorded %v: the tree's new child made a directory", got)
	}
	if !slices.Contains(got, "execve") {
		t.Errorf("recorded %v: no execve of the tree's new child", got)
	}
	if slices.Contains(got, "sethostname") || slices.Contains(got, "unshare") {
		t.Errorf("recorded %v: another process of the namespace was recorded", got)
	}
}

// A tree whose root cannot be made a member (the members table is full) is not recorded at all,
// and stopping it leaves the kernel's count of trees at zero: a count wrapped below zero would
// have every syscall of the node look its process up, with nothing recorded.
func TestStartTreeFailsWhole(t *testing.T) {
	testutil.RequirePrivileged(t)
	rec, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	// Fill the table with tgids above PID_MAX_LIMIT: no process is ever one of them.
	const notPid = 1 << 23
	members := rec.table.members
	for i := range members.MaxEntries() {
		if err := members.Put(notPid+i, uint32(notPid)); err != nil {
			t.Fatalf("filling the members table at %d: %v", i, err)
		}
	}
	h := testutil.StartHolder(t, 0)
	root := uint32(h.Pid)
	// And the root's slot, with a tgid that is no process's, so that the root must go to the table.
	slot := rec.table.memberSlot(root)
	atomic.StoreUint64(&slot.Member, uint64(notPid)<<32|uint64(notPid|root))
	trees := func() uint32 { return atomic.LoadUint32(rec.table.trees) }

	if err := rec.StartTree(root); err == nil {
		t.Fatal("StartTree succeeded with the members table full")
	}
	if _, ok, _ := rec.Read(root); ok || trees() != 0 || rec.Live() != 0 {
		t.Errorf("after a failed StartTree: recorded %v, %d trees, %d live; want nothing", ok, trees(), rec.Live())
	}
	if _, err := rec.Stop(root); err != nil {
		t.Fatal(err)
	}
	if trees() != 0 {
		t.Errorf("after Stop of a tree never begun the kernel counts %d trees, want 0", trees())
	}

	// With room (the holder is sh and its cat), the same tree records, once however often it is
	// started, and one Stop ends it.
	for i := range uint32(16) {
		if err := members.Delete(notPid + i); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := rec.StartTree(root); err != nil {
			t.Fatal(err)
		}
	}
	if trees() != 1 || rec.Live() != 1 {
		t.Errorf("a tree started twice: %d trees, %d live; want 1 and 1", trees(), rec.Live())
	}
	if _, err := rec.Stop(root); err != nil {
		t.Fatal(err)
	}
	if trees() != 0 || rec.Live() != 0 {
		t.Errorf("after Stop: %d trees, %d live; want 0 and 0", trees(), rec.Live())
	}
}

// cloneArgs is the kernel's struct clone_args up to set_tid_size (CLONE_ARGS_SIZE_VER1).
type cloneArgs struct {
	flags, pidfd, childTID, parentTID, exitSignal, stack, stackSize, tls, setTID, setTIDSize uint64
}

// spawnAs starts a process with the given pid (clone3's set_tid: the pid must be free) that calls
// getpriority and exits, and waits for it. It is a copy of this process that makes raw syscalls
// only, as a forked Go child does before its exec.
func spawnAs(t *testing.T, pid uint32) {
	t.Helper()
	tid := [1]uint64{uint64(pid)}
	args := cloneArgs{exitSignal: uint64(unix.SIGCHLD), setTID: uint64(uintptr(unsafe.Pointer(&tid[0]))), setTIDSize: 1}
	got, errno := cloneAndGetpriority(&args)
	runtime.KeepAlive(&tid)
	if errno != 0 {
		t.Fatalf("clone3 with pid %d: %v", pid, errno)
	}
	var ws unix.WaitStatus
	var err error = unix.EINTR
	for err == unix.EINTR {
		_, err = unix.Wait4(int(got), &ws, 0, nil)
	}
	if err != nil || ws.ExitStatus() != 0 {
		t.Fatalf("pid %d: wait4: %v, status %v", got, err, ws)
	}
	if uint32(got) != pid {
		t.Fatalf("clone3 made pid %d, asked for %d", got, pid)
	}
}

//go:norace
//go:nosplit
func cloneAndGetpriority(args *cloneArgs) (uintptr, syscall.Errno) {
	pid, _, err := syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(args)), unsafe.Sizeof(*args), 0)
	if err == 0 && pid == 0 { // the child
		syscall.RawSyscall(unix.SYS_GETPRIORITY, unix.PRIO_PROCESS, 0, 0)
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return pid, err
}

// A member's tgid is free once it exits: a process outside the tree that is given the same tgid
// later is not recorded (a slot or entry left behind at the exit would have it recorded).
func TestExitedMemberTgidReused(t *testing.T) {
	testutil.RequirePrivileged(t)
	rec, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	// The root starts a child once recorded, which prints its pid and exits; the root waits for
	// it (its pid is free again) and says so.
	tree := exec.Command("sh", "-c", `read x && sh -c 'echo $$' && echo reaped && read y`)
	stdin, err := tree.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := tree.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); tree.Wait() }()
	root := uint32(tree.Process.Pid)
	if err := rec.StartTree(root); err != nil {
		t.Fatal(err)
	}
	stdin.Write([]byte("go\n"))
	out := bufio.NewScanner(stdout)
	var child uint64
	if !out.Scan() {
		t.Fatal("the tree's child printed nothing")
	}
	if child, err = strconv.ParseUint(out.Text(), 10, 32); err != nil {
		t.Fatalf("the tree's child printed %q", out.Text())
	}
	if !out.Scan() || out.Text() != "reaped" {
		t.Fatalf("the root printed %q, want reaped", out.Text())
	}

	spawnAs(t, uint32(child)) // outside the tree: a child of this process

	s, err := rec.Stop(root)
	if err != nil {
		t.Fatal(err)
	}
	got := names(s.Native)
	if !slices.Contains(got, "execve") {
		t.Errorf("recorded %v: no execve of the tree's child", got)
	}
	if slices.Contains(got, "getpriority") {
		t.Errorf("recorded %v: getpriority, of a process outside the tree given the exited member's tgid %d", got, child)
	}
}
