// Package netlink traces netlink requests the kernel answered with an extended-ack message
// ("Nexthop has invalid gateway", "Address already assigned to an ipvlan device"): the actor and
// its container, its network namespace, the message, and the errno and request from the ack the
// kernel sent with it. Netlink libraries often keep only the errno: the message is what they drop.
package netlink

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	gen "github.com/ghostwatch/ghostwatch/gen/netlink"
	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
	"github.com/ghostwatch/ghostwatch/tracer/netns"
)

// Type is the gadget's name and the name of its object in JSON.
const Type = "netlink"

// Hook names.
const (
	HookExtack = "extack" // the kernel sets an extended-ack message
	HookAck    = "ack"    // the requester reads the ack that carries it
)

// KindExtack is the one kind the gadget writes: a message with its ack.
const KindExtack = "extack"

// ackWait is how long a message waits for its ack to be read before it is written without: a
// requester reads it at once, or never (a request without NLM_F_ACK that succeeded with a warning).
const ackWait = time.Second

// Gadget describes the netlink gadget.
var Gadget = gadget.Descriptor{
	Name:    Type,
	Summary: "netlink requests the kernel answered with an extended-ack message: the actor and its container, its network namespace, the message, the errno and the request (type, address, gateway, interface)",
	Load:    gen.LoadNetlink,
	// fill_header reads the current task (compat.h).
	Features: []kernel.Feature{kernel.TaskBTF},
	Hooks: []attach.Hook{
		// netlink_ack's kprobe where the tracepoint is missing (5.10): only acked messages.
		{Name: HookExtack, Candidates: [][]string{{gen.NetlinkProgExtackBtf}, {gen.NetlinkProgExtackRaw}, {gen.NetlinkProgExtackKprobe}}},
		// Every datagram read on the node passes here: one hash lookup by process, copied only
		// for a process with a message pending.
		{Name: HookAck, Candidates: [][]string{{gen.NetlinkProgAckBtf}, {gen.NetlinkProgAckRaw}}},
	},
	Kinds: []gadget.Kind{
		gadget.NewKind[gen.NetlinkExtackEvent, extackRecord]("message", uint32(gen.NetlinkNetlinkKindNETLINK_EXTACK)).Fold(),
		gadget.NewKind[gen.NetlinkAckEvent, ackRecord]("ack", uint32(gen.NetlinkNetlinkKindNETLINK_ACK)).Fold(),
	},
	Derived: []gadget.Kind{{Name: KindExtack, Fields: []gadget.Field{
		{Name: "message", Meaning: "the kernel's extended-ack message, as `ip` prints it after \"Error:\""},
		{Name: "errno", Meaning: "the error of the ack that carried it (`ENETUNREACH`), with `error`, its negative number; `0` and no errno for a warning on success; absent when the requester read no ack within a second"},
		{Name: "ack", Meaning: "`error` (an NLMSG_ERROR ack) or `done` (the end of a dump); absent with no ack"},
		{Name: "protocol", Meaning: "the socket's netlink family: `route`, `generic`, `netfilter`... (from the ack)"},
		{Name: "request", Meaning: "the request the ack echoes: `type` (`RTM_NEWROUTE`, or its number), `flags`, `seq`; for a route, an address, a link or a neighbour, what it named: `family`, `address`, `local`, `prefix_len`, `dst`, `gateway`, `ifindex`, `ifname` (absent: the socket asked for NETLINK_CAP_ACK, which leaves the payload out)"},
		{Name: "netns", Meaning: "the network namespace the request acted in (its socket's, from the ack; else the actor's, as in `ns`)"},
		{Name: "held_by", Meaning: "for an answer that the request's address is in use (`EADDRINUSE`, or \"already assigned\"): the other network namespace whose interface has it, as `netns holders` finds it then: `interface`, `address`, `empty_ns` (how long no process has lived in it, where trace netns runs in the same process: the agent), and `namespace` (`netns`, `members`, `holders`, `interfaces`, `container`: its former pod)"},
	}}},
	Columns: []encode.Column{{Name: "ERRNO", Width: 12}, {Name: "WHAT"}},
	// A link of a kind no module provides: refused whatever the namespace, so it needs none of
	// its own, and ip sends it itself (the filters' tests name the process that runs the command).
	Selftest:     gadget.Selftest{Command: []string{"ip", "link", "add", "name", "gw-selftest0", "type", "gwnosuchkind"}},
	NewProcessor: func(*gadget.Gadget, gadget.Params) (gadget.Processor, error) { return &joiner{take: netns.Take}, nil },
}

