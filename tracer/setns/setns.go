// Package setns traces namespace entry and creation: setns (with an nsfs fd or a pidfd), unshare,
// and clone/clone3 with CLONE_NEW* flags, with the target namespace inodes resolved in the kernel.
package setns

import (
	gencni "github.com/ghostwatch/ghostwatch/gen/cni"
	gen "github.com/ghostwatch/ghostwatch/gen/setns"
	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
)

// Type is the event type and the name of the gadget object in JSON.
const Type = "setns"

// Hook names, as shown by doctor and in the summary.
const (
	HookSyscalls = "syscalls"
	HookFork     = "clone-child"
	HookCommit   = "commit"
	HookExec     = "exec"
	HookExit     = "exit"
)

// Gadget describes the setns gadget.
var Gadget = gadget.Descriptor{
	Name:     Type,
	Summary:  "namespace entry and creation: setns (nsfs fd or pidfd), unshare, clone/clone3 with CLONE_NEW*",
	Load:     gen.LoadSetns,
	Features: []kernel.Feature{kernel.TaskBTF},
	Hooks: []attach.Hook{
		{Name: HookSyscalls, Candidates: [][]string{{
			gen.SetnsProgSetnsEnter, gen.SetnsProgSetnsExit,
			gen.SetnsProgUnshareEnter, gen.SetnsProgUnshareExit,
			gen.SetnsProgCloneEnter, gen.SetnsProgCloneExit,
			gen.SetnsProgClone3Enter, gen.SetnsProgClone3Exit,
		}}},
		// Where a clone's child lands: its namespaces are the new ones.
		{Name: HookFork, Candidates: [][]string{{gen.SetnsProgForkBtf}, {gen.SetnsProgForkRaw}}},
		// The nsproxy the kernel installs; without it the caller's namespaces are read at exit.
		{Name: HookCommit, Candidates: [][]string{{gen.SetnsProgCommitFentry}, {gen.SetnsProgCommitKprobe}},
			Without: "the targets of unshare are read from the caller's namespaces at syscall exit, which gives the same inodes; setns targets always come from the fd at entry"},
		// Execs and exits: runtimes' arguments, taken as they exec (the container and exec id of
		// an entry), and what a process that entered runs first, or its exit without exec.
		{Name: HookExec, Candidates: [][]string{
			{gen.SetnsProgExecveEnter, gen.SetnsProgExecveExit, gen.SetnsProgExecveatEnter, gen.SetnsProgExecveatExit}},
			Without: "a runtime's entries have no class (start, exec, debug), and there are no then events"},
		{Name: HookExit, Candidates: [][]string{{gen.SetnsProgExitBtf}, {gen.SetnsProgExitRaw}},
			Without: "no then event for a process that exits without a successful exec"},
	},
	Kinds: []gadget.Kind{gadget.NewKind[gen.SetnsEvent, Event]("call", uint32(gen.SetnsSetnsKindSETNS_CALL),
		gadget.Field{Name: "syscall", Meaning: "`setns`, `unshare`, `clone` or `clone3`"},
		gadget.Field{Name: "flags", Meaning: "setns: the `nstype` argument; others: the clone flags"},
		gadget.Field{Name: "ns_types", Meaning: "the namespace types involved: for an nsfs fd, the type of the namespace behind it (whatever `nstype` says); otherwise those in the flags"},
		gadget.Field{Name: "fd`, `fd_kind", Meaning: "setns only: the fd, and what it was: `nsfs` (a `/proc/PID/ns/*` file or a bind mount of one), `pidfd`, `other` (the kernel answers EINVAL), `bad` (not open: EBADF)"},
		gadget.Field{Name: "target_pid", Meaning: "the process a pidfd refers to, or a clone's child"},
		gadget.Field{Name: "targets", Meaning: "for each type in `ns_types`, the inode of the namespace entered or created; 0 when there is none (bad fd, failed unshare/clone). For `pid` and `time` after unshare or clone, the namespace the caller's children get, as in `/proc/PID/ns/pid_for_children`"},
		gadget.Field{Name: "target_container", Meaning: "the container that owns the target namespaces (same fields as `container`); absent when none does (the host's, or a namespace of no known container)"},
		gadget.Field{Name: "entry", Meaning: "how the actor came, when it enters a container or is a runtime or CNI plugin ([entry classes](#entry-classes)): `class` (`start`, `exec`, `debug`, `nsenter`, `cni`, `agent`), `heuristic` and `why` (a `debug` is a guess from signs, named there), `container` (start, debug, exec: the container the runtime creates or runs a process in, from its arguments), `exec_id` (exec), `ancestry` (the actor's parent first, up to 4: `pid`, `comm`)"},
		gadget.Field{Name: "result", Meaning: "`ok`, or the errno name (`EBADF`, `EINVAL`, `EPERM`, ...)"},
		gadget.Field{Name: "ret", Meaning: "the raw return value: 0, the child pid for clone, or `-errno`"},
	),
		gadget.NewKind[gen.SetnsThenEvent, Then]("then", uint32(gen.SetnsSetnsKindSETNS_THEN),
			gadget.Field{Name: "entered_at`, `entered_by", Meaning: "the `time` and `proc.tid` of the `call` event (a successful setns: the last, when a thread makes several in a row, as runc does) that began the session: what its process, or the child it forked, did first after entering"},
			gadget.Field{Name: "exec", Meaning: "true: an exec, whose result follows; false: the process exited without one (runc and crun look the command up themselves, so a missing one is an exit)"},
			gadget.Field{Name: "file`, `argv", Meaning: "the path as passed to execve, and the first 6 arguments (47 bytes of each)"},
			gadget.Field{Name: "result`, `ret", Meaning: "`ok` or the errno name (`ENOENT`: not found) and `-errno`: the first exec that succeeded, else the last that failed (execvp tries each PATH directory); `exit` without exec"},
			gadget.Field{Name: "exit_code", Meaning: "without exec: the kernel's exit code (status << 8, or the signal)"},
		)},
	Columns: []encode.Column{{Name: "SYSCALL", Width: 7}, {Name: "FD", Width: 9}, {Name: "TARGETS", Width: 36},
		{Name: "TARGET CONTAINER", Width: 16}, {Name: "ENTRY", Width: 24}, {Name: "RESULT"}},
	Selftest:     gadget.Selftest{Command: []string{"unshare", "--uts", "true"}},
	NewProcessor: newEntries,
}

