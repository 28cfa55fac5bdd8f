// Package devices traces the device cgroup: writes of v1 rules (devices.allow, devices.deny) with
// the kernel's rule lists before and after, attach and detach of v2 device programs with their
// rules decoded, each EPERM on a device node joined to the change (or the policy) behind it, and
// windows in which devices that were allowed were not.
package devices

import (
	"strconv"
	"strings"

	gen "github.com/ghostwatch/ghostwatch/gen/devices"
	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
)

// Type is the gadget's name and the name of its object in JSON.
const Type = "devices"

// Hook names.
const (
	HookRule    = "rule"
	HookProgram = "program"
	HookDenied  = "denied"
)

// Gadget describes the devices gadget.
var Gadget = gadget.Descriptor{
	Name:     Type,
	Summary:  "device cgroup rule writes (v1) and device programs (v2) with their rules, deny windows, and each EPERM on a device node joined to the change or policy behind it",
	Load:     gen.LoadDevices,
	Features: []kernel.Feature{kernel.TaskBTF, kernel.TaskPtRegs, kernel.RdonlyCast},
	Hooks: []attach.Hook{
		// The kernel's parser, with its copy of the rule; else every write(2), filtered by its file.
		{Name: HookRule, Candidates: [][]string{{gen.DevicesProgRuleFentry, gen.DevicesProgRuleFexit}, {gen.DevicesProgRuleEnter, gen.DevicesProgRuleExit}}},
		{Name: HookProgram, Candidates: [][]string{{gen.DevicesProgProgramEnter, gen.DevicesProgProgramExit}}},
		// The device cgroup's verdict itself; else open and mknod returning -EPERM.
		{Name: HookDenied, Candidates: [][]string{{gen.DevicesProgDeniedFexit}, {gen.DevicesProgDeniedExit}}},
	},
	Kinds: []gadget.Kind{
		gadget.NewKind[gen.DevicesRuleEvent, RuleWrite]("rule", uint32(gen.DevicesDevicesKindDEVICES_RULE),
			gadget.Field{Name: "file", Meaning: "`devices.allow` or `devices.deny`"},
			gadget.Field{Name: "written", Meaning: "the rule as written"},
			gadget.Field{Name: "rule", Meaning: "the rule decoded: `type` (`a`, `b`, `c`), `major`, `minor` (`*` for any), `access` (`rwm`), `allow`; or `rule_error` when it does not parse"},
			gadget.Field{Name: "cgroup", Meaning: "the cgroup written to: `id` (its kernfs node in the devices hierarchy), `path`, and `container`, the **target** container that owns it"},
			gadget.Field{Name: "result", Meaning: "`ok` or the errno name (a rejected write is reported too)"},
			gadget.Field{Name: "before`, `after", Meaning: "the rules the kernel held before and after the write: `default` (`allow` or `deny`) and `exceptions` (rules in devices.list form); `truncated` when the list was longer than read"},
			gadget.Field{Name: "removed", Meaning: "rules allowed before and not after"},
		),
		gadget.NewKind[gen.DevicesProgramEvent, ProgramChange]("program", uint32(gen.DevicesDevicesKindDEVICES_PROGRAM),
			gadget.Field{Name: "op", Meaning: "`attach`, `replace` (attach with BPF_F_REPLACE), `link` (BPF_LINK_CREATE) or `detach`"},
			gadget.Field{Name: "program_id`, `replaced_id", Meaning: "the program attached or detached (0: none named), and the one replaced"},
			gadget.Field{Name: "flags", Meaning: "attach flags: `allow_multi`, `allow_override`, `replace`"},
			gadget.Field{Name: "cgroup", Meaning: "the cgroup v2 attached to: `id`, `path`, and the **target** `container`"},
			gadget.Field{Name: "result", Meaning: "`ok` or the errno name"},
			gadget.Field{Name: "rules`, `default", Meaning: "for an attach: the program's rules decoded from its instructions (first match wins) and what it does when none matches; or `not_decoded` saying why"},
		),
		gadget.NewKind[gen.DevicesDeniedEvent, Denied]("denied", uint32(gen.DevicesDevicesKindDEVICES_DENIED),
			gadget.Field{Name: "path", Meaning: "the device node as the syscall named it"},
			gadget.Field{Name: "device", Meaning: "`c 1:9`, `b 8:0`; absent when it could not be found"},
			gadget.Field{Name: "resolved", Meaning: "false when the device could not be found (the path was not in the kernel's dentry cache as the walk at the syscall reads it, and the process was gone before user space could look): the denial is shown all the same"},
			gadget.Field{Name: "access", Meaning: "what was asked: `r`, `w`, `rw` or `m` (mknod)"},
			gadget.Field{Name: "syscall", Meaning: "`openat`, `mknodat`, ..."},
			gadget.Field{Name: "decided_by", Meaning: "`kernel` (the device cgroup's check returned the error) or `syscall` (the syscall returned EPERM on a device node; `how` says what else was checked)"},
			gadget.Field{Name: "how", Meaning: "how the denial was attributed to the device cgroup"},
			gadget.Field{Name: "devices_cgroup", Meaning: "the actor's v1 device cgroup: `id`, `path`"},
			gadget.Field{Name: "cause", Meaning: "the rule write or program attach that removed this access (`time`, `kind` `rule` or `program`, `before_ns`, the writer's `pid` and `comm`, and what it wrote), or kind `policy` when the rules in force never allowed it (`rules`); absent when ghostwatch knows no rule that denies it"},
		),
	},
	Derived: []gadget.Kind{{Name: "window", Fields: []gadget.Field{
		{Name: "cgroup", Meaning: "the cgroup and its target `container`"},
		{Name: "opened`, `closed", Meaning: "when access to devices that were allowed was removed, and when all of it was allowed again (absent while `still_open`)"},
		{Name: "duration_ns", Meaning: "how long it lasted (until stop, for one still open)"},
		{Name: "still_open", Meaning: "true when emitted at stop with the access not restored"},
		{Name: "deny_all", Meaning: "whether the rules allowed no device at all during it"},
		{Name: "opened_by`, `closed_by", Meaning: "the writes that opened and closed it: `pid`, `comm`, `file`, `rule`"},
		{Name: "removed", Meaning: "the rules allowed before it and not during it"},
		{Name: "denied", Meaning: "how many device accesses were refused inside it, and `denied_paths` (the first few)"},
	}}},
	Columns:      []encode.Column{{Name: "KIND", Width: 8}, {Name: "WHAT"}},
	NewProcessor: func(g *gadget.Gadget, _ gadget.Params) (gadget.Processor, error) { return NewJoin(g.Forgot), nil },
	// A cgroup of its own, so that no device of the node is touched.
	Selftest: gadget.Selftest{Command: []string{"sh", "-c",
		`d=/sys/fs/cgroup/devices/gw-selftest-$$ && mkdir $d && echo 'c 1:3 r' > $d/devices.deny; rmdir $d`}},
}