// extackRecord is the kernel's message, before its ack is read.
type extackRecord struct {
	Event
}

// Decode fills the event from a kernel record.
func (e *extackRecord) Decode(rec *gen.NetlinkExtackEvent, h *event.Header, r event.Resolver) {
	e.Event = Event{Header: *h, Message: event.CString(rec.Msg[:]), NetNS: h.NS.Net, bootNs: rec.Hdr.TsBootNs, resolver: r}
}

// Clone returns a copy.
func (e *extackRecord) Clone() gadget.Event { c := *e; return &c }

// ackRecord is the ack a process read while a message of its was pending.
type ackRecord struct {
	gadget.Folded
	extackNs  uint64
	ack       Ack
	sockNetNS uint32
}

// Decode fills the record.
func (a *ackRecord) Decode(rec *gen.NetlinkAckEvent, h *event.Header, _ event.Resolver) {
	a.Header, a.extackNs, a.sockNetNS = *h, rec.ExtackNs, rec.SockNetns
	a.ack = Ack{Error: rec.Error, Protocol: rec.Protocol, Done: rec.Type == unix.NLMSG_DONE}
	a.ack.Request = parseRequest(rec.Protocol, rec.Req[:min(int(rec.ReqLen), len(rec.Req))])
}

// Clone returns a copy.
func (a *ackRecord) Clone() gadget.Event { c := *a; return &c }

// Event is a request answered with an extended-ack message.
type Event struct {
	event.Header
	Message string
	Ack     *Ack   // nil: no ack was read
	NetNS   uint32 // the socket's network namespace, or the actor's
	// HeldBy is, for an answer that an address is in use, the other network namespace that has
	// it: the zombie IP of a namespace that outlived its pod.
	HeldBy   *netns.Namespace
	HeldAddr string // the address, as the namespace's interface has it ("10.1.0.5/24")
	HeldIf   string // that interface
	// HeldEmpty is how long no process has lived in it, when trace netns runs in the same process
	// (netns.EmptySince); 0 when unknown.
	HeldEmpty time.Duration
	bootNs    uint64 // the message's kernel time: its ack names it
	resolver  event.Resolver
}

// Ack is the kernel's answer that carried the message.
type Ack struct {
	Error    int32 // 0 or -errno
	Done     bool  // NLMSG_DONE (a dump's end), not NLMSG_ERROR
	Protocol uint32
	Request  Request
}

// Errno names the ack's error: "ENETUNREACH", "" for none.
func (a *Ack) Errno() string { return event.ErrnoName(int64(a.Error)) }

// Request is what the ack echoed of the request.
type Request struct {
	Type         uint16
	Flags        uint16
	Seq          uint32
	Family       uint8
	PrefixLen    uint8
	Address      netip.Addr // IFA_ADDRESS, or a neighbour's NDA_DST
	Local        netip.Addr // IFA_LOCAL
	Dst          netip.Addr // RTA_DST
	Gateway      netip.Addr // RTA_GATEWAY
	IfIndex      uint32
	IfName       string
	HasHeader    bool // the ack echoed at least the request's header
	HasAttribute bool // ... and its payload
}

// Head returns the common part.
func (e *Event) Head() *event.Header { return &e.Header }

// Clone returns a copy; values are never changed once emitted.
func (e *Event) Clone() gadget.Event { c := *e; return &c }

