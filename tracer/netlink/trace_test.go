package netlink_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

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
