package containertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RunCgroup2 runs the container of bundle with the runtime rt (runc or crun) as on a host that is
// cgroup v2 only: in a mount namespace of its own where cgroup2 is mounted at /sys/fs/cgroup. Its
// cgroup is then /sys/fs/cgroup/unified/ID on this host, and its device rules are a BPF program
// attached there. Cleanup deletes the container.
func RunCgroup2(t testing.TB, rt, bundle, id string) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "log")
	if err := inCgroup2(log, rt, "run", "-d", "--bundle", bundle, id); err != nil {
		out, _ := os.ReadFile(log)
		t.Fatalf("%s run: %v: %s", rt, err, out)
	}
	t.Cleanup(func() {
		if err := inCgroup2(log, rt, "delete", "-f", id); err != nil {
			out, _ := os.ReadFile(log)
			t.Errorf("%s delete: %v: %s", rt, err, out)
		}
	})
}

// ExecCgroup2 runs args in a container started by RunCgroup2 and returns its output.
func ExecCgroup2(t testing.TB, rt, id string, args ...string) string {
	t.Helper()
	log := filepath.Join(t.TempDir(), "log")
	err := inCgroup2(log, rt, append([]string{"exec", id}, args...)...)
	out, _ := os.ReadFile(log)
	if err != nil {
		t.Fatalf("%s exec %v: %v: %s", rt, args, err, out)
	}
	return string(out)
}

// inCgroup2 runs the runtime in a mount namespace where /sys/fs/cgroup is cgroup2, its output
// (and a detached container's) to the file log. crun 1.8 gives up when it cannot raise
// RLIMIT_MEMLOCK to infinity before loading its device program (later versions go on without);
// without CAP_SYS_RESOURCE, as on this machine, the raise fails, so it is made to succeed without
// effect: the kernel charges BPF memory to the cgroup, not to that limit.
func inCgroup2(log, rt string, args ...string) error {
	out, err := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command("unshare", append([]string{"-m", "sh", "-c",
		`mount --make-rprivate / && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"`, "sh", rt}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	done := make(chan error)
	go func() {
		// The filter stays on this thread, which ends with the goroutine (it is not unlocked).
		runtime.LockOSThread()
		if err := ignoreMemlockRaise(); err != nil {
			done <- err
			return
		}
		done <- cmd.Run()
	}()
	return <-done
}

// ignoreMemlockRaise installs, on the calling thread and what it starts, a seccomp filter that
// makes prlimit64(_, RLIMIT_MEMLOCK, new, _) with a new limit return 0 without changing it.
func ignoreMemlockRaise() error {
	const (
		nr    = 0 // offsets in struct seccomp_data
		arch  = 4
		arg1  = 16 + 8*1
		arg2  = 16 + 8*2
		allow = unix.SECCOMP_RET_ALLOW
		fake  = unix.SECCOMP_RET_ERRNO // with errno 0: the call "succeeds"
	)
	ld := func(off uint32) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: off}
	}
	// jeq jumps over skip instructions when the accumulator equals k, else falls through.
	jeq := func(k uint32, skip uint8) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: k, Jt: skip}
	}
	ret := func(k uint32) unix.SockFilter { return unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: k} }
	filter := []unix.SockFilter{
		ld(arch), jeq(unix.AUDIT_ARCH_X86_64, 1), ret(allow),
		ld(nr), jeq(unix.SYS_PRLIMIT64, 1), ret(allow),
		ld(arg1), jeq(unix.RLIMIT_MEMLOCK, 1), ret(allow),
		// The new limit's pointer, low half then high half: not NULL, fake.
		ld(arg2), jeq(0, 1), ret(fake),
		ld(arg2 + 4), jeq(0, 1), ret(fake),
		ret(allow),
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	return unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0)
}
