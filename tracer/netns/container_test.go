package netns_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/gadget/gadgettest"
	"github.com/ghostwatch/ghostwatch/tracer/netns"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// The reproduction with real containerd and runc: a container's namespace gets a veth end
// with an address, as a CNI plugin would give it; a node agent enters it, opens a NETLINK_ROUTE
// socket, comes back and keeps the socket; the container is killed and deleted. The namespace's
// creation and emptying name the container, its lingering names the agent's socket and the
// address, and `netns holders --orphans` shows the same.
func TestContainerLingering(t *testing.T) {
	testutil.RequirePrivileged(t)
	containertest.SkipInVM(t)
	d := containertest.Start(t)
	coll := d.Watch(t)
	g, err := gadget.Open(&netns.Gadget, gadget.Options{Params: gadget.Params{netns.ParamLinger: 500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	events := gadgettest.Collect(t, func(ctx context.Context, emit func(gadget.Event)) error {
		return g.Run(ctx, coll, emit, nil, nil)
	})
	next := func(kind string, inode uint32) *netns.Event {
		t.Helper()
		return events.Next(t, kind+" of netns "+fmt.Sprint(inode), func(ev gadget.Event) bool {
			e, ok := ev.(*netns.Event)
			return ok && e.Header.Kind == kind && e.NetNS == inode
		}, nil).(*netns.Event)
	}

	c := d.Run(t, containertest.Options{Name: "db", Pod: "db-0"})
	inode := testutil.NSInode(t, c.Pid, "net")
	dev := fmt.Sprintf("gwc%d", os.Getpid()%10000)
	run(t, "ip", "link", "add", dev+"h", "type", "veth", "peer", "name", "eth9", "netns", strconv.Itoa(c.Pid))
	t.Cleanup(func() { exec.Command("ip", "link", "del", dev+"h").Run() })
	run(t, "nsenter", "-t", strconv.Itoa(c.Pid), "-n", "ip", "addr", "add", testAddr, "dev", "eth9")

	agentCmd := exec.Command(os.Args[0])
	agentCmd.Env = append(os.Environ(), agentEnv+"=/proc/"+strconv.Itoa(c.Pid)+"/ns/net")
	agent, line := testutil.StartProcess(t, agentCmd)
	fd, err := strconv.Atoi(strings.TrimPrefix(line, "ready "))
	if err != nil {
		t.Fatalf("agent: %q", line)
	}

	if e := next("created", inode); e.Owner == nil || e.Owner.Label() != "db-0/db" {
		t.Errorf("created: owner %v, want db-0/db", e.Owner)
	}
	c.Remove(d)
	if e := next("empty", inode); e.Owner == nil || e.Owner.Label() != "db-0/db" || e.How != "exit" {
		t.Errorf("empty by %s: owner %v, want db-0/db by exit", e.How, e.Owner)
	}
	l := next("lingering", inode)
	wantHolder := func(what string, n *netns.Namespace) {
		t.Helper()
		if n == nil || len(n.Holders) != 1 || n.Holders[0].PID != uint32(agent.Pid) || n.Holders[0].FD != fd ||
			n.Holders[0].Socket != "netlink(route)" || n.Addresses() != testAddr+" on eth9" {
			t.Errorf("%s: %+v, want held by pid %d fd %d netlink(route) with %s on eth9", what, n, agent.Pid, fd, testAddr)
		}
	}
	wantHolder("lingering", l.Holders)
	if l.Owner == nil || l.Owner.Label() != "db-0/db" {
		t.Errorf("lingering: owner %v, want db-0/db", l.Owner)
	}
	items := holders(t, gadget.SourceAuto, gadget.Params{netns.ParamOrphans: true, netns.ParamNetNS: uint64(inode)}, coll)
	if len(items) != 1 {
		t.Fatalf("netns holders --orphans: %d namespaces, want 1", len(items))
	}
	wantHolder("netns holders --orphans", items[0].(*netns.Namespace))

	agent.Stop() // the socket goes, and the namespace with it
	if e := next("destroyed", inode); e.Empty <= 0 {
		t.Errorf("destroyed %v after becoming empty, want after", e.Empty)
	}
}
