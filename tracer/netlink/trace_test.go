package netlink_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/gadget/gadgettest"
	"github.com/ghostwatch/ghostwatch/tracer/netlink"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

func open(t *testing.T) *gadgettest.Collector[*netlink.Event] {
	t.Helper()
	testutil.RequirePrivileged(t)
	tr, err := gadget.OpenTracer[*netlink.Event](&netlink.Gadget, gadget.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return gadgettest.Collect(t, func(ctx context.Context, emit func(*netlink.Event)) error {
		return tr.Run(ctx, emit, nil)
	})
}

// ip runs ip with args in a network namespace of its own (unshare -n), which must fail; it returns
// ip's pid and the namespace's inode.
func ip(t *testing.T, args ...string) (uint32, uint32) {
	t.Helper()
	cmd := exec.Command("unshare", append([]string{"-n", "sh", "-c", `readlink /proc/self/ns/net && exec ip "$@"`, "sh"}, args...)...)
	var out, errs strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Run(); err == nil {
		t.Fatalf("ip %v succeeded: %s", args, errs.String())
	}
	var inode uint32
	if _, err := fmt.Sscanf(out.String(), "net:[%d]", &inode); err != nil {
		t.Fatalf("readlink printed %q: %v", out.String(), err)
	}
	// sh execs ip: the same process.
	return uint32(cmd.Process.Pid), inode
}

func TestExtack(t *testing.T) {
	events := open(t)
	tests := []struct {
		name     string
		args     []string
		message  string
		errno    unix.Errno
		validate func(t *testing.T, e *netlink.Event)
	}{
		{
			// The acceptance case: a route through a gateway no interface of the namespace reaches.
			name: "route via an unreachable gateway", args: []string{"route", "add", "10.99.0.0/24", "via", "192.0.2.1"},
			message: "Nexthop has invalid gateway", errno: unix.ENETUNREACH,
			validate: func(t *testing.T, e *netlink.Event) {
				q := e.Ack.Request
				// Debian 12's ip sets no NETLINK_CAP_ACK: the ack echoes the attributes.
				if q.TypeName(e.Ack.Protocol) != "RTM_NEWROUTE" || !q.HasAttribute || q.Dst.String() != "10.99.0.0" || q.PrefixLen != 24 || q.Gateway.String() != "192.0.2.1" {
					t.Errorf("request %+v", q)
				}
			},
		},
		{
			// A kind no module provides: the kernel's answer after request_module found none.
			name: "link of an unknown kind", args: []string{"link", "add", "name", "gw0", "type", "gwnosuchkind"},
			message: "Unknown device type", errno: unix.EOPNOTSUPP,
			validate: func(t *testing.T, e *netlink.Event) {
				q := e.Ack.Request
				if q.TypeName(e.Ack.Protocol) != "RTM_NEWLINK" || !q.HasAttribute || q.IfName != "gw0" {
					t.Errorf("request %+v", q)
				}
			},
		},
		{
			// A nexthop object (5.3) on the namespace's loopback, which a new namespace leaves down.
			name: "nexthop on a device that is down", args: []string{"nexthop", "add", "id", "7", "via", "192.0.2.1", "dev", "lo"},
			message: "Nexthop device is not up", errno: unix.ENETDOWN,
			validate: func(t *testing.T, e *netlink.Event) {
				if q := e.Ack.Request; q.TypeName(e.Ack.Protocol) != "RTM_NEWNEXTHOP" {
					t.Errorf("request %+v", q)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid, inode := ip(t, tt.args...)
			e := events.Next(t, tt.message, func(e *netlink.Event) bool { return e.Proc.PID == pid }, nil)
			if e.Message != tt.message || e.Ack == nil || e.Ack.Error != -int32(tt.errno) || e.Ack.Protocol != unix.NETLINK_ROUTE {
				t.Fatalf("event: %+v ack %+v", e, e.Ack)
			}
			if e.NetNS != inode || e.NS.Net != inode || e.Proc.Comm != "ip" || !e.Ack.Request.HasHeader {
				t.Errorf("netns %d (actor %d), comm %q, want %d and ip; request %+v", e.NetNS, e.NS.Net, e.Proc.Comm, inode, e.Ack.Request)
			}
			tt.validate(t, e)
			t.Logf("%s: %s", e.Ack.Errno(), e.What())
		})
	}
}

// The zombie IP with the kernel's own answer: two ipvlan devices on one parent, one in a lingering
// namespace (a bind mount, no process) with an address, and the same address added to the other in
// a namespace of its own. ipvlan's address validator refuses it ("Address already assigned to an
// ipvlan device", EADDRINUSE), and the event names the lingering namespace. This host has no
// ipvlan: the test skips here, and runs in vmtest's guests, which load ipvlan and dummy (the
// parent) from their kernel's package (vmtest.GuestModules).
func TestIpvlanAddressInUse(t *testing.T) {
	testutil.RequirePrivileged(t)
	suffix := fmt.Sprint(time.Now().UnixNano() % 1e6)
	actor, lingering := "gw-ipvl-a"+suffix, "gw-ipvl-l"+suffix
	run := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %v: %v: %s", args, err, out)
		}
		return nil
	}
	for _, ns := range []string{actor, lingering} {
		if err := run("netns", "add", ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	if err := run("-n", actor, "link", "add", "gwpar0", "type", "dummy"); err != nil {
		requireIpvlan(t, err)
	}
	if err := run("-n", actor, "link", "add", "link", "gwpar0", "name", "gwipvl0", "type", "ipvlan", "mode", "l2"); err != nil {
		requireIpvlan(t, err)
	}
	for _, args := range [][]string{
		{"-n", actor, "link", "set", "gwpar0", "up"},
		{"-n", actor, "link", "set", "gwipvl0", "netns", lingering},
		{"-n", lingering, "link", "set", "gwipvl0", "up"},
		{"-n", lingering, "addr", "add", "10.78.0.5/24", "dev", "gwipvl0"},
		{"-n", actor, "link", "add", "link", "gwpar0", "name", "gwipvl1", "type", "ipvlan", "mode", "l2"},
		{"-n", actor, "link", "set", "gwipvl1", "up"},
	} {
		if err := run(args...); err != nil {
			t.Fatal(err)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat("/run/netns/"+lingering, &st); err != nil {
		t.Fatal(err)
	}
	held := uint32(st.Ino)

	events := open(t)
	cmd := exec.Command("ip", "-n", actor, "addr", "add", "10.78.0.5/24", "dev", "gwipvl1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the kernel accepted an address another ipvlan device of the parent has: %s", out)
	}
	pid := uint32(cmd.Process.Pid)
	const message = "Address already assigned to an ipvlan device"
	e := events.Next(t, message, func(e *netlink.Event) bool { return e.Proc.PID == pid }, nil)
	if e.Message != message || e.Ack == nil || e.Ack.Error != -int32(unix.EADDRINUSE) {
		t.Fatalf("event %+v ack %+v; ip said %s", e, e.Ack, out)
	}
	if q := e.Ack.Request; q.TypeName(e.Ack.Protocol) != "RTM_NEWADDR" || q.Local.String() != "10.78.0.5" {
		t.Errorf("request %+v", q)
	}
	if e.HeldBy == nil || e.HeldBy.Inode != held || e.HeldIf != "gwipvl0" || e.HeldAddr != "10.78.0.5/24" || !e.HeldBy.Orphan() {
		t.Fatalf("held by %+v (%s %s), want netns %d (no process in it), gwipvl0 10.78.0.5/24", e.HeldBy, e.HeldIf, e.HeldAddr, held)
	}
	want := "10.78.0.5/24 is on gwipvl0 in netns " + fmt.Sprint(held) + ", no process in it, held by mount /run/netns/" + lingering
	if !strings.Contains(e.What(), want) {
		t.Errorf("%q\nwant it to say %q", e.What(), want)
	}
	t.Logf("%s: %s", e.Ack.Errno(), e.What())
}

// requireIpvlan skips, after a failure to make a dummy or ipvlan device, on a machine whose kernel
// has neither (as this host: no ipvlan module), and fails in vmtest's guests, which load both.
func requireIpvlan(t *testing.T, err error) {
	t.Helper()
	if os.Getenv("GHOSTWATCH_VMTEST") == "1" {
		t.Fatalf("vmtest's guests load ipvlan and dummy (vmtest.GuestModules): %v", err)
	}
	t.Skipf("no ipvlan or dummy devices in this kernel: %v", err)
}
