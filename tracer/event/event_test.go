package event

import (
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestNSNames(t *testing.T) {
	for _, tc := range []struct {
		mask uint64
		want []string
	}{
		{0, nil},
		{unix.CLONE_NEWNET, []string{"net"}},
		{unix.CLONE_NEWNS | unix.CLONE_NEWTIME | unix.CLONE_FILES, []string{"mnt", "time"}},
		{unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP,
			[]string{"pid", "user", "uts", "ipc", "cgroup"}},
	} {
		if got := NSNames(tc.mask); !slices.Equal(got, tc.want) {
			t.Errorf("NSNames(%#x) = %v, want %v", tc.mask, got, tc.want)
		}
	}
}

func TestNSTypesCoverEveryIndex(t *testing.T) {
	seen := map[int]bool{}
	for _, ty := range NSTypes {
		seen[int(ty.Index)] = true
	}
	if len(seen) != len(NSTypes) || len(NSTypes) != 8 {
		t.Fatalf("namespace indexes are not one per type: %v", seen)
	}
}

func TestErrnoName(t *testing.T) {
	for ret, want := range map[int64]string{0: "", 42: "", -9: "EBADF", -1: "EPERM", -22: "EINVAL", -95: "EOPNOTSUPP", -4000: "errno 4000"} {
		if got := ErrnoName(ret); got != want {
			t.Errorf("ErrnoName(%d) = %q, want %q", ret, got, want)
		}
	}
}

func TestCString(t *testing.T) {
	b := []int8{'s', 'h', 0, 'x'}
	if got := CString(b); got != "sh" {
		t.Errorf("CString = %q", got)
	}
	full := []int8{'a', 'b'}
	if got := CString(full); got != "ab" {
		t.Errorf("CString without NUL = %q", got)
	}
}

func TestClockIsNearNow(t *testing.T) {
	c := NewClock()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(c.Wall(uint64(ts.Nano()))); d < -time.Second || d > time.Second {
		t.Fatalf("boot time converted %v away from now", d)
	}
}

// Names are the native ones of the architecture built for: arm64's openat is 56, x86-64's clone.
func TestSyscallName(t *testing.T) {
	for n, want := range map[int32]string{unix.SYS_BIND: "bind", unix.SYS_OPENAT: "openat", unix.SYS_MKNODAT: "mknodat",
		unix.SYS_READ: "read", -1: "-", 100000: "syscall_100000"} {
		if got := SyscallName(n); got != want {
			t.Errorf("syscall %d: %q, want %q", n, got, want)
		}
	}
}

// A string seen before is returned without allocating; CString stops at the NUL.
func TestStringsInterns(t *testing.T) {
	path := make([]int8, 64)
	for i, c := range "/dev/kvm" {
		path[i] = int8(c)
	}
	var s Strings
	if got := s.Get(path); got != "/dev/kvm" {
		t.Fatalf("Get = %q", got)
	}
	if allocs := testing.AllocsPerRun(100, func() { s.Get(path) }); allocs != 0 {
		t.Errorf("Get of a string seen before: %.1f allocations", allocs)
	}
	if got := CString(path); got != "/dev/kvm" {
		t.Errorf("CString = %q", got)
	}
	if got := CString(path[:0]); got != "" {
		t.Errorf("CString of nothing = %q", got)
	}
}
