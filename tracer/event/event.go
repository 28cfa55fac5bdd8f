// Package event holds what every gadget's events share: the header captured in the kernel (actor,
// namespaces, cgroup) decoded into its JSON form, namespace type names, and errno names.
package event

import (
	"fmt"
	"reflect"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ghostwatch/ghostwatch/gen/header"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"golang.org/x/sys/unix"
)

// Header is the common part of every event, as documented in the README's JSON schema.
type Header struct {
	Time time.Time `json:"time"`
	Type string    `json:"type"`
	// Kind is the event kind, for gadgets with more than one.
	Kind      string     `json:"kind,omitempty"`
	Proc      Proc       `json:"proc"`
	NS        Namespaces `json:"ns"`
	Container *Container `json:"container,omitempty"` // nil for the host
}

// Container names the container of an actor or of a namespace. Values are shared between events
// and never changed once made.
type Container struct {
	ID           string `json:"id"`
	Name         string `json:"name,omitempty"`
	Runtime      string `json:"runtime"`
	Image        string `json:"image,omitempty"`
	Pod          string `json:"pod,omitempty"`
	K8sNamespace string `json:"k8s_namespace,omitempty"`
	PodUID       string `json:"pod_uid,omitempty"`
	Attempt      uint32 `json:"attempt,omitempty"` // the kubelet's restart count (CRI metadata)

	rendered atomic.Pointer[rendered] // made once: a container is never changed
}

// rendered is how a container is written in events.
type rendered struct {
	json  []byte
	label string
}

func (c *Container) render() *rendered {
	if r := c.rendered.Load(); r != nil {
		return r
	}
	j := encode.JSON{}
	j.Object()
	j.String("id", c.ID)
	j.OmitEmpty("name", c.Name)
	j.String("runtime", c.Runtime)
	j.OmitEmpty("image", c.Image)
	j.OmitEmpty("pod", c.Pod)
	j.OmitEmpty("k8s_namespace", c.K8sNamespace)
	j.OmitEmpty("pod_uid", c.PodUID)
	if c.Attempt > 0 {
		j.Uint("attempt", uint64(c.Attempt))
	}
	j.End()
	r := &rendered{json: j.B, label: c.ID}
	switch {
	case c.Pod != "" && c.Name != "":
		r.label = c.Pod + "/" + c.Name
	case c.Name != "":
		r.label = c.Name
	case c.Pod != "":
		r.label = c.Pod
	case len(c.ID) > 12:
		r.label = c.ID[:12]
	}
	c.rendered.Store(r)
	return r
}

// AppendJSON appends the container as a JSON object.
func (c *Container) AppendJSON(b []byte) []byte { return append(b, c.render().json...) }

// Label is how a table names a container: pod/name in a pod, else its name, else its short id;
// "-" for none (the host).
func (c *Container) Label() string {
	if c == nil {
		return "-"
	}
	return c.render().label
}

// Resolver attributes events to containers.
type Resolver interface {
	// Actor returns the container of the task a header describes, or nil for the host.
	Actor(h *Raw) *Container
	// Owner returns the container a namespace belongs to, or nil.
	Owner(t NSType, inode uint32) *Container
	// Cgroup returns the container a cgroup belongs to by its path (in any hierarchy), or nil.
	Cgroup(path string) *Container
}

// Networks is a Resolver that also remembers the pod a CNI ADD named for a network namespace: the
// cni gadget tells it when both run in one process (the agent), and netns's created event, which
// comes before the pod's sandbox is known, takes its pod from there.
type Networks interface {
	// AddNetwork records that an ADD started at at for the namespace of this inode, for the pod
	// (and sandbox id) c names.
	AddNetwork(inode uint32, at time.Time, c *Container)
	// Network returns the pod of the namespace of this inode from an ADD started at or after
	// since (a namespace's inode is reused once it is freed: an older ADD was another's), or nil.
	Network(inode uint32, since time.Time) *Container
}

// Proc is the task that caused the event.
type Proc struct {
	PID  uint32 `json:"pid"`
	TID  uint32 `json:"tid"`
	PPID uint32 `json:"ppid"`
	UID  uint32 `json:"uid"`
	GID  uint32 `json:"gid"`
	Comm string `json:"comm"`
}

