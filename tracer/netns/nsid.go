package netns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// rtnetlink's namespace id attributes and group (linux/net_namespace.h, rtnetlink.h).
const (
	netnsaNSID  = 1
	netnsaFD    = 3
	rtnlgrpNSID = 28
)

// nsids learns when namespaces are freed where no hook on the kernel's teardown attaches: the
// host namespace can name another namespace by an id (as `ip netns set` or a veth peer does),
// which holds no reference to it, and the kernel announces RTM_DELNSID for that id to the host's
// listeners when it frees the namespace. Watching a namespace gives it an id if it has none.
//
// The kernel gives a freed namespace's id, and its inode number, to later namespaces, so a
// notification read late could name a namespace that holds the id or the number now: watch reads
// those already sent before it asks for an id, and assign keeps ids and numbers apart.
type nsids struct {
	req, listen int
	byID        map[uint32]uint32 // id in the host namespace -> namespace inode
	freed       []uint32          // watched namespaces known freed, not yet returned by gone
}

func openNSIDs() (*nsids, error) {
	n := &nsids{req: -1, listen: -1, byID: map[uint32]uint32{}}
	var err error
	if n.req, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE); err == nil {
		n.listen, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	}
	if err == nil {
		err = unix.Bind(n.listen, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	}
	if err == nil {
		err = unix.SetsockoptInt(n.listen, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, rtnlgrpNSID)
	}
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("namespace id notifications: %w", err)
	}
	return n, nil
}

func (n *nsids) Close() {
	for _, fd := range []int{n.req, n.listen} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// watch gives the namespace behind nsfd an id in the host namespace unless it has one, and
// remembers it.
func (n *nsids) watch(nsfd int, inode uint32) error {
	n.read()
	if _, err := n.request(unix.RTM_NEWNSID, nsfd, true); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("giving netns %d an id: %w", inode, err)
	}
	id, err := n.request(unix.RTM_GETNSID, nsfd, false)
	if err != nil {
		return fmt.Errorf("reading netns %d's id: %w", inode, err)
	}
	n.assign(id, inode)
	return nil
}

// assign records the id of a namespace being watched. Ids and inode numbers are both given again
// once a namespace is freed: an id that named another namespace means that one was freed, and
// what is known of an earlier namespace with this inode number (its id, its end read but not yet
// returned) is not this one's, whose creation the tracker has already taken.
func (n *nsids) assign(id, inode uint32) {
	for old, ino := range n.byID {
		if ino == inode && old != id {
			delete(n.byID, old)
		}
	}
	n.freed = slices.DeleteFunc(n.freed, func(x uint32) bool { return x == inode })
	if old, ok := n.byID[id]; ok && old != inode {
		n.freed = append(n.freed, old)
	}
	n.byID[id] = inode
}

// deleted takes an RTM_DELNSID: the namespace its id names, if watched, is freed.
func (n *nsids) deleted(id uint32) {
	if inode, watched := n.byID[id]; watched {
		n.freed = append(n.freed, inode)
		delete(n.byID, id)
	}
}

// request sends RTM_NEWNSID (with id -1: the kernel chooses) or RTM_GETNSID for nsfd and returns
// the id of the answer (GETNSID) or the acknowledgement's error (NEWNSID).
func (n *nsids) request(typ uint16, nsfd int, create bool) (uint32, error) {
	body := []byte{unix.AF_UNSPEC, 0, 0, 0}
	body = appendAttr(body, netnsaFD, uint32(nsfd))
	flags := uint16(unix.NLM_F_REQUEST)
	if create {
		body = appendAttr(body, netnsaNSID, 0xffffffff)
		flags |= unix.NLM_F_ACK
	}
	msg := binary.LittleEndian.AppendUint32(nil, uint32(unix.NLMSG_HDRLEN+len(body)))
	msg = binary.LittleEndian.AppendUint16(msg, typ)
	msg = binary.LittleEndian.AppendUint16(msg, flags)
	msg = append(msg, make([]byte, 8)...) // sequence and port: the kernel's defaults
	msg = append(msg, body...)
	if err := unix.Sendto(n.req, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, err
	}
	buf := make([]byte, 4096)
	got, _, err := unix.Recvfrom(n.req, buf, 0)
	if err != nil {
		return 0, err
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:got])
	if err != nil || len(msgs) == 0 {
		return 0, fmt.Errorf("answer: %w", errors.Join(err, os.ErrInvalid))
	}
	m := msgs[0]
	if m.Header.Type == unix.NLMSG_ERROR {
		if code := int32(binary.LittleEndian.Uint32(m.Data)); code != 0 {
			return 0, unix.Errno(-code)
		}
		return 0, nil
	}
	id, ok := nsidOf(m.Data)
	if !ok {
		return 0, fmt.Errorf("answer without an id")
	}
	return id, nil
}

// gone returns the watched namespaces freed since it was last asked.
func (n *nsids) gone() []uint32 {
	n.read()
	out := n.freed
	n.freed = nil
	return out
}

// read takes the RTM_DELNSID notifications waiting: the namespaces they name are freed.
func (n *nsids) read() {
	buf := make([]byte, 8192)
	for {
		got, _, err := unix.Recvfrom(n.listen, buf, 0)
		if err != nil {
			return // EAGAIN: nothing more
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:got])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if id, ok := nsidOf(m.Data); ok && m.Header.Type == unix.RTM_DELNSID {
				n.deleted(id)
			}
		}
	}
}

// nsidOf reads NETNSA_NSID after a struct rtgenmsg (4 bytes, padded).
func nsidOf(data []byte) (uint32, bool) {
	if len(data) < 4 {
		return 0, false
	}
	for b := data[4:]; len(b) >= 4; {
		l := int(binary.LittleEndian.Uint16(b))
		if l < 4 || l > len(b) {
			return 0, false
		}
		if binary.LittleEndian.Uint16(b[2:]) == netnsaNSID && l >= 8 {
			return binary.LittleEndian.Uint32(b[4:]), true
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return 0, false
}

func appendAttr(b []byte, typ uint16, v uint32) []byte {
	b = binary.LittleEndian.AppendUint16(b, 8)
	b = binary.LittleEndian.AppendUint16(b, typ)
	return binary.LittleEndian.AppendUint32(b, v)
}