// AppendJSON appends the netlink object.
func (e *Event) AppendJSON(j *encode.JSON) {
	j.Object()
	j.String("message", e.Message)
	if a := e.Ack; a != nil {
		j.Int("error", int64(a.Error))
		j.OmitEmpty("errno", a.Errno())
		if a.Done {
			j.String("ack", "done")
		} else {
			j.String("ack", "error")
		}
		j.String("protocol", protocolName(a.Protocol))
		if q := &a.Request; q.HasHeader {
			j.ObjectKey("request")
			j.String("type", q.TypeName(a.Protocol))
			j.Uint("flags", uint64(q.Flags))
			j.Uint("seq", uint64(q.Seq))
			if q.HasAttribute {
				j.Uint("family", uint64(q.Family))
				appendAddr(j, "address", q.Address)
				appendAddr(j, "local", q.Local)
				if q.Address.IsValid() || q.Local.IsValid() || q.Dst.IsValid() {
					j.Uint("prefix_len", uint64(q.PrefixLen))
				}
				appendAddr(j, "dst", q.Dst)
				appendAddr(j, "gateway", q.Gateway)
				if q.IfIndex != 0 {
					j.Uint("ifindex", uint64(q.IfIndex))
				}
				j.OmitEmpty("ifname", q.IfName)
			}
			j.End()
		}
	}
	j.Uint("netns", uint64(e.NetNS))
	if e.HeldBy != nil {
		j.ObjectKey("held_by")
		j.String("interface", e.HeldIf)
		j.String("address", e.HeldAddr)
		if e.HeldEmpty > 0 {
			j.Int("empty_ns", int64(e.HeldEmpty))
		}
		j.Key("namespace")
		e.HeldBy.AppendJSON(j)
		j.End()
	}
	j.End()
}

func appendAddr(j *encode.JSON, k string, a netip.Addr) {
	if a.IsValid() {
		j.String(k, a.String())
	}
}

// AppendRow appends ERRNO and a sentence: "RTM_NEWROUTE 10.99.0.0/24 via 192.0.2.1: Nexthop has
// invalid gateway".
func (e *Event) AppendRow(r *encode.Row) {
	if e.Ack == nil {
		r.Cell("?")
	} else if n := e.Ack.Errno(); n != "" {
		r.Cell(n)
	} else {
		r.Cell("ok")
	}
	r.Begin()
	r.Str(e.What())
}

// What is the request and its message in one sentence.
func (e *Event) What() string {
	s := ""
	if e.Ack != nil && e.Ack.Request.HasHeader {
		s = e.Ack.Request.Summary(e.Ack.Protocol) + ": "
	}
	s += e.Message
	if n := e.HeldBy; n != nil {
		s += "; " + e.HeldAddr + " is on " + e.HeldIf + " in netns " + strconv.FormatUint(uint64(n.Inode), 10)
		if n.Container != nil {
			s += " of " + n.Container.Label()
		}
		if n.Orphan() {
			s += ", no process in it"
			if e.HeldEmpty > 0 {
				s += " for " + e.HeldEmpty.Round(time.Millisecond).String()
			}
		}
		if len(n.Holders) > 0 {
			h := n.Holders[0]
			s += ", held by " + h.Kind
			if h.Mount != "" {
				s += " " + h.Mount
			} else {
				s += " of " + h.Comm + " (pid " + strconv.FormatUint(uint64(h.PID), 10) + ")"
			}
		}
	}
	return s
}

// Summary is the request in a few words: "RTM_NEWADDR 10.1.0.5/24 ifindex 3".
func (q *Request) Summary(protocol uint32) string {
	s := q.TypeName(protocol)
	switch {
	case q.Dst.IsValid():
		s += " " + q.Dst.String() + "/" + strconv.Itoa(int(q.PrefixLen))
	case q.Local.IsValid():
		s += " " + q.Local.String() + "/" + strconv.Itoa(int(q.PrefixLen))
	case q.Address.IsValid():
		s += " " + q.Address.String()
	}
	if q.Gateway.IsValid() {
		s += " via " + q.Gateway.String()
	}
	if q.IfName != "" {
		s += " " + q.IfName
	} else if q.IfIndex != 0 {
		s += " ifindex " + strconv.Itoa(int(q.IfIndex))
	}
	return s
}

// joiner writes each message once its ack is read, or after ackWait without one.
type joiner struct {
	pending []*Event // in the order of their messages
	// take reads the network namespaces and what holds them (netns holders); replaced in tests.
	take func(netns.Options) ([]*netns.Namespace, error)
}