// Cgroup is the cgroup an event is about, and the container that owns it.
type Cgroup struct {
	ID        uint64
	Path      string
	Container *event.Container
}

func (c *Cgroup) decode(p *gen.DevicesCgroupPath, r event.Resolver) {
	c.ID, c.Path, c.Container = p.Id, "", nil
	if p.Id == 0 {
		return
	}
	c.Path = event.CgroupPath(p.Name[:], p.Depth, p.Truncated != 0)
	if r != nil {
		c.Container = r.Cgroup(c.Path)
	}
}

// label names the cgroup in a table: its container, else its path.
func (c *Cgroup) label() string {
	if c.Container != nil {
		return c.Container.Label() + " (" + c.Path + ")"
	}
	return c.Path
}

func (c *Cgroup) appendJSON(j *encode.JSON, key string) {
	j.ObjectKey(key)
	j.Uint("id", c.ID)
	j.String("path", c.Path)
	if c.Container != nil {
		j.Key("container")
		j.B = c.Container.AppendJSON(j.B)
	}
	j.End()
}

// State is a v1 device cgroup's rules as the kernel held them: a default and exceptions to it.
type State struct {
	Read         bool // false: there was no device cgroup to read
	DefaultAllow bool
	Exceptions   []Rule // each allows (default deny) or denies (default allow)
	Truncated    bool
}

