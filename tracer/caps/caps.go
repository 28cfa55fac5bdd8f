// Package caps traces capabilities: each check with its verdict, capset, and for an exec of a
// file with file capabilities whether the kernel applied them and, when not, why; a denied check
// is joined to the exec that explains it.
package caps

import (
	"github.com/cilium/ebpf"

	gen "github.com/ghostwatch/ghostwatch/gen/caps"
	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
)

// Type is the gadget's name and the name of its object in JSON.
const Type = "caps"

// Hook names.
const (
	HookCheck  = "check"
	HookCapset = "capset"
	HookExec   = "exec"
)

// Options.
const (
	ParamDenied = "denied"
	ParamUnique = "unique"
	ParamCapset = "capset"
)

// Gadget describes the caps gadget.
var Gadget = gadget.Descriptor{
	Name:     Type,
	Summary:  "capability checks with their verdict, capset, and whether an exec's file capabilities were applied, and why not",
	Load:     gen.LoadCaps,
	Features: []kernel.Feature{kernel.TaskBTF, kernel.TaskPtRegs},
	Hooks: []attach.Hook{
		// fexit sees cap_capable's options (audit or not); the tracepoint (6.14+) does not.
		{Name: HookCheck, Candidates: [][]string{{gen.CapsProgCheckFexit}, {gen.CapsProgCheckBtf}, {gen.CapsProgCheckKprobe, gen.CapsProgCheckKretprobe}}},
		// The syscall tracepoints cost every syscall of the node (~50 ns here): last resort.
		{Name: HookCapset, Candidates: [][]string{{gen.CapsProgCapsetFexit}, {gen.CapsProgCapsetEnter, gen.CapsProgCapsetExit}}},
		// After begin_new_exec installed the new credentials, with the binprm.
		{Name: HookExec, Candidates: [][]string{{gen.CapsProgExecBtf}}},
	},
	Kinds: []gadget.Kind{
		gadget.NewKind[gen.CapsCheckEvent, Check]("check", uint32(gen.CapsCapsKindCAPS_CHECK),
			gadget.Field{Name: "cap", Meaning: "the capability checked, e.g. `CAP_NET_BIND_SERVICE`"},
			gadget.Field{Name: "verdict", Meaning: "`allowed` or `denied`"},
			gadget.Field{Name: "syscall", Meaning: "the syscall in progress (`bind`), or `-` outside one"},
			gadget.Field{Name: "user_ns", Meaning: "the user namespace checked against (inode)"},
			gadget.Field{Name: "own_user_ns", Meaning: "whether that is the actor's own user namespace"},
			gadget.Field{Name: "audit", Meaning: "`audit`, `noaudit` (a probe, e.g. `ns_capable_noaudit`), or `unknown` where the attach point does not say (the 6.14+ tracepoint)"},
			gadget.Field{Name: "cause", Meaning: "for a denied check: the earlier exec of this process (or its parent) whose file capabilities, including this one, were not applied: its `time`, `kind`, `before_ns`, `pid`, `comm`, `file`, `ignored_because`; absent when there is none"},
		),
		gadget.NewKind[gen.CapsCapsetEvent, Capset]("capset", uint32(gen.CapsCapsKindCAPS_CAPSET),
			gadget.Field{Name: "result", Meaning: "`ok` or the errno name"},
			gadget.Field{Name: "old`, `new", Meaning: "the sets before and after: `effective`, `permitted`, `inheritable` (lists of names), and `ambient` and `bounding` when they changed"},
			gadget.Field{Name: "added`, `dropped", Meaning: "capabilities that appeared in, or left, any set"},
		),
		gadget.NewKind[gen.CapsExecEvent, Exec]("exec", uint32(gen.CapsCapsKindCAPS_EXEC),
			gadget.Field{Name: "file", Meaning: "the path as exec'd"},
			gadget.Field{Name: "xattr", Meaning: "`security.capability` decoded: `version` (1, 2, 3), `rootid` (v3), `permitted`, `inheritable`, `effective`; read from the exec'd file itself (its device and inode checked), never by trusting a path"},
			gadget.Field{Name: "installed", Meaning: "the credentials the kernel installed: `permitted`, `effective`, `inheritable`, `ambient`, `bounding`, `euid`"},
			gadget.Field{Name: "applied", Meaning: "whether every capability the file grants is in the installed permitted set (and effective set, for an effective file): the kernel's result, not a prediction"},
			gadget.Field{Name: "missing", Meaning: "the file's capabilities that were not installed"},
			gadget.Field{Name: "ignored_because", Meaning: "when not applied: `rootid`, `nosuid`, `bounding_set`, `no_new_privs`, `setuid_root` or `unknown`, diagnosed from the kernel's rules"},
			gadget.Field{Name: "user_ns`, `rootid_maps_to", Meaning: "for `rootid`: the actor's user namespace, and the uid the xattr's rootid is there (absent: it maps to none)"},
			gadget.Field{Name: "explanation", Meaning: "one line a person can act on"},
			gadget.Field{Name: "xattr_error", Meaning: "when the file's xattr could not be read (the process exited and the path means another file here): why; the exec is reported since it may have had file capabilities"},
		),
	},
	HookParams: map[string]string{HookCapset: ParamCapset},
	Columns:    []encode.Column{{Name: "KIND", Width: 7}, {Name: "WHAT"}},
	Params: []gadget.Param{
		{Name: ParamDenied, Default: false, Usage: "only denied checks (applied in the kernel)"},
		{Name: ParamUnique, Default: false, Usage: "each check once per container, capability, verdict and syscall (applied in the kernel)"},
		{Name: ParamCapset, Default: true, Usage: "trace capset; where fexit is refused (6.14+ without it) this uses syscall tracepoints, which slow every syscall of the node: --capset=false avoids that"},
	},
	Configure: func(spec *ebpf.CollectionSpec, p gadget.Params) error {
		if err := spec.Variables[gen.CapsVarDeniedOnly].Set(p.Bool(ParamDenied)); err != nil {
			return err
		}
		return spec.Variables[gen.CapsVarUnique].Set(p.Bool(ParamUnique))
	},
	NewProcessor: func(g *gadget.Gadget, _ gadget.Params) (gadget.Processor, error) { return NewJoin(g.Forgot), nil },
	// unshare(CLONE_NEWUTS) checks CAP_SYS_ADMIN, for root too.
	Selftest: gadget.Selftest{Command: []string{"unshare", "--uts", "true"}},
}