// Namespaces are the inode numbers of the actor's namespaces and its cgroup v2 id.
type Namespaces struct {
	Mnt      uint32 `json:"mnt"`
	Net      uint32 `json:"net"`
	PID      uint32 `json:"pid"`
	User     uint32 `json:"user"`
	UTS      uint32 `json:"uts"`
	IPC      uint32 `json:"ipc"`
	Cgroup   uint32 `json:"cgroup"`
	Time     uint32 `json:"time"`
	CgroupID uint64 `json:"cgroup_id"`
}

// Raw is the header as the kernel wrote it; every gadget's generated header converts to it.
type Raw = header.HeaderGwHeader

// Decoder fills headers from the kernel's, reusing what it can: command names are interned, so
// that decoding allocates nothing in the steady state. It is not safe for concurrent use.
type Decoder struct {
	Clock    Clock
	Resolver Resolver // nil: no attribution
	comms    map[comm]string
}

type comm = [len(Raw{}.Comm)]int8

// maxComms bounds the interned command names; the table starts over when full.
const maxComms = 4096

// Decode fills dst from the kernel's header h, for an event of the given type and kind.
func (d *Decoder) Decode(dst *Header, typ, kind string, h *Raw) {
	*dst = Header{
		Time: d.Clock.Wall(h.TsBootNs),
		Type: typ,
		Kind: kind,
		Proc: Proc{PID: h.Pid, TID: h.Tid, PPID: h.Ppid, UID: h.Uid, GID: h.Gid, Comm: d.Comm(h.Comm)},
		NS: Namespaces{
			Mnt:      h.Ns[header.HeaderGwNsGW_NS_MNT],
			Net:      h.Ns[header.HeaderGwNsGW_NS_NET],
			PID:      h.Ns[header.HeaderGwNsGW_NS_PID],
			User:     h.Ns[header.HeaderGwNsGW_NS_USER],
			UTS:      h.Ns[header.HeaderGwNsGW_NS_UTS],
			IPC:      h.Ns[header.HeaderGwNsGW_NS_IPC],
			Cgroup:   h.Ns[header.HeaderGwNsGW_NS_CGROUP],
			Time:     h.Ns[header.HeaderGwNsGW_NS_TIME],
			CgroupID: h.CgroupId,
		},
	}
	if d.Resolver != nil {
		dst.Container = d.Resolver.Actor(h)
	}
}

// Comm returns a command name the kernel wrote, interned.
func (d *Decoder) Comm(c comm) string {
	if s, ok := d.comms[c]; ok {
		return s
	}
	if d.comms == nil || len(d.comms) >= maxComms {
		d.comms = make(map[comm]string, 64)
	}
	s := CString(c[:])
	d.comms[c] = s
	return s
}

// ActorMemo keeps how the last header's proc and ns objects were written, for the next header of
// the same task (encode.Memo). Apart, since a task that changes namespaces (the storm of the
// README's streaming figures: an unshare per event) keeps its proc object. The zero value is
// ready; one serves one writer.
type ActorMemo struct {
	proc encode.Memo[Proc]
	ns   encode.Memo[Namespaces]
}

// AppendJSON appends the header's members to an object being written. memo is the writer's: the
// proc and ns objects of the task it saw last are copied from it.
func (h *Header) AppendJSON(j *encode.JSON, memo *ActorMemo) {
	j.Time("time", h.Time)
	j.String("type", h.Type)
	j.OmitEmpty("kind", h.Kind)
	memo.proc.Append(j, h.Proc, h.appendProc)
	memo.ns.Append(j, h.NS, h.appendNS)
	if h.Container != nil {
		j.Key("container")
		j.B = h.Container.AppendJSON(j.B)
	}
}

func (h *Header) appendProc(j *encode.JSON) {
	j.ObjectKey("proc")
	j.Uint("pid", uint64(h.Proc.PID))
	j.Uint("tid", uint64(h.Proc.TID))
	j.Uint("ppid", uint64(h.Proc.PPID))
	j.Uint("uid", uint64(h.Proc.UID))
	j.Uint("gid", uint64(h.Proc.GID))
	j.String("comm", h.Proc.Comm)
	j.End()
}

