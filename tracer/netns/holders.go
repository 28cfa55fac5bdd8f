// Package netns finds what keeps each network namespace alive: the processes living in it, and
// every reference from outside (an open nsfs file, a socket created in it, a bind mount), read
// through BPF iterators with a /proc fallback.
package netns

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	gen "github.com/ghostwatch/ghostwatch/gen/netns"
	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

// Holder kinds.
const (
	KindMember = "member"
	KindFD     = "fd"     // an open nsfs file: /proc/PID/ns/net, or a bind mount of one
	KindSocket = "socket" // a socket created in the namespace, held by a process of another
	KindMount  = "mount"  // a bind mount of the namespace's nsfs file
)

// The holders snapshot's options.
const (
	ParamOrphans = "orphans"
	ParamNetNS   = "netns"
)

// Holders describes `ghostwatch netns holders`: every live network namespace and what holds it,
// read once through the netns object's iterators, or /proc.
var Holders = gadget.Descriptor{
	Name:    "holders",
	Group:   Type,
	Mode:    gadget.Snapshot,
	Summary: "every live network namespace, the processes in it, and what else holds it (fds, sockets, bind mounts)",
	Load:    gen.LoadNetns,
	Hooks:   []attach.Hook{holdersHook},
	Derived: []gadget.Kind{{Name: "namespace", Fields: []gadget.Field{
		{Name: "netns", Meaning: "the namespace's inode"},
		{Name: "members", Meaning: "how many processes live in it"},
		{Name: "members_sample", Meaning: "the first three of them: `pid`, `tid`, `comm`, `mntns`, `container`"},
		{Name: "holders", Meaning: "the references from outside: `kind` (`fd`, `socket`, `mount`), the process (`pid`, `tid`, `comm`, `mntns`, `container`), `fd` (-1 for a mount), `socket` (its kind), `mount` (the mount point)"},
		{Name: "interfaces", Meaning: "`name` and `addrs` (CIDR) of each interface, read inside it"},
		{Name: "interfaces_error", Meaning: "why the interfaces could not be read, instead"},
		{Name: "container", Meaning: "the container or pod sandbox that owns it, when known"},
	}}},
	Columns: []encode.Column{{Name: "NETNS", Width: 10}, {Name: "CONTAINER", Width: 16}, {Name: "HOLDERS"}},
	Params: []gadget.Param{
		{Name: ParamOrphans, Default: false, Usage: "only namespaces no process lives in"},
		{Name: ParamNetNS, Default: uint64(0), Usage: "only the namespace of this inode, as in /proc/PID/ns/net's net:[INODE]"},
	},
	Snap: snap,
	// The shell is a member of a namespace of its own.
	Selftest: gadget.Selftest{Command: []string{"unshare", "--net", "sh", "-c", "echo ready; exec cat"}},
}

func snap(g *gadget.Gadget, r event.Resolver) ([]gadget.Item, error) {
	inode := g.Params.Uint64(ParamNetNS)
	if inode > math.MaxUint32 {
		return nil, fmt.Errorf("netns %d: no namespace inode is above %d", inode, uint32(math.MaxUint32))
	}
	found, err := Take(Options{Resolver: r, Orphans: g.Params.Bool(ParamOrphans), NetNS: uint32(inode), Iterators: g.Set()})
	if err != nil {
		return nil, fmt.Errorf("reading namespaces: %w", err)
	}
	if inode != 0 && len(found) == 0 {
		return nil, fmt.Errorf("netns %d: no process, open file, socket or mount refers to it: it is gone, or only the kernel holds it", inode)
	}
	items := make([]gadget.Item, len(found))
	for i, n := range found {
		items[i] = n
	}
	return items, nil
}

// Proc is a process that lives in or holds a namespace.
type Proc struct {
	PID, TID  uint32
	Comm      string
	MntNS     uint32
	Container *event.Container
}

// Holder is one reference to a namespace from outside it (or a member's nsfs fd).
type Holder struct {
	Kind string
	Proc
	FD     int    // fd and socket; -1 for a mount
	Socket string // socket: "netlink(route)", "tcp", "udp6", "unix", ...
	Mount  string // mount: the mount point, in the mount namespace MntNS
}

// Interface is a network interface of a namespace and its addresses ("10.99.0.7/24").
type Interface struct {
	Name  string
	Addrs []string
}

// Namespace is a live network namespace and what holds it: a line of `netns holders`, and the
// holders of a lingering event, written the same way by AppendJSON.
type Namespace struct {
	Inode      uint32
	Members    int    // processes living in it
	Sample     []Proc // the first members, by pid
	Holders    []Holder
	Interfaces []Interface
	// InterfacesError says why the interfaces could not be read (no reference could be opened).
	InterfacesError string
	Container       *event.Container
}