// Process folds one record.
func (p *joiner) Process(ev gadget.Event, emit func(gadget.Event)) {
	switch e := ev.(type) {
	case *extackRecord:
		// A message of a process whose previous one is still pending: that one's ack was not
		// read (the kernel keeps one pending message per process).
		p.pending = slices.DeleteFunc(p.pending, func(o *Event) bool {
			if o.Proc.PID == e.Proc.PID {
				emit(o)
				return true
			}
			return false
		})
		c := e.Event
		p.pending = append(p.pending, &c)
	case *ackRecord:
		i := slices.IndexFunc(p.pending, func(o *Event) bool { return o.Proc.PID == e.Proc.PID && o.bootNs == e.extackNs })
		if i < 0 {
			return // its message was written already, without it, after ackWait
		}
		v := p.pending[i]
		p.pending = slices.Delete(p.pending, i, i+1)
		ack := e.ack
		v.Ack = &ack
		if e.sockNetNS != 0 {
			v.NetNS = e.sockNetNS
		}
		p.joinHolder(v)
		emit(v)
	default:
		emit(ev)
	}
}

// Flush writes the messages whose ack has not come within ackWait, all of them at the end.
func (p *joiner) Flush(now time.Time, final bool, emit func(gadget.Event)) {
	p.pending = slices.DeleteFunc(p.pending, func(o *Event) bool {
		if final || now.Sub(o.Time) >= ackWait {
			emit(o)
			return true
		}
		return false
	})
}

// joinHolder finds, for an answer that an address is already in use, the other namespace whose
// interface has that address: a snapshot of the holders (from /proc: about 0.1 s on a busy
// node), taken only for such answers.
func (p *joiner) joinHolder(e *Event) {
	q := &e.Ack.Request
	addr := q.Local
	if !addr.IsValid() {
		addr = q.Address
	}
	if !addr.IsValid() || (e.Ack.Error != -int32(unix.EADDRINUSE) && !strings.Contains(e.Message, "already assigned")) {
		return
	}
	nss, err := p.take(netns.Options{Resolver: e.resolver})
	if err != nil {
		return
	}
	for _, n := range nss {
		if n.Inode == e.NetNS {
			continue
		}
		for _, ifc := range n.Interfaces {
			for _, a := range ifc.Addrs {
				if pfx, err := netip.ParsePrefix(a); err == nil && pfx.Addr() == addr {
					e.HeldBy, e.HeldAddr, e.HeldIf = n, a, ifc.Name
					if since, ok := netns.EmptySince(n.Inode); ok && n.Orphan() && since.Before(e.Time) {
						e.HeldEmpty = e.Time.Sub(since)
					}
					return
				}
			}
		}
	}
}