// Behaviours of a device cgroup (enum devcg_behavior).
const (
	behaviorAllow = 1
	behaviorDeny  = 2
)

func (s *State) decode(k *gen.DevicesDevcgState) {
	*s = State{Read: k.Behavior != 0, DefaultAllow: k.Behavior == behaviorAllow, Truncated: int(k.Count) > len(k.Ex)}
	for i := 0; i < min(int(k.Count), len(k.Ex)); i++ {
		x := k.Ex[i]
		s.Exceptions = append(s.Exceptions, Rule{Type: int(x.Type), Major: kernelNumber(x.Major),
			Minor: kernelNumber(x.Minor), Access: int(x.Access), Allow: !s.DefaultAllow})
	}
}

// kernelNumber is a major or minor as the kernel keeps it: ~0 is any.
func kernelNumber(n uint32) int64 {
	if n == ^uint32(0) {
		return Any
	}
	return int64(n)
}

func (s *State) clone() State {
	c := *s
	c.Exceptions = append([]Rule(nil), s.Exceptions...)
	return c
}

// Allows says whether the rules let an access of a device through, by the kernel's rules
// (devcgroup_legacy_check_permission): with a default of deny, an exception must cover the whole
// access; with a default of allow, no exception may touch any of it.
func (s *State) Allows(typ int, major, minor int64, access int) bool {
	if !s.Read {
		return true
	}
	for _, x := range s.Exceptions {
		if s.DefaultAllow && x.names(typ, major, minor) && x.Access&access != 0 {
			return false
		}
		if !s.DefaultAllow && x.Matches(typ, major, minor, access) {
			return true
		}
	}
	return s.DefaultAllow
}