// AppendJSON appends the namespace as one object: the line `netns holders -o json` writes, and
// the lingering event's "holders".
func (n *Namespace) AppendJSON(j *encode.JSON) {
	j.Object()
	j.Uint("netns", uint64(n.Inode))
	j.Int("members", int64(n.Members))
	j.Array("members_sample", len(n.Sample), func(i int) {
		j.Object()
		n.Sample[i].appendJSON(j)
		j.End()
	})
	j.Array("holders", len(n.Holders), func(i int) {
		h := &n.Holders[i]
		j.Object()
		j.String("kind", h.Kind)
		h.Proc.appendJSON(j)
		j.Int("fd", int64(h.FD))
		j.OmitEmpty("socket", h.Socket)
		j.OmitEmpty("mount", h.Mount)
		j.End()
	})
	j.Array("interfaces", len(n.Interfaces), func(i int) {
		j.Object()
		j.String("name", n.Interfaces[i].Name)
		j.Strings("addrs", n.Interfaces[i].Addrs)
		j.End()
	})
	j.OmitEmpty("interfaces_error", n.InterfacesError)
	appendContainer(j, "container", n.Container)
	j.End()
}

// AppendRow appends the namespace's cells: its inode, its owner, and what holds it and its
// addresses in one sentence.
func (n *Namespace) AppendRow(r *encode.Row) {
	r.Begin()
	r.Uint(uint64(n.Inode))
	if n.Container != nil {
		r.Cell(n.Container.Label())
	} else {
		r.Cell("-")
	}
	r.Cell(n.HeldBy() + "; " + n.Addresses())
}

func (p *Proc) appendJSON(j *encode.JSON) {
	j.Uint("pid", uint64(p.PID))
	j.Uint("tid", uint64(p.TID))
	j.String("comm", p.Comm)
	j.Uint("mntns", uint64(p.MntNS))
	appendContainer(j, "container", p.Container)
}

// appendContainer appends a container member unless c is nil (the host, or not known).
func appendContainer(j *encode.JSON, key string, c *event.Container) {
	if c != nil {
		j.Key(key)
		j.B = c.AppendJSON(j.B)
	}
}

// Orphan says whether no process lives in the namespace.
func (n *Namespace) Orphan() bool { return n.Members == 0 }

// Options choose the source and what to keep.
type Options struct {
	Resolver event.Resolver // containers of processes and namespaces; nil: none
	Orphans  bool           // only namespaces no process lives in
	NetNS    uint32         // only this namespace; 0: all
	// Iterators is a loaded set of the netns object: its holders hook's iterators are read
	// where they are attached, else /proc.
	Iterators *attach.Set
}

// maxSample is how many members a namespace lists.
const maxSample = 3

// Take reads the holders of every network namespace, then the interfaces of those kept, sorted
// by inode.
func Take(o Options) ([]*Namespace, error) {
	var recs []record
	var err error
	if o.Iterators != nil && o.Iterators.Iter(gen.NetnsProgHoldersTasks) != nil {
		recs, err = readHolders(o.Iterators)
	} else {
		recs, err = fromProc()
	}
	if err != nil {
		return nil, err
	}
	recs = append(recs, mounts(recs)...)
	var kept []*Namespace
	for _, n := range group(recs, os.Getpid()) {
		if (o.Orphans && !n.Orphan()) || (o.NetNS != 0 && n.Inode != o.NetNS) {
			continue
		}
		kept = append(kept, n)
	}
	for _, n := range kept {
		if ifs, err := interfaces(n); err != nil {
			n.InterfacesError = err.Error()
		} else {
			n.Interfaces = ifs
		}
		if o.Resolver != nil {
			n.Container = o.Resolver.Owner(event.NSTypes[1], n.Inode)
			for i := range n.Sample {
				n.Sample[i].Container = o.Resolver.Owner(event.NSTypes[0], n.Sample[i].MntNS)
			}
			for i := range n.Holders {
				n.Holders[i].Container = o.Resolver.Owner(event.NSTypes[0], n.Holders[i].MntNS)
			}
		}
	}
	return kept, nil
}

// record is one fact: a member, an nsfs fd, a socket or a mount, of the namespace netns.
type record struct {
	kind  string
	netns uint32
	proc  Proc
	fd    int
	own   uint32 // the holder's own network namespace
	sock  string
	mount string
}