func (h *Header) appendNS(j *encode.JSON) {
	j.ObjectKey("ns")
	n := &h.NS
	j.Uint("mnt", uint64(n.Mnt))
	j.Uint("net", uint64(n.Net))
	j.Uint("pid", uint64(n.PID))
	j.Uint("user", uint64(n.User))
	j.Uint("uts", uint64(n.UTS))
	j.Uint("ipc", uint64(n.IPC))
	j.Uint("cgroup", uint64(n.Cgroup))
	j.Uint("time", uint64(n.Time))
	j.Uint("cgroup_id", n.CgroupID)
	j.End()
}

// Clock converts the kernel's boot-time nanoseconds (which keep counting across suspend) to
// wall-clock time.
type Clock struct{ offset int64 }

// NewClock measures the offset between wall-clock and boot time now.
func NewClock() Clock {
	var ts unix.Timespec
	// CLOCK_BOOTTIME always exists on the kernels ghostwatch supports.
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return Clock{offset: time.Now().UnixNano() - ts.Nano()}
}

// Wall returns the wall-clock time of a boot-time timestamp.
func (c Clock) Wall(bootNs uint64) time.Time {
	return time.Unix(0, c.offset+int64(bootNs))
}

// ErrnoName names a negative errno return ("EBADF"), or returns "" for success. Names are the
// kernel's: x/sys calls 95 ENOTSUP, an alias user space has; the kernel returns EOPNOTSUPP.
func ErrnoName(ret int64) string {
	if ret >= 0 {
		return ""
	}
	if ret == -int64(unix.EOPNOTSUPP) {
		return "EOPNOTSUPP"
	}
	if name := unix.ErrnoName(unix.Errno(-ret)); name != "" {
		return name
	}
	return "errno " + itoa(-ret)
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// CheckLayout reports whether t, a gadget's generated copy of struct gw_header, has the layout of
// Raw, so that a pointer to one may be read as the other: the same size, and the same fields with
// the same names, offsets, sizes and kinds. The shared gadget tests call it for every event kind.
func CheckLayout(t reflect.Type) error {
	want := reflect.TypeFor[Raw]()
	if t.Size() != want.Size() || t.NumField() != want.NumField() {
		return fmt.Errorf("%v: %d bytes in %d fields, gw_header has %d bytes in %d", t, t.Size(), t.NumField(), want.Size(), want.NumField())
	}
	for i := range t.NumField() {
		a, b := t.Field(i), want.Field(i)
		if a.Name != b.Name || a.Offset != b.Offset || a.Type.Size() != b.Type.Size() || a.Type.Kind() != b.Type.Kind() {
			return fmt.Errorf("%v: field %d is %s (%v, %d bytes) at %d, gw_header has %s (%v, %d bytes) at %d", t, i,
				a.Name, a.Type.Kind(), a.Type.Size(), a.Offset, b.Name, b.Type.Kind(), b.Type.Size(), b.Offset)
		}
	}
	return nil
}

// CString returns the NUL-terminated string at the start of b (no allocation when it is empty).
func CString(b []int8) string {
	return string(cBytes(b))
}

// cBytes is the NUL-terminated string at the start of b, as bytes, without copying.
func cBytes(b []int8) []byte {
	n := 0
	for n < len(b) && b[n] != 0 {
		n++
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// Strings interns the strings records carry (paths, file names), so that decoding one seen lately
// allocates nothing. The zero value is ready; it is not safe for concurrent use.
type Strings struct{ m map[string]string }

// maxStrings bounds an interning table; it starts over when full.
const maxStrings = 4096

// Get returns the NUL-terminated string at the start of b, interned.
func (s *Strings) Get(b []int8) string {
	key := cBytes(b)
	if v, ok := s.m[string(key)]; ok { // the lookup does not copy key
		return v
	}
	if s.m == nil || len(s.m) >= maxStrings {
		s.m = make(map[string]string, 64)
	}
	v := string(key)
	s.m[v] = v
	return v
}