// New loads and attaches the gadget; Close undoes it. r, if not nil, attributes events to
// containers. Its events are calls (*Event) and what followed an entry (*Then).
func New(f gadget.Filter, r event.Resolver) (*gadget.Tracer[gadget.Event], error) {
	return gadget.OpenTracer[gadget.Event](&Gadget, gadget.Options{Filter: f}, r)
}

// Event is one namespace call.
type Event struct {
	event.Header
	Setns Details `json:"setns"`
	fd    int32   // what Setns.FD points at
	signs signs   // what classifies Setns.Entry (the processor does)
}

// Details is the gadget-specific part of an event.
type Details struct {
	Syscall string `json:"syscall"` // setns, unshare, clone, clone3
	// Flags is nstype for setns, the clone flags otherwise.
	Flags   uint64   `json:"flags"`
	NSTypes []string `json:"ns_types"`
	FD      *int32   `json:"fd,omitempty"`      // setns only
	FDKind  string   `json:"fd_kind,omitempty"` // nsfs, pidfd, other, bad
	// TargetPID is the process a pidfd refers to, or a clone's child.
	TargetPID uint32 `json:"target_pid,omitempty"`
	// Targets holds, for each namespace type involved, the inode entered or created (0 if
	// unknown, e.g. a bad fd or a failed unshare).
	Targets event.NSInodes `json:"targets"`
	// TargetContainer owns the target namespaces (absent: none, or the host's).
	TargetContainer *event.Container `json:"target_container,omitempty"`
	// Entry says how the actor came (nil: no entry into a container).
	Entry  *Entry `json:"entry,omitempty"`
	Result string `json:"result"` // "ok" or the errno name
	Ret    int64  `json:"ret"`
}

var syscallNames = map[gen.SetnsSetnsSyscall]string{
	gen.SetnsSetnsSyscallSYSCALL_SETNS:   "setns",
	gen.SetnsSetnsSyscallSYSCALL_UNSHARE: "unshare",
	gen.SetnsSetnsSyscallSYSCALL_CLONE:   "clone",
	gen.SetnsSetnsSyscallSYSCALL_CLONE3:  "clone3",
}

