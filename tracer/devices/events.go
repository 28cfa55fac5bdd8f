package devices

import (
	"strconv"
	"strings"
	"time"

	gen "github.com/ghostwatch/ghostwatch/gen/devices"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

// bpf() commands and attach flags, as the kernel numbers them.
const (
	cmdProgAttach = 8
	cmdProgDetach = 9
	cmdLinkCreate = 28

	flagAllowOverride = 1 << 0
	flagAllowMulti    = 1 << 1
	flagReplace       = 1 << 2
)

// ProgramChange is an attach or detach of a cgroup v2 device program.
type ProgramChange struct {
	event.Header
	Op         string
	ProgramID  uint32
	ReplacedID uint32
	Flags      uint32
	Cgroup     Cgroup
	Ret        int64
	Result     string
	// Set by the join for an attach: the program's rules, or why they are not known.
	Program    *Program
	NotDecoded string
}

// Decode fills the event from a kernel record.
func (p *ProgramChange) Decode(rec *gen.DevicesProgramEvent, h *event.Header, r event.Resolver) {
	*p = ProgramChange{Header: *h, ProgramID: rec.ProgId, ReplacedID: rec.ReplaceId, Flags: rec.Flags,
		Ret: rec.Ret, Result: "ok"}
	switch {
	case rec.Cmd == cmdProgDetach:
		p.Op = "detach"
	case rec.Cmd == cmdLinkCreate:
		p.Op = "link"
	case rec.Flags&flagReplace != 0:
		p.Op = "replace"
	default:
		p.Op = "attach"
	}
	if rec.Ret < 0 {
		p.Result = event.ErrnoName(rec.Ret)
	}
	p.Cgroup.decode(&rec.Cgroup, r)
}

// Head returns the common part.
func (p *ProgramChange) Head() *event.Header { return &p.Header }

// Targets is the container whose cgroup the program was attached to.
func (p *ProgramChange) Targets(dst []*event.Container) []*event.Container {
	return append(dst, p.Cgroup.Container)
}

// Clone returns a copy; the decoded program is never changed once set, and is shared.
func (p *ProgramChange) Clone() gadget.Event { d := *p; return &d }

func (p *ProgramChange) attaches() bool { return p.Op != "detach" }

func flagNames(f uint32) []string {
	var out []string
	for _, n := range []struct {
		bit  uint32
		name string
	}{{flagAllowOverride, "allow_override"}, {flagAllowMulti, "allow_multi"}, {flagReplace, "replace"}} {
		if f&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// AppendJSON appends the devices object of a program change.
func (p *ProgramChange) AppendJSON(j *encode.JSON) {
	j.Object()
	j.String("op", p.Op)
	j.Uint("program_id", uint64(p.ProgramID))
	if p.ReplacedID != 0 {
		j.Uint("replaced_id", uint64(p.ReplacedID))
	}
	j.Strings("flags", flagNames(p.Flags))
	p.Cgroup.appendJSON(j, "cgroup")
	j.String("result", p.Result)
	switch {
	case p.Program != nil:
		j.Key("rules")
		appendRules(j, p.Program.Rules)
		j.String("default", verdict(p.Program.Default))
	case p.NotDecoded != "":
		j.String("not_decoded", p.NotDecoded)
	}
	j.End()
}

func verdict(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

// AppendRow appends "program" and a sentence.
func (p *ProgramChange) AppendRow(r *encode.Row) {
	r.Cell("program")
	r.Begin()
	r.Str(p.Op)
	r.Str(" id ")
	r.Uint(uint64(p.ProgramID))
	r.Str(" on ")
	r.Str(p.Cgroup.label())
	r.Str(": ")
	r.Str(p.Result)
	switch {
	case p.Program != nil:
		r.Str("; ")
		r.Str(rulesText(p.Program.Rules))
		r.Str("; else ")
		r.Str(verdict(p.Program.Default))
	case p.NotDecoded != "":
		r.Str("; not decoded: ")
		r.Str(p.NotDecoded)
	}
}

// How a denial was decided.
const (
	ByKernel  = "kernel"
	BySyscall = "syscall"
)

// Denied is an access to a device node that was refused.
type Denied struct {
	event.Header
	Path string
	// Known: the device is known (from the device cgroup's check, the kernel's lookup of the path
	// at the syscall, or the path's node); otherwise the denial is shown unresolved.
	Known     bool
	Type      int
	Major     int64
	Minor     int64
	Access    int
	Syscall   string
	DecidedBy string
	How       string
	DevCgroup Cgroup
	Cause     *gadget.Cause
	rec       gen.DevicesDeniedEvent // for the join, which finds the device and decides
	paths     event.Strings          // kept from record to record: a retried path costs nothing
}

// Decode fills the event from a kernel record.
func (d *Denied) Decode(rec *gen.DevicesDeniedEvent, h *event.Header, r event.Resolver) {
	paths := d.paths
	*d = Denied{Header: *h, Syscall: event.SyscallName(rec.Syscall), rec: *rec, paths: paths}
	d.Path = d.paths.Get(rec.Path[:])
	d.DevCgroup.decode(&rec.Devcg, nil) // the actor's own cgroup: its container is the header's
	if rec.Node == gen.DevicesDeniedNodeNODE_DEVICE {
		d.Known = true
		d.Type, d.Major, d.Minor = int(rec.Type), int64(rec.Major), int64(rec.Minor)
	}
	if rec.By == gen.DevicesDeniedByDENIED_BY_KERNEL {
		d.DecidedBy, d.Access = ByKernel, int(rec.Access)
		d.How = "the device cgroup's check (devcgroup_check_permission) refused it"
	} else {
		d.DecidedBy = BySyscall
	}
}

// Head returns the common part.
func (d *Denied) Head() *event.Header { return &d.Header }

// Targets is the container of the device cgroup that refused (the actor's, but for a task moved
// since).
func (d *Denied) Targets(dst []*event.Container) []*event.Container {
	return append(dst, d.DevCgroup.Container)
}

// Clone returns a copy.
func (d *Denied) Clone() gadget.Event { c := *d; return &c }

// Device is "c 1:9", or "" when not known.
func (d *Denied) Device() string {
	if !d.Known {
		return ""
	}
	return TypeLetter(d.Type) + " " + strconv.FormatInt(d.Major, 10) + ":" + strconv.FormatInt(d.Minor, 10)
}

// AppendJSON appends the devices object of a denial.
func (d *Denied) AppendJSON(j *encode.JSON) {
	j.Object()
	j.String("path", d.Path)
	j.OmitEmpty("device", d.Device())
	j.Bool("resolved", d.Known)
	j.String("access", AccessString(d.Access))
	j.String("syscall", d.Syscall)
	j.String("decided_by", d.DecidedBy)
	j.String("how", d.How)
	if d.DevCgroup.ID != 0 {
		d.DevCgroup.appendJSON(j, "devices_cgroup")
	}
	if d.Cause != nil {
		j.Key("cause")
		d.Cause.AppendJSON(j)
	}
	j.End()
}

// AppendRow appends "denied" and a sentence.
func (d *Denied) AppendRow(r *encode.Row) {
	r.Cell("denied")
	r.Begin()
	r.Str(d.Path)
	r.Str(" (")
	if dev := d.Device(); dev != "" {
		r.Str(dev)
		r.Str(" ")
	} else {
		r.Str("device unresolved, ")
	}
	r.Str(AccessString(d.Access))
	r.Str(") in ")
	r.Str(d.Syscall)
	r.Str("; cause: ")
	r.Str(d.Cause.Label())
}

// Writer is who made a change: a rule write's actor and what it wrote.
type Writer struct {
	PID  uint32
	Comm string
	File string
	Rule string
}

func (w *Writer) appendJSON(j *encode.JSON, key string) {
	j.ObjectKey(key)
	j.Uint("pid", uint64(w.PID))
	j.String("comm", w.Comm)
	j.String("file", w.File)
	j.String("rule", w.Rule)
	j.End()
}

// maxWindowPaths bounds the paths a window lists.
const maxWindowPaths = 8

// Window is a time in which devices a cgroup allowed were not allowed. Its header is the opening
// write's, with the time at which it closed (or the stop).
type Window struct {
	event.Header
	Cgroup    Cgroup
	Opened    time.Time
	Closed    time.Time // zero while open
	StillOpen bool
	DenyAll   bool
	OpenedBy  Writer
	ClosedBy  *Writer
	Removed   []Rule
	Denied    int
	Paths     []string
	before    State // what it allowed before: the window closes when all of it is allowed again
}

// Head returns the common part.
func (w *Window) Head() *event.Header { return &w.Header }

// Targets is the container whose access was taken away.
func (w *Window) Targets(dst []*event.Container) []*event.Container {
	return append(dst, w.Cgroup.Container)
}

// Clone returns a copy.
func (w *Window) Clone() gadget.Event {
	d := *w
	d.Paths = append([]string(nil), w.Paths...)
	return &d
}

func (w *Window) duration() time.Duration { return w.Header.Time.Sub(w.Opened) }

// AppendJSON appends the devices object of a window.
func (w *Window) AppendJSON(j *encode.JSON) {
	j.Object()
	w.Cgroup.appendJSON(j, "cgroup")
	j.Time("opened", w.Opened)
	if !w.StillOpen {
		j.Time("closed", w.Closed)
	}
	j.Int("duration_ns", int64(w.duration()))
	j.Bool("still_open", w.StillOpen)
	j.Bool("deny_all", w.DenyAll)
	w.OpenedBy.appendJSON(j, "opened_by")
	if w.ClosedBy != nil {
		w.ClosedBy.appendJSON(j, "closed_by")
	}
	j.Key("removed")
	appendRules(j, w.Removed)
	j.Int("denied", int64(w.Denied))
	j.Strings("denied_paths", w.Paths)
	j.End()
}

// AppendRow appends "window" and the sentence an operator reads:
// "db DENY-ALL WINDOW 312ms by runc (pid 4242): 17 denied opens (/dev/urandom)".
func (w *Window) AppendRow(r *encode.Row) {
	r.Cell("window")
	r.Begin()
	r.Str(w.Cgroup.label())
	if w.DenyAll {
		r.Str(" DENY-ALL WINDOW ")
	} else {
		r.Str(" DENY WINDOW ")
	}
	r.Str(w.duration().Round(time.Millisecond).String())
	if w.StillOpen {
		r.Str(" (still open)")
	}
	r.Str(" by ")
	r.Str(w.OpenedBy.Comm)
	r.Str(" (pid ")
	r.Uint(uint64(w.OpenedBy.PID))
	r.Str("): ")
	r.Int(int64(w.Denied))
	r.Str(" denied")
	if len(w.Paths) > 0 {
		r.Str(" (")
		r.Str(strings.Join(w.Paths, ", "))
		r.Str(")")
	}
}
