package netns

import (
	"strconv"

	"golang.org/x/sys/unix"
)

var netlinkProtocols = map[int]string{
	unix.NETLINK_ROUTE: "route", unix.NETLINK_SOCK_DIAG: "sock_diag", unix.NETLINK_AUDIT: "audit",
	unix.NETLINK_NETFILTER: "netfilter", unix.NETLINK_KOBJECT_UEVENT: "uevent", unix.NETLINK_GENERIC: "generic",
	unix.NETLINK_XFRM: "xfrm", unix.NETLINK_SELINUX: "selinux", unix.NETLINK_CONNECTOR: "connector",
}

// SocketName names a socket as an operator would: "netlink(route)", "tcp", "udp6", "unix".
func SocketName(family, typ, protocol int) string {
	six := ""
	switch family {
	case unix.AF_INET6:
		six = "6"
		fallthrough
	case unix.AF_INET:
		switch {
		case typ == unix.SOCK_STREAM && (protocol == 0 || protocol == unix.IPPROTO_TCP):
			return "tcp" + six
		case typ == unix.SOCK_DGRAM && (protocol == 0 || protocol == unix.IPPROTO_UDP):
			return "udp" + six
		case typ == unix.SOCK_DGRAM && (protocol == unix.IPPROTO_ICMP || protocol == unix.IPPROTO_ICMPV6):
			return "icmp" + six
		case typ == unix.SOCK_RAW:
			return "raw" + six + "(" + strconv.Itoa(protocol) + ")"
		}
		return "inet" + six + "(" + strconv.Itoa(typ) + "," + strconv.Itoa(protocol) + ")"
	case unix.AF_UNIX:
		return "unix"
	case unix.AF_NETLINK:
		if name, ok := netlinkProtocols[protocol]; ok {
			return "netlink(" + name + ")"
		}
		return "netlink(" + strconv.Itoa(protocol) + ")"
	case unix.AF_PACKET:
		return "packet"
	case unix.AF_VSOCK:
		return "vsock"
	}
	return "family " + strconv.Itoa(family)
}
