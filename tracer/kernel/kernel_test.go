package kernel

import (
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

func TestReleaseAndBTF(t *testing.T) {
	if Release() == "unknown" || Release() == "" {
		t.Errorf("no kernel release")
	}
	if !HasBTF() {
		t.Errorf("%s missing: ghostwatch's kernels all have BTF", BTFPath)
	}
}

// Use mounts tracefs when it is missing and unmounts it after its last user; a mount made by
// someone else is left alone.
func TestUseMountsAndReleases(t *testing.T) {
	testutil.RequirePrivileged(t)
	mount := func() {
		if err := unix.Mount("tracefs", Tracefs.Path, "tracefs", 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	unmount := func() {
		if err := unix.Unmount(Tracefs.Path, 0); err != nil {
			t.Fatal(err)
		}
	}
	if Tracefs.Mounted() {
		unmount()
		t.Cleanup(mount)
	}

	first, err := Use(Tracefs)
	if err != nil {
		t.Fatal(err)
	}
	if !Tracefs.Mounted() {
		t.Fatal("Use did not mount tracefs")
	}
	second, err := Use(Tracefs)
	if err != nil {
		t.Fatal(err)
	}
	first()
	first() // a second release of the same use changes nothing
	if !Tracefs.Mounted() {
		t.Fatal("tracefs unmounted while still in use")
	}
	second()
	if Tracefs.Mounted() {
		t.Fatal("tracefs still mounted after its last user")
	}

	mount()
	release, err := Use(Tracefs)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if !Tracefs.Mounted() {
		t.Fatal("released a mount ghostwatch did not make")
	}
	unmount()
}

func TestCheckPrivilegesAsRoot(t *testing.T) {
	testutil.RequirePrivileged(t)
	if err := CheckPrivileges(); err != nil {
		t.Fatal(err)
	}
}

// Inside vmtest guests the init must have set up a node as the tests expect it: the bpf LSM
// active, the pseudo file systems and both cgroup hierarchies mounted.
func TestVMTestGuest(t *testing.T) {
	if os.Getenv("GHOSTWATCH_VMTEST") != "1" {
		t.Skip("checks the vmtest guest environment")
	}
	lsm, err := os.ReadFile("/sys/kernel/security/lsm")
	if err != nil || !slices.Contains(strings.Split(strings.TrimSpace(string(lsm)), ","), "bpf") {
		t.Errorf("bpf LSM not active: %q, %v", lsm, err)
	}
	for _, fs := range FileSystems {
		if !fs.Mounted() && fs != Tracefs { // tracefs comes and goes with TestUseMountsAndReleases
			t.Errorf("%s not mounted at %s", fs.Name, fs.Path)
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/devices/devices.allow"); err != nil {
		t.Errorf("cgroup v1 devices controller: %v", err)
	}
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.controllers"); err != nil {
		t.Errorf("cgroup2: %v", err)
	}
}