// group turns records into namespaces, sorted by inode; the references of the process self
// (made while looking) are left out.
func group(recs []record, self int) []*Namespace {
	byInode := map[uint32]*Namespace{}
	members := map[uint32]map[uint32]bool{}
	for _, r := range recs {
		if r.netns == 0 {
			continue
		}
		n := byInode[r.netns]
		if n == nil {
			n = &Namespace{Inode: r.netns, Sample: []Proc{}, Holders: []Holder{}, Interfaces: []Interface{}} // JSON arrays, never null
			byInode[r.netns] = n
			members[r.netns] = map[uint32]bool{}
		}
		switch {
		case int(r.proc.PID) == self && r.kind != KindMount:
			// Our own threads and fds (entering namespaces to read them) are not holders; the
			// namespace stays listed.
		case r.kind == KindMember:
			if !members[r.netns][r.proc.PID] {
				members[r.netns][r.proc.PID] = true
				n.Members++
				n.Sample = append(n.Sample, r.proc)
			}
		default:
			n.Holders = append(n.Holders, Holder{Kind: r.kind, Proc: r.proc, FD: r.fd, Socket: r.sock, Mount: r.mount})
		}
	}
	out := make([]*Namespace, 0, len(byInode))
	for _, n := range byInode {
		slices.SortFunc(n.Sample, func(a, b Proc) int { return int(a.PID) - int(b.PID) })
		n.Sample = n.Sample[:min(len(n.Sample), maxSample)]
		slices.SortStableFunc(n.Holders, func(a, b Holder) int { return int(a.PID) - int(b.PID) })
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *Namespace) int { return int(a.Inode) - int(b.Inode) })
	return out
}

// holdersHook is the snapshot's: the trace gadget attaches it too, for its lingering reports.
var holdersHook = attach.Hook{Name: HookHolders, Candidates: [][]string{{gen.NetnsProgHoldersTasks, gen.NetnsProgHoldersFiles}},
	Without: "holders are read from /proc (each task's ns/net link, each fd's link)"}

// readHolders runs the two iterators of a set once.
func readHolders(set *attach.Set) ([]record, error) {
	var out []record
	for _, name := range []string{gen.NetnsProgHoldersTasks, gen.NetnsProgHoldersFiles} {
		recs, err := gadget.ReadIter[gen.NetnsHolderRecord](set, name)
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			r := record{netns: rec.Netns, fd: int(rec.Fd), own: rec.OwnNetns,
				proc: Proc{PID: rec.Pid, TID: rec.Tid, Comm: event.CString(rec.Comm[:]), MntNS: rec.Mntns}}
			switch gen.NetnsHolderKind(rec.Kind) {
			case gen.NetnsHolderKindHOLDER_MEMBER:
				r.kind = KindMember
			case gen.NetnsHolderKindHOLDER_NSFS_FD:
				r.kind = KindFD
			case gen.NetnsHolderKindHOLDER_SOCKET:
				r.kind, r.sock = KindSocket, SocketName(int(rec.Family), int(rec.Type), int(rec.Protocol))
			default:
				return nil, fmt.Errorf("%s: record of unknown kind %d", name, rec.Kind)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// mounts finds bind mounts of network namespaces (nsfs mounts whose root is "net:[INODE]") in
// every mount namespace the records show, through one process of each.
func mounts(recs []record) []record {
	seen := map[uint32]bool{}
	var out []record
	for _, r := range recs {
		if r.proc.MntNS == 0 || seen[r.proc.MntNS] {
			continue
		}
		seen[r.proc.MntNS] = true
		f, err := os.Open("/proc/" + strconv.Itoa(int(r.proc.PID)) + "/mountinfo")
		if err != nil {
			seen[r.proc.MntNS] = false // gone: another process of that namespace may do
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if inode, point, ok := nsfsMount(sc.Text()); ok {
				out = append(out, record{kind: KindMount, netns: inode, mount: point, fd: -1, own: r.own,
					proc: Proc{PID: r.proc.PID, TID: r.proc.PID, Comm: r.proc.Comm, MntNS: r.proc.MntNS}})
			}
		}
		f.Close()
	}
	return out
}

// nsfsMount reads a mountinfo line: a mount of a network namespace's nsfs file gives its inode
// and mount point.
func nsfsMount(line string) (uint32, string, bool) {
	before, after, ok := strings.Cut(line, " - ")
	if !ok || !strings.HasPrefix(after, "nsfs ") {
		return 0, "", false
	}
	f := strings.Fields(before)
	if len(f) < 5 || !strings.HasPrefix(f[3], "net:[") {
		return 0, "", false
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(f[3], "net:["), "]"), 10, 32)
	if err != nil {
		return 0, "", false
	}
	return uint32(n), unescape(f[4]), true
}

// unescape undoes mountinfo's octal escapes of space, tab, newline and backslash.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
