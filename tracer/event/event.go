// Package event holds what every gadget's events share: the header captured in the kernel (actor,
// namespaces, cgroup) decoded into its JSON form, namespace type names, and errno names.
package event

import (
	"fmt"
	"reflect"
	"time"

	"github.com/ghostwatch/ghostwatch/gen/header"
	"golang.org/x/sys/unix"
)

// Header is the common part of every event, as documented in the README's JSON schema.
type Header struct {
	Time      time.Time  `json:"time"`
	Type      string     `json:"type"`
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
}

// Resolver attributes events to containers.
type Resolver interface {
	// Actor returns the container of the task a header describes, or nil for the host.
	Actor(h *Raw) *Container
	// Owner returns the container a namespace belongs to, or nil.
	Owner(t NSType, inode uint32) *Container
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

// Decode turns the kernel's header into its JSON form, attributing it with r if not nil.
func Decode(typ string, h *Raw, clock Clock, r Resolver) Header {
	var c *Container
	if r != nil {
		c = r.Actor(h)
	}
	return Header{
		Container: c,
		Time:      clock.Wall(h.TsBootNs),
		Type:      typ,
		Proc:      Proc{PID: h.Pid, TID: h.Tid, PPID: h.Ppid, UID: h.Uid, GID: h.Gid, Comm: CString(h.Comm[:])},
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
}

// CString returns the NUL-terminated string at the start of b.
func CString(b []int8) string {
	buf := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		buf = append(buf, byte(c))
	}
	return string(buf)
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

// ErrnoName names a negative errno return ("EBADF"), or returns "" for success.
func ErrnoName(ret int64) string {
	if ret >= 0 {
		return ""
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
// Raw, so that a pointer to one may be read as the other. Each gadget's tests call it.
func CheckLayout(t reflect.Type) error {
	want := reflect.TypeFor[Raw]()
	if t.Size() != want.Size() || t.NumField() != want.NumField() {
		return fmt.Errorf("%v: %d bytes in %d fields, gw_header has %d in %d", t, t.Size(), t.NumField(), want.Size(), want.NumField())
	}
	for i := range t.NumField() {
		a, b := t.Field(i), want.Field(i)
		if a.Name != b.Name || a.Offset != b.Offset || a.Type.Size() != b.Type.Size() || a.Type.Kind() != b.Type.Kind() {
			return fmt.Errorf("%v: field %d is %s at %d, gw_header has %s at %d", t, i, a.Name, a.Offset, b.Name, b.Offset)
		}
	}
	return nil
}
