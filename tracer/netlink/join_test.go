package netlink

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/gadget/gadgettest"
	"github.com/ghostwatch/ghostwatch/tracer/netns"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// The zombie-IP join: an answer that an address is in use names the lingering namespace (no
// process in it, held by its bind mount) whose interface still has the address, and, as trace
// netns runs beside in this process, how long it has been empty. The answer is the one ipvlan
// gives ("Address already assigned to an ipvlan device", EADDRINUSE), which this host cannot
// produce (no ipvlan module; TestIpvlanAddressInUse makes it in vmtest's guests): its records are
// written here as the kernel writes them, and the namespace, trace netns and the holders snapshot
// are real.
func TestAddressInUseNamesItsHolder(t *testing.T) {
	testutil.RequirePrivileged(t)
	name := fmt.Sprintf("gw-zombie-%d", time.Now().UnixNano()%1e6)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	run("netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	// On its loopback device: veth is a module, which vmtest's guests do not have.
	run("-n", name, "addr", "add", "10.77.0.5/24", "dev", "lo")
	var st unix.Stat_t
	if err := unix.Stat("/run/netns/"+name, &st); err != nil {
		t.Fatal(err)
	}
	lingering := uint32(st.Ino)

	// trace netns sees a process enter the namespace and leave it: empty since then.
	g, err := gadget.Open(&netns.Gadget, gadget.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	events := gadgettest.Collect(t, func(ctx context.Context, emit func(gadget.Event)) error {
		return g.Run(ctx, nil, emit, nil, nil)
	})
	if out, err := exec.Command("nsenter", "--net=/run/netns/"+name, "true").CombinedOutput(); err != nil {
		t.Fatalf("nsenter: %v: %s", err, out)
	}
	empty := events.Next(t, fmt.Sprint("empty of ", lingering), func(ev gadget.Event) bool {
		e, ok := ev.(*netns.Event)
		return ok && e.Header.Kind == "empty" && e.NetNS == lingering
	}, nil).(*netns.Event)

	tests := []struct {
		name    string
		errno   int32
		message string
		addr    []byte
		held    bool
	}{
		{"ipvlan's answer", -int32(unix.EADDRINUSE), "Address already assigned to an ipvlan device", []byte{10, 77, 0, 5}, true},
		{"another address", -int32(unix.EADDRINUSE), "Address already assigned to an ipvlan device", []byte{10, 77, 0, 6}, false},
		{"another error", -int32(unix.EINVAL), "Invalid prefix length", []byte{10, 77, 0, 5}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &joiner{take: netns.Take}
			ext := &extackRecord{Event{Header: event.Header{Time: time.Now(), Proc: event.Proc{PID: 42, Comm: "ipvlan"}}, Message: tt.message, NetNS: 1, bootNs: 7}}
			ack := &ackRecord{Folded: gadget.Folded{Header: ext.Header}, extackNs: 7, ack: Ack{Error: tt.errno, Protocol: unix.NETLINK_ROUTE,
				Request: parseRequest(unix.NETLINK_ROUTE, request(unix.RTM_NEWADDR, []byte{unix.AF_INET, 24, 0, 0, 3, 0, 0, 0}, rtattr(unix.IFA_LOCAL, tt.addr)))}}
			var out []*Event
			emit := func(e gadget.Event) { out = append(out, e.(*Event)) }
			j.Process(ext, emit)
			j.Process(ack, emit)
			if len(out) != 1 {
				t.Fatalf("%d events", len(out))
			}
			e := out[0]
			if !tt.held {
				if e.HeldBy != nil {
					t.Errorf("held by %+v", e.HeldBy)
				}
				return
			}
			if e.HeldBy == nil || e.HeldBy.Inode != lingering || e.HeldIf != "lo" || e.HeldAddr != "10.77.0.5/24" || !e.HeldBy.Orphan() {
				t.Fatalf("held by %+v (%s %s), want netns %d, no process in it", e.HeldBy, e.HeldIf, e.HeldAddr, lingering)
			}
			if want := ext.Time.Sub(empty.Time); e.HeldEmpty != want || want <= 0 {
				t.Errorf("empty for %v, want %v (since trace netns's empty event at %v)", e.HeldEmpty, want, empty.Time)
			}
			mounted := false
			for _, h := range e.HeldBy.Holders {
				mounted = mounted || (h.Kind == "mount" && h.Mount == "/run/netns/"+name)
			}
			if !mounted {
				t.Errorf("holders %+v, want the mount /run/netns/%s", e.HeldBy.Holders, name)
			}
			want := fmt.Sprintf("RTM_NEWADDR 10.77.0.5/24 ifindex 3: %s; 10.77.0.5/24 is on lo in netns %d, no process in it for %v, held by mount",
				tt.message, lingering, e.HeldEmpty.Round(time.Millisecond))
			if !strings.HasPrefix(e.What(), want) {
				t.Errorf("%q\nwant %q...", e.What(), want)
			}
		})
	}
}
