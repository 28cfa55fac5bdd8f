package devices_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/devices"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/gadget/gadgettest"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

func open(t *testing.T) *gadgettest.Collector[gadget.Event] { return openWith(t, nil) }

// openWith opens the gadget, its events attributed with r.
func openWith(t *testing.T, r event.Resolver) *gadgettest.Collector[gadget.Event] {
	t.Helper()
	testutil.RequirePrivileged(t)
	g, err := gadget.Open(&devices.Gadget, gadget.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return gadgettest.Collect(t, func(ctx context.Context, emit func(gadget.Event)) error {
		return g.Run(ctx, r, emit, nil, nil)
	})
}

const devicesRoot = "/sys/fs/cgroup/devices"

// cgroup makes a v1 device cgroup of the test's own, removed at cleanup.
func cgroup(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(devicesRoot, "devices.allow")); err != nil {
		t.Fatalf("no v1 devices hierarchy at %s: %v", devicesRoot, err)
	}
	dir := filepath.Join(devicesRoot, fmt.Sprintf("gw-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-")))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}

// write writes a rule as runc does, one write per rule, and returns the error the kernel gave.
func write(t *testing.T, dir, file, rule string) error {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = f.WriteString(rule)
	return err
}

// inCgroup runs f on a thread of its own moved into the cgroup (v1 moves threads one by one).
func inCgroup(t *testing.T, dir string, f func() error) {
	t.Helper()
	if _, err := testutil.OnOwnThread(func() error {
		tid := []byte(strconv.Itoa(unix.Gettid()))
		if err := os.WriteFile(filepath.Join(dir, "tasks"), tid, 0); err != nil {
			return err
		}
		err := f()
		// Back to the root, so that the cgroup can be removed before the thread is gone.
		return errors.Join(err, os.WriteFile(filepath.Join(devicesRoot, "tasks"), tid, 0))
	}); err != nil {
		t.Fatal(err)
	}
}

// openDevice opens a device node n times and fails unless each open fails with EPERM.
func openDenied(path string, n int) error {
	for i := 0; i < n; i++ {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
			return fmt.Errorf("open %s: allowed, want EPERM", path)
		}
		if !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("open %s: %v, want EPERM", path, err)
		}
	}
	return nil
}

func isKind[E gadget.Event](cgroupPath string) func(gadget.Event) bool {
	return func(ev gadget.Event) bool {
		switch e := ev.(type) {
		case *devices.RuleWrite:
			_, ok := any(e).(E)
			return ok && strings.HasSuffix(cgroupPath, e.Cgroup.Path)
		case *devices.Window:
			_, ok := any(e).(E)
			return ok && strings.HasSuffix(cgroupPath, e.Cgroup.Path)
		}
		_, ok := ev.(E)
		return ok
	}
}

// The story on a cgroup of the test's own: rules set as runc sets them, then rewritten as
// "deny all, then allow each again", with opens of an allowed device in between. Every rule write
// is reported with the kernel's lists, every refused open is joined to the "a" write, and the
// window closes when the last allowed rule is back.
func TestDenyAllWindow(t *testing.T) {
	events := open(t)
	dir := cgroup(t)
	allowed := []string{"c 1:3 rwm", "c 1:5 rwm", "c 1:9 rwm"}
	for _, rule := range append([]string{"a"}, allowed...) {
		file := "devices.allow"
		if rule == "a" {
			file = "devices.deny"
		}
		if err := write(t, dir, file, rule); err != nil {
			t.Fatalf("%s %q: %v", file, rule, err)
		}
	}
	// The set-up: an "a" deny on an allow-all cgroup, then the allows.
	first := events.Next(t, "the set-up's deny write", isKind[*devices.RuleWrite](dir), nil).(*devices.RuleWrite)
	if first.File != "devices.deny" || first.Written != "a" || first.Result != "ok" || first.Proc.PID != uint32(os.Getpid()) ||
		!first.Before.DefaultAllow || first.After.DefaultAllow || len(first.After.Exceptions) != 0 {
		t.Fatalf("set-up deny: %+v", first)
	}
	for range allowed {
		events.Next(t, "an allow", isKind[*devices.RuleWrite](dir), nil)
	}
	// The window: deny all, three refused opens of /dev/null (c 1:3), the rules back.
	if err := write(t, dir, "devices.deny", "a"); err != nil {
		t.Fatal(err)
	}
	inCgroup(t, dir, func() error { return openDenied("/dev/null", 3) })
	for _, rule := range allowed {
		if err := write(t, dir, "devices.allow", rule); err != nil {
			t.Fatal(err)
		}
	}
	deny := events.Next(t, "the window's deny write", isKind[*devices.RuleWrite](dir), nil).(*devices.RuleWrite)
	if got := fmt.Sprint(deny.Removed); got != "[c 1:3 rwm c 1:5 rwm c 1:9 rwm]" {
		t.Errorf("removed %s", got)
	}
	for i := 0; i < 3; i++ {
		d := events.Next(t, "a denied open", isKind[*devices.Denied](""), nil).(*devices.Denied)
		if d.Path != "/dev/null" || d.Device() != "c 1:3" || d.Access != devices.AccRead || d.Syscall != "openat" {
			t.Errorf("denied %+v", d)
		}
		if c := d.Cause; c == nil || c.Kind != "rule" || c.PID != uint32(os.Getpid()) || !c.Time.Equal(deny.Time) ||
			c.Attrs[0].Value != "devices.deny" || c.Attrs[1].Value != "a" {
			t.Errorf("denied open's cause %+v, want the \"a\" write at %v", d.Cause, deny.Time)
		}
	}
	w := events.Next(t, "the window", isKind[*devices.Window](dir), nil).(*devices.Window)
	if !w.DenyAll || w.Denied != 3 || fmt.Sprint(w.Paths) != "[/dev/null]" || !w.Opened.Equal(deny.Time) ||
		w.ClosedBy == nil || w.ClosedBy.Rule != "c 1:9 rwm" || w.StillOpen || w.Closed.Before(w.Opened) {
		t.Errorf("window %+v", w)
	}
}