// Check is a capability check.
type Check struct {
	event.Header
	Cap       int32
	Denied    bool
	Syscall   string
	UserNS    uint32
	OwnUserNS bool
	Audit     string
	Cause     *gadget.Cause
}

var auditNames = map[gen.CapsCapsAudit]string{
	gen.CapsCapsAuditAUDIT_UNKNOWN: "unknown", gen.CapsCapsAuditAUDIT_YES: "audit", gen.CapsCapsAuditAUDIT_NO: "noaudit",
}

// Decode fills the event from a kernel record.
func (c *Check) Decode(rec *gen.CapsCheckEvent, h *event.Header, _ event.Resolver) {
	*c = Check{Header: *h, Cap: rec.Cap, Denied: rec.Ret != 0, Syscall: event.SyscallName(rec.Syscall),
		UserNS: rec.TargetNs, OwnUserNS: rec.TargetNs == rec.OwnNs, Audit: auditNames[rec.Audit]}
}

// Head returns the common part.
func (c *Check) Head() *event.Header { return &c.Header }

// Clone returns a copy.
func (c *Check) Clone() gadget.Event { d := *c; return &d }

func (c *Check) verdict() string {
	if c.Denied {
		return "denied"
	}
	return "allowed"
}

// AppendJSON appends the caps object of a check.
func (c *Check) AppendJSON(j *encode.JSON) {
	j.Object()
	j.String("cap", capName(c.Cap))
	j.String("verdict", c.verdict())
	j.String("syscall", c.Syscall)
	j.Uint("user_ns", uint64(c.UserNS))
	j.Bool("own_user_ns", c.OwnUserNS)
	j.String("audit", c.Audit)
	if c.Cause != nil {
		j.Key("cause")
		c.Cause.AppendJSON(j)
	}
	j.End()
}

// AppendRow appends "check" and a sentence.
func (c *Check) AppendRow(r *encode.Row) {
	r.Cell("check")
	r.Begin()
	r.Str(capName(c.Cap))
	r.Str(" ")
	r.Str(c.verdict())
	r.Str(" in ")
	r.Str(c.Syscall)
	if !c.OwnUserNS {
		r.Str(" (user ns ")
		r.Uint(uint64(c.UserNS))
		r.Str(")")
	}
	if c.Cause != nil {
		r.Str("; cause: ")
		r.Str(c.Cause.Label())
	}
}

// Capset is a capset call.
type Capset struct {
	event.Header
	Result   string
	Ret      int64
	Old, New gen.CapsCapSets
}

// Decode fills the event from a kernel record.
func (c *Capset) Decode(rec *gen.CapsCapsetEvent, h *event.Header, _ event.Resolver) {
	*c = Capset{Header: *h, Result: "ok", Ret: rec.Ret, Old: rec.Old, New: rec.New}
	if rec.Ret < 0 {
		c.Result = event.ErrnoName(rec.Ret)
	}
}

// Head returns the common part.
func (c *Capset) Head() *event.Header { return &c.Header }

// Clone returns a copy.
func (c *Capset) Clone() gadget.Event { d := *c; return &d }

func (c *Capset) appendSets(j *encode.JSON, key string, s gen.CapsCapSets) {
	j.ObjectKey(key)
	set(s.Effective).appendJSON(j, "effective")
	set(s.Permitted).appendJSON(j, "permitted")
	set(s.Inheritable).appendJSON(j, "inheritable")
	if c.Old.Ambient != c.New.Ambient {
		set(s.Ambient).appendJSON(j, "ambient")
	}
	if c.Old.Bounding != c.New.Bounding {
		set(s.Bounding).appendJSON(j, "bounding")
	}
	j.End()
}

