package devices_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/devices"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

// runc and crun in cgroup v2 mode control devices with a BPF program attached to the container's
// cgroup. The attach is shown with the program's rules decoded from its instructions, and an open
// of a block device the container made with mknod (allowed: "b *:* m") but may not read is a
// denial whose cause is that program.
func TestCgroup2Program(t *testing.T) {
	for _, rt := range []string{"runc", "crun"} {
		t.Run(rt, func(t *testing.T) {
			containertest.SkipInVM(t)
			events := open(t)
			bundle := t.TempDir()
			if err := containertest.WriteRootfs(filepath.Join(bundle, "rootfs")); err != nil {
				t.Fatal(err)
			}
			containertest.RuncSpec(t, bundle, func(s *specs.Spec) {
				s.Root.Readonly = false
				s.Process.Args = []string{"sh", "-c", "mknod /blk b 8 0 && head -c1 /blk 2>/tmp/err; touch /tmp/done; exec sleep 1000"}
				c := s.Process.Capabilities
				c.Bounding, c.Effective, c.Permitted = append(c.Bounding, "CAP_MKNOD"), append(c.Effective, "CAP_MKNOD"), append(c.Permitted, "CAP_MKNOD")
			})
			id := fmt.Sprintf("gw-test-%s-%d", rt, os.Getpid())
			containertest.RunCgroup2(t, rt, bundle, id)

			attach := events.Next(t, rt+"'s program attach", func(ev gadget.Event) bool {
				p, ok := ev.(*devices.ProgramChange)
				return ok && p.Op == "attach" && p.Result == "ok" && strings.HasSuffix(p.Cgroup.Path, "/"+id)
			}, nil).(*devices.ProgramChange)
			if attach.Program == nil {
				t.Fatalf("program %d not decoded: %s", attach.ProgramID, attach.NotDecoded)
			}
			found := false
			for _, r := range attach.Program.Rules {
				found = found || r.Allow && r.String() == "c 1:9 rwm"
			}
			if !found || attach.Program.Default || attach.Proc.Comm != rt && !strings.HasPrefix(attach.Proc.Comm, rt) ||
				!attach.Program.Allows(devices.TypeChar, 1, 9, devices.AccAll) || attach.Program.Allows(devices.TypeBlock, 8, 0, devices.AccRead) {
				t.Errorf("attach by %s of %+v, want by %s: c 1:9 rwm allowed, b 8:0 r denied, default deny", attach.Proc.Comm, attach.Program, rt)
			}

			denied := events.Next(t, "the denied open of /blk", func(ev gadget.Event) bool {
				d, ok := ev.(*devices.Denied)
				return ok && d.Path == "/blk"
			}, nil).(*devices.Denied)
			if denied.Device() != "b 8:0" || denied.Access != devices.AccRead || denied.Syscall != "openat" || denied.Cause == nil ||
				denied.Cause.Kind != "policy" || !hasAttr(denied.Cause, "program_id", strconv.FormatUint(uint64(attach.ProgramID), 10)) {
				t.Errorf("denied %s %s by %s, cause %+v; want b 8:0 r by openat, cause policy: program %d", denied.Device(),
					devices.AccessString(denied.Access), denied.Syscall, denied.Cause, attach.ProgramID)
			}
			// What the container saw, once its open has failed and been logged.
			if logged := containertest.ExecCgroup2(t, rt, id, "sh", "-c", "until [ -e /tmp/done ]; do sleep 0.01; done; cat /tmp/err"); !strings.Contains(logged, "not permitted") {
				t.Errorf("the container's own view of its open: %q", logged)
			}
		})
	}
}

func hasAttr(c *gadget.Cause, key, value string) bool {
	for _, a := range c.Attrs {
		if a.Key == key && a.Value == value {
			return true
		}
	}
	return false
}

// A container whose open of a device is refused and that then exits at once (a failed open often
// ends its process) is gone before user space reads the event: its denial still comes, with the
// device, every time.
func TestCgroup2DenialOfExitedContainer(t *testing.T) {
	containertest.SkipInVM(t)
	events := open(t)
	for i := range 10 {
		bundle := t.TempDir()
		if err := containertest.WriteRootfs(filepath.Join(bundle, "rootfs")); err != nil {
			t.Fatal(err)
		}
		containertest.RuncSpec(t, bundle, func(s *specs.Spec) {
			s.Root.Readonly = false
			s.Process.Args = []string{"sh", "-c", "mknod /tmp/sda b 8 0 && exec head -c 1 /tmp/sda"}
			c := s.Process.Capabilities
			c.Bounding, c.Effective, c.Permitted = append(c.Bounding, "CAP_MKNOD"), append(c.Effective, "CAP_MKNOD"), append(c.Permitted, "CAP_MKNOD")
		})
		id := fmt.Sprintf("gw-test-exit-%d-%d", os.Getpid(), i)
		containertest.RunCgroup2(t, "runc", bundle, id)
		denied := events.Next(t, fmt.Sprintf("run %d: the denied open of /tmp/sda", i), func(ev gadget.Event) bool {
			d, ok := ev.(*devices.Denied)
			return ok && d.Path == "/tmp/sda" && d.Syscall == "openat"
		}, nil).(*devices.Denied)
		if denied.Device() != "b 8:0" || denied.Access != devices.AccRead || !denied.Known {
			t.Errorf("run %d: denied %q %s (known %v), want b 8:0 r", i, denied.Device(), devices.AccessString(denied.Access), denied.Known)
		}
	}
}
