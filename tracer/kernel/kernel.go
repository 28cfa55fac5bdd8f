// Package kernel answers what the running kernel offers ghostwatch: its release, BTF, the
// privileges of this process, and the pseudo file systems BPF tracing relies on (mounting the
// missing ones for as long as they are needed).
package kernel

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Release returns the running kernel's release, as uname -r prints it.
func Release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// BTFPath is where the kernel exposes its own type information, which CO-RE needs.
const BTFPath = "/sys/kernel/btf/vmlinux"

// HasBTF reports whether the kernel exposes BTF.
func HasBTF() bool {
	_, err := os.Stat(BTFPath)
	return err == nil
}

// HasKprobes tells whether the kernel has kprobes, by their perf event source.
func HasKprobes() bool {
	_, err := os.Stat("/sys/bus/event_source/devices/kprobe")
	return err == nil
}

// ErrPrivileges is returned when this process may not load and attach BPF tracing programs.
var ErrPrivileges = errors.New("ghostwatch needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) to load BPF programs: run it as root")

// CheckPrivileges tells whether this process holds the capabilities BPF tracing needs.
func CheckPrivileges() error {
	eff, err := effectiveCaps()
	if err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	has := func(c uint) bool { return eff&(1<<c) != 0 }
	if has(unix.CAP_SYS_ADMIN) || (has(unix.CAP_BPF) && has(unix.CAP_PERFMON)) {
		return nil
	}
	return ErrPrivileges
}

func effectiveCaps() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, err
	}
	return uint64(data[0].Effective) | uint64(data[1].Effective)<<32, nil
}

// FS is a pseudo file system at its usual place.
type FS struct {
	Name  string
	Type  string
	Path  string
	Magic int64
	Why   string
}

// The pseudo file systems doctor reports on.
var (
	Tracefs     = FS{"tracefs", "tracefs", "/sys/kernel/tracing", unix.TRACEFS_MAGIC, "tracepoint ids"}
	Bpffs       = FS{"bpffs", "bpf", "/sys/fs/bpf", unix.BPF_FS_MAGIC, "pinning programs and maps"}
	Debugfs     = FS{"debugfs", "debugfs", "/sys/kernel/debug", unix.DEBUGFS_MAGIC, "legacy tracing path"}
	Securityfs  = FS{"securityfs", "securityfs", "/sys/kernel/security", unix.SECURITYFS_MAGIC, "active LSMs"}
	FileSystems = []FS{Tracefs, Bpffs, Debugfs, Securityfs}
)

// Mounted reports whether fs is mounted at its path.
func (fs FS) Mounted() bool {
	var st unix.Statfs_t
	return unix.Statfs(fs.Path, &st) == nil && st.Type == fs.Magic
}

var (
	mountMu   sync.Mutex
	mountRefs = map[string]int{} // users of a file system this process mounted
)

// Use makes sure fs is mounted, mounting it if needed; release unmounts it again once the last
// user of a mount made by this process is done. Release is safe to call more than once.
func Use(fs FS) (release func(), err error) {
	mountMu.Lock()
	defer mountMu.Unlock()
	if mountRefs[fs.Path] == 0 && fs.Mounted() {
		return func() {}, nil // someone else's mount: leave it alone
	}
	if mountRefs[fs.Path] == 0 {
		if err := os.MkdirAll(fs.Path, 0o755); err != nil {
			return nil, fmt.Errorf("%s is not mounted and %s cannot be created: %w", fs.Name, fs.Path, err)
		}
		if err := unix.Mount(fs.Type, fs.Path, fs.Type, 0, ""); err != nil {
			return nil, fmt.Errorf("%s is not mounted and mounting it on %s failed (mount -t %s %s %s): %w",
				fs.Name, fs.Path, fs.Type, fs.Type, fs.Path, err)
		}
	}
	mountRefs[fs.Path]++
	var once sync.Once
	return func() {
		once.Do(func() {
			mountMu.Lock()
			defer mountMu.Unlock()
			if mountRefs[fs.Path]--; mountRefs[fs.Path] == 0 {
				_ = unix.Unmount(fs.Path, unix.MNT_DETACH)
			}
		})
	}, nil
}
