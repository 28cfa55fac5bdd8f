package netlink

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// request builds a netlink message as a library sends it: header, fixed part, attributes.
func request(typ uint16, fixed []byte, attrs ...[]byte) []byte {
	body := append([]byte{}, fixed...)
	for _, a := range attrs {
		body = append(body, a...)
	}
	h := make([]byte, unix.SizeofNlMsghdr)
	binary.NativeEndian.PutUint32(h[0:], uint32(len(h)+len(body)))
	binary.NativeEndian.PutUint16(h[4:], typ)
	binary.NativeEndian.PutUint16(h[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	binary.NativeEndian.PutUint32(h[8:], 7)
	return append(h, body...)
}

func rtattr(typ uint16, v []byte) []byte {
	a := make([]byte, unix.SizeofRtAttr, (unix.SizeofRtAttr+len(v)+3)&^3)
	binary.NativeEndian.PutUint16(a[0:], uint16(unix.SizeofRtAttr+len(v)))
	binary.NativeEndian.PutUint16(a[2:], typ)
	a = append(a, v...)
	return a[:cap(a)]
}

func TestParseRequest(t *testing.T) {
	ifaddr := []byte{unix.AF_INET, 24, 0, 0, 3, 0, 0, 0} // family, prefix, flags, scope, index 3
	rtmsg := []byte{unix.AF_INET, 24, 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST, 0, 0, 0, 0}
	ifinfo := make([]byte, unix.SizeofIfInfomsg)
	tests := []struct {
		name     string
		protocol uint32
		msg      []byte
		want     string // Summary
		check    func(q Request) bool
	}{
		{"address with its label", unix.NETLINK_ROUTE,
			request(unix.RTM_NEWADDR, ifaddr, rtattr(unix.IFA_LOCAL, []byte{10, 1, 0, 5}), rtattr(unix.IFA_ADDRESS, []byte{10, 1, 0, 5}), rtattr(unix.IFA_LABEL, []byte("eth0\x00"))),
			"RTM_NEWADDR 10.1.0.5/24 eth0", func(q Request) bool { return q.IfIndex == 3 && q.Address.String() == "10.1.0.5" && q.Seq == 7 }},
		{"route via a gateway", unix.NETLINK_ROUTE,
			request(unix.RTM_NEWROUTE, rtmsg, rtattr(unix.RTA_DST, []byte{10, 99, 0, 0}), rtattr(unix.RTA_GATEWAY, []byte{192, 0, 2, 1})),
			"RTM_NEWROUTE 10.99.0.0/24 via 192.0.2.1", nil},
		{"link by name", unix.NETLINK_ROUTE,
			request(unix.RTM_NEWLINK, ifinfo, rtattr(unix.IFLA_IFNAME, []byte("veth0\x00"))),
			"RTM_NEWLINK veth0", nil},
		// NETLINK_CAP_ACK: the ack echoes the header alone.
		{"header only", unix.NETLINK_ROUTE, request(unix.RTM_NEWROUTE, nil)[:unix.SizeofNlMsghdr],
			"RTM_NEWROUTE", func(q Request) bool { return q.HasHeader && !q.HasAttribute }},
		{"another family", unix.NETLINK_GENERIC, request(0x1c, []byte{1, 2, 0, 0}),
			"28", func(q Request) bool { return !q.HasAttribute }},
		{"an attribute longer than the copy", unix.NETLINK_ROUTE,
			request(unix.RTM_NEWADDR, ifaddr, rtattr(unix.IFA_LOCAL, []byte{10, 1, 0, 5}))[:unix.SizeofNlMsghdr+len(ifaddr)+6],
			"RTM_NEWADDR ifindex 3", nil},
		{"nothing", unix.NETLINK_ROUTE, nil, "0", func(q Request) bool { return !q.HasHeader }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := parseRequest(tt.protocol, tt.msg)
			if got := q.Summary(tt.protocol); got != tt.want {
				t.Errorf("summary %q, want %q (%+v)", got, tt.want, q)
			}
			if tt.check != nil && !tt.check(q) {
				t.Errorf("request %+v", q)
			}
		})
	}
}
