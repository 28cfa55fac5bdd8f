package netns

import (
	"fmt"
	"maps"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// TestNSIDGivenAgain: a watched namespace is freed and the kernel gives its id to the next one
// watched before the first one's RTM_DELNSID was read. The freed namespace is the one reported
// destroyed, not the live one that now holds the id (before, the live one was: seen in the agent,
// a pod's lingering namespace reported destroyed while a process held it).
func TestNSIDGivenAgain(t *testing.T) {
	testutil.RequirePrivileged(t)
	n, err := openNSIDs()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	// A second listener, to know when the kernel has announced the first one's end.
	seen, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(seen)
	if err := unix.Bind(seen, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptInt(seen, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, rtnlgrpNSID); err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptTimeval(seen, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: int64(testutil.Wait / time.Second)})

	watch := func(h *testutil.Holder) uint32 {
		t.Helper()
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", h.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		inode := testutil.NSInode(t, h.Pid, "net")
		if err := n.watch(fd, inode); err != nil {
			t.Fatal(err)
		}
		return inode
	}
	first := testutil.StartHolder(t, syscall.CLONE_NEWNET)
	freed := watch(first)
	first.Stop()
	buf := make([]byte, 8192)
	for deleted := false; !deleted; {
		got, _, err := unix.Recvfrom(seen, buf, 0)
		if err != nil {
			t.Fatalf("no RTM_DELNSID for the freed namespace: %v", err)
		}
		msgs, _ := syscall.ParseNetlinkMessage(buf[:got])
		deleted = slices.ContainsFunc(msgs, func(m syscall.NetlinkMessage) bool { return m.Header.Type == unix.RTM_DELNSID })
	}
	second := testutil.StartHolder(t, syscall.CLONE_NEWNET)
	defer second.Stop()
	live := watch(second)
	if got := n.gone(); !slices.Equal(got, []uint32{freed}) {
		t.Errorf("gone: %v, want the freed namespace %d only (the live one is %d)", got, freed, live)
	}
	if !slices.Contains(slices.Collect(maps.Values(n.byID)), live) {
		t.Errorf("the live namespace %d is no longer watched", live)
	}
}
