// Package ociruntime runs OCI runtimes (runc, crun) and tells their versions.
package ociruntime

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// versionLine is the first line of `runc --version` ("runc version 1.1.5+ds1") and of
// `crun --version` ("crun version 1.8.1").
var versionLine = regexp.MustCompile(`^(\S+) version v?(\d+\.\d+\.\d+)`)

// Version runs a runtime binary (a path, or a name in PATH) with --version and returns its name
// and release as it reports them ("runc", "1.1.5"), distribution suffixes left out.
func Version(binary string) (name, version string, err error) {
	out, err := exec.Command(binary, "--version").Output()
	if err != nil {
		return "", "", fmt.Errorf("%s --version: %w", binary, err)
	}
	m := versionLine.FindSubmatch(out)
	if m == nil {
		return "", "", fmt.Errorf("%s --version: no version in %q", binary, firstLine(out))
	}
	return string(m[1]), string(m[2]), nil
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i]
	}
	return b
}

// RunCgroup2 runs a runtime command as on a host that is cgroup v2 only (as Kubernetes nodes are
// now): in a mount namespace of its own where cgroup2 is mounted at /sys/fs/cgroup, which crun
// needs on a host with both hierarchies, as this one. It returns the command's output, read from
// a file: a detached container keeps a pipe open after the runtime exits. crun 1.8 gives up when
// it cannot raise RLIMIT_MEMLOCK to infinity before loading its device program (later versions go
// on without); without CAP_SYS_RESOURCE the raise fails, so it is made to succeed without effect
// (InCgroup2Thread): the kernel charges BPF memory to the cgroup, not to that limit.
func RunCgroup2(rt string, args ...string) ([]byte, error) {
	log, err := os.CreateTemp("", "gw-runtime-*.log")
	if err != nil {
		return nil, err
	}
	defer os.Remove(log.Name())
	defer log.Close()
	cmd := Cgroup2Command(rt, args...)
	cmd.Stdout, cmd.Stderr = log, log
	err = InCgroup2Thread(cmd.Run)
	out, _ := os.ReadFile(log.Name())
	return out, err
}

// Cgroup2Command is the command that runs name with args in a mount namespace of its own where
// cgroup2 is mounted at /sys/fs/cgroup; start it with InCgroup2Thread.
func Cgroup2Command(name string, args ...string) *exec.Cmd {
	return exec.Command("unshare", append([]string{"-m", "sh", "-c",
		`mount --make-rprivate / && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"`, "sh", name}, args...)...)
}

// InCgroup2Thread calls run on a thread that RLIMIT_MEMLOCK raises are made no-ops on, and what it
// starts (see RunCgroup2).
func InCgroup2Thread(run func() error) error {
	done := make(chan error)
	go func() {
		// The filter stays on this thread, which ends with the goroutine (it is not unlocked).
		runtime.LockOSThread()
		if err := ignoreMemlockRaise(); err != nil {
			done <- err
			return
		}
		done <- run()
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