// parseRequest reads the echoed request: its header, and for rtnetlink's address, route, link and
// neighbour messages the attributes that name what it was about.
func parseRequest(protocol uint32, b []byte) Request {
	var q Request
	if len(b) < unix.SizeofNlMsghdr {
		return q
	}
	q.HasHeader = true
	q.Type = binary.NativeEndian.Uint16(b[4:])
	q.Flags = binary.NativeEndian.Uint16(b[6:])
	q.Seq = binary.NativeEndian.Uint32(b[8:])
	msgLen := int(binary.NativeEndian.Uint32(b[0:]))
	b = b[unix.SizeofNlMsghdr:min(len(b), max(msgLen, unix.SizeofNlMsghdr))]
	if protocol != unix.NETLINK_ROUTE || len(b) == 0 {
		return q
	}
	var fixed int
	switch q.Type {
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		fixed = unix.SizeofIfAddrmsg
		if len(b) >= fixed {
			q.Family, q.PrefixLen, q.IfIndex = b[0], b[1], binary.NativeEndian.Uint32(b[4:])
		}
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		fixed = unix.SizeofRtMsg
		if len(b) >= fixed {
			q.Family, q.PrefixLen = b[0], b[1]
		}
	case unix.RTM_NEWLINK, unix.RTM_DELLINK, unix.RTM_SETLINK:
		fixed = unix.SizeofIfInfomsg
		if len(b) >= fixed {
			q.Family, q.IfIndex = b[0], binary.NativeEndian.Uint32(b[4:])
		}
	case unix.RTM_NEWNEIGH, unix.RTM_DELNEIGH:
		fixed = unix.SizeofNdMsg
		if len(b) >= fixed {
			q.Family, q.IfIndex = b[0], binary.NativeEndian.Uint32(b[4:])
		}
	default:
		return q
	}
	if len(b) < fixed {
		return q
	}
	q.HasAttribute = true
	for a := b[fixed:]; len(a) >= unix.SizeofRtAttr; {
		n := int(binary.NativeEndian.Uint16(a[0:]))
		typ := binary.NativeEndian.Uint16(a[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if n < unix.SizeofRtAttr || n > len(a) {
			break
		}
		v := a[unix.SizeofRtAttr:n]
		attr(&q, typ, v)
		a = a[min(len(a), (n+3)&^3):]
	}
	return q
}

// attr takes one attribute of an rtnetlink request.
func attr(q *Request, typ uint16, v []byte) {
	ip := func() netip.Addr { a, _ := netip.AddrFromSlice(v); return a }
	switch q.Type {
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		switch typ {
		case unix.IFA_ADDRESS:
			q.Address = ip()
		case unix.IFA_LOCAL:
			q.Local = ip()
		case unix.IFA_LABEL:
			q.IfName = event.CString(toInt8(v))
		}
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		switch typ {
		case unix.RTA_DST:
			q.Dst = ip()
		case unix.RTA_GATEWAY:
			q.Gateway = ip()
		case unix.RTA_OIF:
			if len(v) >= 4 {
				q.IfIndex = binary.NativeEndian.Uint32(v)
			}
		}
	case unix.RTM_NEWLINK, unix.RTM_DELLINK, unix.RTM_SETLINK:
		if typ == unix.IFLA_IFNAME {
			q.IfName = event.CString(toInt8(v))
		}
	case unix.RTM_NEWNEIGH, unix.RTM_DELNEIGH:
		if typ == unix.NDA_DST {
			q.Address = ip()
		}
	}
}

func toInt8(b []byte) []int8 {
	out := make([]int8, len(b))
	for i, c := range b {
		out[i] = int8(c)
	}
	return out
}

// TypeName names the request's message type: "RTM_NEWROUTE", or its number.
func (q *Request) TypeName(protocol uint32) string {
	if protocol == unix.NETLINK_ROUTE {
		if n, ok := rtmNames[q.Type]; ok {
			return n
		}
	}
	return strconv.Itoa(int(q.Type))
}

var rtmNames = map[uint16]string{
	unix.RTM_NEWLINK: "RTM_NEWLINK", unix.RTM_DELLINK: "RTM_DELLINK", unix.RTM_GETLINK: "RTM_GETLINK", unix.RTM_SETLINK: "RTM_SETLINK",
	unix.RTM_NEWADDR: "RTM_NEWADDR", unix.RTM_DELADDR: "RTM_DELADDR", unix.RTM_GETADDR: "RTM_GETADDR",
	unix.RTM_NEWROUTE: "RTM_NEWROUTE", unix.RTM_DELROUTE: "RTM_DELROUTE", unix.RTM_GETROUTE: "RTM_GETROUTE",
	unix.RTM_NEWNEIGH: "RTM_NEWNEIGH", unix.RTM_DELNEIGH: "RTM_DELNEIGH", unix.RTM_GETNEIGH: "RTM_GETNEIGH",
	unix.RTM_NEWRULE: "RTM_NEWRULE", unix.RTM_DELRULE: "RTM_DELRULE", unix.RTM_NEWQDISC: "RTM_NEWQDISC",
	unix.RTM_DELQDISC: "RTM_DELQDISC", unix.RTM_NEWTFILTER: "RTM_NEWTFILTER", unix.RTM_NEWNSID: "RTM_NEWNSID",
	unix.RTM_NEWNEXTHOP: "RTM_NEWNEXTHOP", unix.RTM_DELNEXTHOP: "RTM_DELNEXTHOP",
}

func protocolName(p uint32) string {
	switch p {
	case unix.NETLINK_ROUTE:
		return "route"
	case unix.NETLINK_GENERIC:
		return "generic"
	case unix.NETLINK_NETFILTER:
		return "netfilter"
	case unix.NETLINK_SOCK_DIAG:
		return "sock_diag"
	case unix.NETLINK_AUDIT:
		return "audit"
	case unix.NETLINK_XFRM:
		return "xfrm"
	}
	return strconv.Itoa(int(p))
}