// Refused accesses the rules never allowed are the policy's; a rejected write is an event too.
func TestPolicyAndRejectedWrite(t *testing.T) {
	events := open(t)
	dir := cgroup(t)
	for _, r := range []struct{ file, rule string }{{"devices.deny", "a"}, {"devices.allow", "c 1:3 rwm"}} {
		if err := write(t, dir, r.file, r.rule); err != nil {
			t.Fatal(err)
		}
	}
	if err := write(t, dir, "devices.allow", "x 1:3 r"); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("writing a bad rule: %v, want EINVAL", err)
	}
	mknod := filepath.Join(t.TempDir(), "zero")
	inCgroup(t, dir, func() error {
		if err := openDenied("/dev/zero", 1); err != nil {
			return err
		}
		if err := unix.Mknod(mknod, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 5))); !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("mknod c 1:5: %v, want EPERM", err)
		}
		return nil
	})
	for i := 0; i < 2; i++ {
		events.Next(t, "the set-up", isKind[*devices.RuleWrite](dir), nil)
	}
	bad := events.Next(t, "the rejected write", isKind[*devices.RuleWrite](dir), nil).(*devices.RuleWrite)
	if bad.Result != "EINVAL" || bad.RuleError == "" || bad.Written != "x 1:3 r" || len(bad.Removed) != 0 {
		t.Errorf("rejected write %+v", bad)
	}
	for _, want := range []struct{ path, syscall string }{{"/dev/zero", "openat"}, {mknod, "mknodat"}} {
		d := events.Next(t, "denied "+want.path, isKind[*devices.Denied](""), nil).(*devices.Denied)
		if d.Path != want.path || d.Device() != "c 1:5" || d.Syscall != want.syscall {
			t.Errorf("denied %+v, want %s in %s", d, want.path, want.syscall)
		}
		if c := d.Cause; c == nil || c.Kind != "policy" {
			t.Errorf("%s: cause %+v, want the policy", want.path, d.Cause)
		}
	}
}

// EPERM that is not the device cgroup's is not reported: mknod without CAP_MKNOD, and an open
// of a file (not a device node) refused with EPERM (O_NOATIME by a non-owner).
func TestOtherEPERMIsNotReported(t *testing.T) {
	events := open(t)
	dir := cgroup(t)
	// In /tmp itself, which uid 1000 may enter and create in.
	f, err := os.CreateTemp("", "gw-noatime-")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	file := f.Name()
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	node := file + ".null"
	t.Cleanup(func() { os.Remove(file); os.Remove(node) })
	if _, err := testutil.OnOwnThread(func() error {
		// A thread with no capabilities and uid 1000: neither CAP_MKNOD nor CAP_FOWNER.
		// The raw syscall: unix.Setresuid changes every thread of the process.
		if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, 1000, 1000, 1000); errno != 0 {
			return errno
		}
		if err := unix.Mknod(node, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("mknod without CAP_MKNOD: %v, want EPERM", err)
		}
		if _, err := unix.Open(file, unix.O_RDONLY|unix.O_NOATIME, 0); !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("O_NOATIME open by a non-owner: %v, want EPERM", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Then one the device cgroup refuses: it must be the first denial to arrive.
	if err := write(t, dir, "devices.deny", "a"); err != nil {
		t.Fatal(err)
	}
	inCgroup(t, dir, func() error { return openDenied("/dev/null", 1) })
	d := events.Next(t, "a denial", isKind[*devices.Denied](""), nil).(*devices.Denied)
	if d.Path != "/dev/null" {
		t.Errorf("first denial reported: %+v, want the open of /dev/null", d)
	}
}