var fdKindNames = map[gen.SetnsSetnsFdKind]string{
	gen.SetnsSetnsFdKindFD_NSFS:  "nsfs",
	gen.SetnsSetnsFdKindFD_PIDFD: "pidfd",
	gen.SetnsSetnsFdKindFD_OTHER: "other",
	gen.SetnsSetnsFdKindFD_BAD:   "bad",
}

// Targets is the container that owns the namespaces entered or created.
func (ev *Event) Targets(dst []*event.Container) []*event.Container {
	return append(dst, ev.Setns.TargetContainer)
}

// Decode fills the event from a kernel record.
func (ev *Event) Decode(rec *gen.SetnsEvent, h *event.Header, r event.Resolver) {
	ev.Header = *h
	ev.Setns = Details{
		Syscall:   syscallNames[rec.Syscall],
		Flags:     rec.Flags,
		NSTypes:   event.NSNames(uint64(rec.NsMask)),
		TargetPID: rec.TargetPid,
		Result:    "ok",
		Ret:       rec.Ret,
	}
	if rec.Syscall == gen.SetnsSetnsSyscallSYSCALL_SETNS {
		ev.fd = rec.Fd
		ev.Setns.FD = &ev.fd
		ev.Setns.FDKind = fdKindNames[rec.FdKind]
	}
	if rec.Ret < 0 {
		ev.Setns.Result = event.ErrnoName(rec.Ret)
	}
	for _, ty := range event.NSTypes {
		if uint64(rec.NsMask)&ty.Flag == 0 {
			continue
		}
		inode := rec.Target[ty.Index]
		ev.Setns.Targets.Set(ty, inode)
		// The first type, in index order (mnt, net, pid, ...), that a container owns names it.
		if r != nil && ev.Setns.TargetContainer == nil && inode != 0 {
			ev.Setns.TargetContainer = r.Owner(ty, inode)
		}
	}
	ev.signs = signs{ancestry: rec.Ancestry, exeDir: gencni.CniInodeKey{Ino: rec.ExeDirIno, Dev: rec.ExeDirDev},
		runtimePid: rec.RuntimePid, runtimeStart: rec.RuntimeStart}
}

// Head returns the common part.
func (ev *Event) Head() *event.Header { return &ev.Header }

// Clone returns a copy that later decoding leaves alone.
func (ev *Event) Clone() gadget.Event {
	c := *ev
	if c.Setns.FD != nil {
		c.Setns.FD = &c.fd
	}
	return &c
}

// AppendJSON appends the setns object.
func (ev *Event) AppendJSON(j *encode.JSON) {
	d := &ev.Setns
	j.Object()
	j.String("syscall", d.Syscall)
	j.Uint("flags", d.Flags)
	j.Strings("ns_types", d.NSTypes)
	if d.FD != nil {
		j.Int("fd", int64(*d.FD))
	}
	j.OmitEmpty("fd_kind", d.FDKind)
	if d.TargetPID != 0 {
		j.Uint("target_pid", uint64(d.TargetPID))
	}
	j.Key("targets")
	d.Targets.AppendJSON(j)
	if d.TargetContainer != nil {
		j.Key("target_container")
		j.B = d.TargetContainer.AppendJSON(j.B)
	}
	if d.Entry != nil {
		d.Entry.appendJSON(j)
	}
	j.String("result", d.Result)
	j.Int("ret", d.Ret)
	j.End()
}

// AppendRow appends SYSCALL, FD, TARGETS, TARGET CONTAINER, ENTRY and RESULT.
func (ev *Event) AppendRow(r *encode.Row) {
	d := &ev.Setns
	r.Cell(d.Syscall)
	r.Begin()
	if d.FD != nil {
		r.Int(int64(*d.FD))
		r.Str("/")
		r.Str(d.FDKind)
	} else {
		r.Str("-")
	}
	r.Begin()
	if len(d.NSTypes) == 0 {
		r.Str("-")
	}
	first := true
	for _, ty := range event.NSTypes {
		if d.Targets.Mask&ty.Flag == 0 {
			continue
		}
		if !first {
			r.Str(",")
		}
		first = false
		r.Str(ty.Name)
		r.Str(":")
		r.Uint(uint64(d.Targets.Inode[ty.Index]))
	}
	r.Cell(d.TargetContainer.Label())
	r.Begin()
	d.Entry.appendCell(r, ev.Proc.Comm)
	r.Begin()
	if d.Ret > 0 {
		r.Str("ok (child ")
		r.Int(d.Ret)
		r.Str(")")
	} else {
		r.Str(d.Result)
	}
}