// changes are the capabilities that appeared in, or left, any set.
func (c *Capset) changes() (added, dropped set) {
	o, n := []uint64{c.Old.Effective, c.Old.Permitted, c.Old.Inheritable, c.Old.Ambient, c.Old.Bounding},
		[]uint64{c.New.Effective, c.New.Permitted, c.New.Inheritable, c.New.Ambient, c.New.Bounding}
	for i := range o {
		added |= set(n[i] &^ o[i])
		dropped |= set(o[i] &^ n[i])
	}
	return added, dropped
}

// AppendJSON appends the caps object of a capset.
func (c *Capset) AppendJSON(j *encode.JSON) {
	j.Object()
	j.String("result", c.Result)
	j.Int("ret", c.Ret)
	c.appendSets(j, "old", c.Old)
	c.appendSets(j, "new", c.New)
	added, dropped := c.changes()
	added.appendJSON(j, "added")
	dropped.appendJSON(j, "dropped")
	j.End()
}

// AppendRow appends "capset" and what changed.
func (c *Capset) AppendRow(r *encode.Row) {
	r.Cell("capset")
	r.Begin()
	added, dropped := c.changes()
	r.Str(c.Result)
	r.Str(": added ")
	r.B = added.appendText(r.B)
	r.Str("; dropped ")
	r.B = dropped.appendText(r.B)
}

// rootNone is UID_NONE: no uid is root in that user namespace (or its map was not read).
const rootNone = 0xffffffff

// initUserNS is the inode of the initial user namespace (PROC_USER_INIT_INO).
const initUserNS = 0xEFFFFFFD

// Exec is an exec of a file with file capabilities (or whose file could not be read).
type Exec struct {
	event.Header
	File     string
	rec      gen.CapsExecEvent // what the kernel said
	Caps     *FileCaps         // nil: not read (XattrError says why)
	XattrErr string
	Applied  bool
	Missing  set
	Because  string
	MapsTo   *uint32 // for rootid: the rootid's uid in the actor's user namespace
	mapsTo   uint32
	Explain  string
	files    event.Strings // kept from record to record: a file run again costs nothing
}

// Decode fills the event from a kernel record; the join reads the file's xattr and diagnoses.
func (e *Exec) Decode(rec *gen.CapsExecEvent, h *event.Header, _ event.Resolver) {
	files := e.files
	*e = Exec{Header: *h, rec: *rec, files: files}
	e.File = e.files.Get(rec.Filename[:])
}

// Head returns the common part.
func (e *Exec) Head() *event.Header { return &e.Header }

// Clone returns a copy.
func (e *Exec) Clone() gadget.Event {
	d := *e
	if d.MapsTo != nil {
		d.MapsTo = &d.mapsTo
	}
	return &d
}

// AppendJSON appends the caps object of an exec.
func (e *Exec) AppendJSON(j *encode.JSON) {
	j.Object()
	j.String("file", e.File)
	if e.Caps != nil {
		j.ObjectKey("xattr")
		j.Int("version", int64(e.Caps.Version))
		if e.Caps.Version == 3 {
			j.Uint("rootid", uint64(e.Caps.RootID))
		}
		e.Caps.Permitted.appendJSON(j, "permitted")
		e.Caps.Inheritable.appendJSON(j, "inheritable")
		j.Bool("effective", e.Caps.Effective)
		j.End()
	} else {
		j.String("xattr_error", e.XattrErr)
	}
	c := e.rec.Caps
	j.ObjectKey("installed")
	set(c.Permitted).appendJSON(j, "permitted")
	set(c.Effective).appendJSON(j, "effective")
	set(c.Inheritable).appendJSON(j, "inheritable")
	set(c.Ambient).appendJSON(j, "ambient")
	set(c.Bounding).appendJSON(j, "bounding")
	j.Uint("euid", uint64(e.rec.Euid))
	j.End()
	if e.Caps != nil {
		j.Bool("applied", e.Applied)
		if !e.Applied {
			e.Missing.appendJSON(j, "missing")
			j.String("ignored_because", e.Because)
			if e.Because == "rootid" {
				j.Uint("user_ns", uint64(e.rec.Userns[0]))
				if e.MapsTo != nil {
					j.Uint("rootid_maps_to", uint64(*e.MapsTo))
				}
			}
			j.String("explanation", e.Explain)
		}
	}
	j.End()
}

// AppendRow appends "exec" and the sentence an operator reads.
func (e *Exec) AppendRow(r *encode.Row) {
	r.Cell("exec")
	r.Begin()
	r.Str(e.File)
	r.Str(": ")
	switch {
	case e.Caps == nil:
		r.Str("file caps unknown: ")
		r.Str(e.XattrErr)
	case e.Applied:
		r.Str("file caps ")
		r.B = e.Caps.Permitted.appendText(r.B)
		r.Str(" applied")
	default:
		r.Str("file caps ")
		r.B = e.Missing.appendText(r.B)
		r.Str(" NOT applied: ")
		r.Str(e.Explain)
	}
}