// allowsRule says whether every access a rule names is allowed: each access bit by some exception
// (default deny), or none touched by any (default allow).
func (s *State) allowsRule(r Rule) bool {
	if !s.Read {
		return true
	}
	if s.DefaultAllow {
		for _, x := range s.Exceptions {
			if overlap(x, r) {
				return false
			}
		}
		return true
	}
	for bit := 1; bit <= AccWrite; bit <<= 1 {
		if r.Access&bit == 0 {
			continue
		}
		covered := false
		for _, x := range s.Exceptions {
			if x.Access&bit != 0 && x.names(r.Type, r.Major, r.Minor) {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

func overlap(a, b Rule) bool {
	return (a.Type == TypeAll || b.Type == TypeAll || a.Type == b.Type) && (a.Major == Any || b.Major == Any || a.Major == b.Major) &&
		(a.Minor == Any || b.Minor == Any || a.Minor == b.Minor) && a.Access&b.Access != 0
}

// allowed lists what a state allows as rules: its exceptions under a default of deny, everything
// ("a *:* rwm") under a default of allow.
func (s *State) allowed() []Rule {
	if s.DefaultAllow {
		return []Rule{{Type: TypeAll, Major: Any, Minor: Any, Access: AccAll, Allow: true}}
	}
	return s.Exceptions
}

// removed lists the rules before allowed that after does not wholly allow.
func removed(before, after *State) []Rule {
	if !before.Read || !after.Read {
		return nil
	}
	var out []Rule
	for _, r := range before.allowed() {
		if !after.allowsRule(r) {
			out = append(out, r)
		}
	}
	return out
}

// allowsAll says whether a state allows every device, as a new cgroup under the root does.
func (s *State) allowsAll() bool { return s.Read && s.DefaultAllow && len(s.Exceptions) == 0 }

// denyAll says whether a state allows no device at all.
func (s *State) denyAll() bool {
	return s.Read && !s.DefaultAllow && len(s.Exceptions) == 0
}

func (s *State) appendJSON(j *encode.JSON, key string) {
	j.ObjectKey(key)
	if s.DefaultAllow {
		j.String("default", "allow")
	} else {
		j.String("default", "deny")
	}
	j.Key("exceptions")
	appendRules(j, s.Exceptions)
	if s.Truncated {
		j.Bool("truncated", true)
	}
	j.End()
}

func appendRules(j *encode.JSON, rules []Rule) {
	j.B = append(j.B, '[')
	for i, r := range rules {
		if i > 0 {
			j.B = append(j.B, ',')
		}
		j.B = encode.AppendString(j.B, r.String())
	}
	j.B = append(j.B, ']')
}

func rulesText(rules []Rule) string {
	s := make([]string, len(rules))
	for i, r := range rules {
		s[i] = r.String()
		if !r.Allow {
			s[i] = "deny " + s[i]
		}
	}
	return strings.Join(s, ", ")
}

// RuleWrite is a write to devices.allow or devices.deny.
type RuleWrite struct {
	event.Header
	Cgroup    Cgroup
	File      string
	Written   string
	Rule      Rule
	RuleError string // the rule did not parse
	Ret       int64
	Result    string
	Before    State
	After     State
	Removed   []Rule
}

// Decode fills the event from a kernel record.
func (w *RuleWrite) Decode(rec *gen.DevicesRuleEvent, h *event.Header, r event.Resolver) {
	*w = RuleWrite{Header: *h, File: "devices.deny", Ret: rec.Ret, Result: "ok"}
	if rec.Allow != 0 {
		w.File = "devices.allow"
	}
	w.Cgroup.decode(&rec.Cgroup, r)
	n := max(min(int(rec.Len), len(rec.Rule)-1), 0)
	w.Written = strings.TrimRight(event.CString(rec.Rule[:n]), "\n")
	var err error
	if w.Rule, err = ParseRule(w.Written, rec.Allow != 0); err != nil {
		w.RuleError = err.Error()
	}
	if rec.Ret < 0 {
		w.Result = event.ErrnoName(rec.Ret)
	}
	w.Before.decode(&rec.Before)
	w.After.decode(&rec.After)
	w.Removed = removed(&w.Before, &w.After)
}

// Head returns the common part.
func (w *RuleWrite) Head() *event.Header { return &w.Header }

// Targets is the container whose cgroup was written to.
func (w *RuleWrite) Targets(dst []*event.Container) []*event.Container {
	return append(dst, w.Cgroup.Container)
}

// Clone returns a copy.
func (w *RuleWrite) Clone() gadget.Event {
	d := *w
	d.Before, d.After = w.Before.clone(), w.After.clone()
	d.Removed = append([]Rule(nil), w.Removed...)
	return &d
}

// AppendJSON appends the devices object of a rule write.
func (w *RuleWrite) AppendJSON(j *encode.JSON) {
	j.Object()
	j.String("file", w.File)
	j.String("written", w.Written)
	if w.RuleError != "" {
		j.String("rule_error", w.RuleError)
	} else {
		appendRule(j, "rule", w.Rule)
	}
	w.Cgroup.appendJSON(j, "cgroup")
	j.String("result", w.Result)
	if w.Before.Read {
		w.Before.appendJSON(j, "before")
		w.After.appendJSON(j, "after")
		j.Key("removed")
		appendRules(j, w.Removed)
	}
	j.End()
}

func appendRule(j *encode.JSON, key string, r Rule) {
	j.ObjectKey(key)
	j.String("type", TypeLetter(r.Type))
	j.String("major", number(r.Major))
	j.String("minor", number(r.Minor))
	j.String("access", AccessString(r.Access))
	j.Bool("allow", r.Allow)
	j.End()
}

// AppendRow appends "rule" and a sentence.
func (w *RuleWrite) AppendRow(r *encode.Row) {
	r.Cell("rule")
	r.Begin()
	r.Str(w.File)
	r.Str(" ")
	r.Str(strconv.Quote(w.Written))
	r.Str(" on ")
	r.Str(w.Cgroup.label())
	r.Str(": ")
	r.Str(w.Result)
	if len(w.Removed) > 0 {
		r.Str("; removed ")
		r.Str(rulesText(w.Removed))
	}
	if w.After.denyAll() {
		r.Str("; now no device is allowed")
	}
}
