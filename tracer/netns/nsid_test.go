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
	id, ok := uint32(0), false
	for i, ino := range n.byID {
		if ino == freed {
			id, ok = i, true
		}
	}
	if !ok {
		t.Fatalf("namespace %d watched without an id: %v", freed, n.byID)
	}
	first.Stop()
	// The freed namespace's own notice: another namespace's, on a busy host, would let the second
	// holder start before the kernel has announced this one's end.
	buf := make([]byte, 8192)
	for deleted := false; !deleted; {
		got, _, err := unix.Recvfrom(seen, buf, 0)
		if err != nil {
			t.Fatalf("no RTM_DELNSID for the freed namespace (id %d): %v", id, err)
		}
		msgs, _ := syscall.ParseNetlinkMessage(buf[:got])
		deleted = slices.ContainsFunc(msgs, func(m syscall.NetlinkMessage) bool {
			got, ok := nsidOf(m.Data)
			return m.Header.Type == unix.RTM_DELNSID && ok && got == id
		})
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

// TestNSIDInodeGivenAgain: a namespace freed and a new one given its inode number, its
// RTM_DELNSID read before or after the new one is watched. Neither makes the new one destroyed
// (before, it was: a pod's namespace, with the number of a runc container's freed a moment before,
// reported destroyed at once and never lingering); an id given again still ends its old namespace.
func TestNSIDInodeGivenAgain(t *testing.T) {
	const inode, other = 4026532315, 4026532400
	for _, tc := range []struct {
		name string
		do   func(n *nsids)
		want []uint32
	}{
		{"ended, read, then the number watched again", func(n *nsids) { n.assign(5, inode); n.deleted(5); n.assign(6, inode) }, nil},
		{"the number watched again, its end read after", func(n *nsids) { n.assign(5, inode); n.assign(6, inode); n.deleted(5) }, nil},
		{"the number watched again under the same id", func(n *nsids) { n.assign(5, inode); n.deleted(5); n.assign(5, inode) }, nil},
		{"the new one ends", func(n *nsids) { n.assign(5, inode); n.assign(6, inode); n.deleted(6) }, []uint32{inode}},
		{"an id given to another number", func(n *nsids) { n.assign(5, inode); n.assign(5, other) }, []uint32{inode}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &nsids{byID: map[uint32]uint32{}}
			tc.do(n)
			if !slices.Equal(n.freed, tc.want) {
				t.Errorf("freed %v, want %v", n.freed, tc.want)
			}
		})
	}
}
