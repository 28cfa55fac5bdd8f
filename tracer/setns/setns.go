// Package setns traces namespace entry and creation: setns (with an nsfs fd or a pidfd), unshare,
// and clone/clone3 with CLONE_NEW* flags, with the target namespace inodes resolved in the kernel.
package setns

import (
	"context"
	"fmt"
	"unsafe"

	gen "github.com/ghostwatch/ghostwatch/gen/setns"
	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

// Type is the event type and the name of the gadget object in JSON.
const Type = "setns"

// Hook names, as shown by doctor and in the summary.
const (
	HookSyscalls = "syscalls"
	HookFork     = "clone-child"
	HookCommit   = "commit"
)

// Hooks are the attach points, best first per hook (see DESIGN.md, "Kernel attach strategy").
var Hooks = []attach.Hook{
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
		Without: "targets read from the caller at syscall exit"},
}

// Event is one namespace call.
type Event struct {
	event.Header
	Setns Details `json:"setns"`
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
	// Targets maps each namespace type involved to the inode entered or created (0 if unknown,
	// e.g. a bad fd or a failed unshare).
	Targets map[string]uint32 `json:"targets"`
	// TargetContainer owns the target namespaces (absent: none, or the host's).
	TargetContainer *event.Container `json:"target_container,omitempty"`
	Result          string           `json:"result"` // "ok" or the errno name
	Ret             int64            `json:"ret"`
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

// Tracer is an attached setns gadget.
type Tracer struct {
	*gadget.Gadget
	resolver event.Resolver
}

// New loads and attaches the gadget; Close undoes it. r, if not nil, attributes events to
// containers.
func New(f gadget.Filter, r event.Resolver) (*Tracer, error) {
	spec, err := gen.LoadSetns()
	if err != nil {
		return nil, err
	}
	g, err := gadget.Open(spec, Hooks, f)
	if err != nil {
		return nil, err
	}
	return &Tracer{g, r}, nil
}

// Run calls emit for each event until ctx is done. onLost is told the running total of drops.
func (t *Tracer) Run(ctx context.Context, emit func(*Event), onLost func(uint64)) error {
	clock := t.Clock()
	var decodeErr error
	err := t.Gadget.Run(ctx, func(raw []byte) {
		ev, err := Decode(raw, clock, t.resolver)
		if err != nil {
			decodeErr = err
			return
		}
		emit(ev)
	}, onLost)
	if err == nil {
		err = decodeErr
	}
	return err
}

// Decode turns a raw ring-buffer record into an Event, attributed with r if not nil.
func Decode(raw []byte, clock event.Clock, r event.Resolver) (*Event, error) {
	var rec *gen.SetnsEvent
	if len(raw) < int(unsafe.Sizeof(*rec)) {
		return nil, fmt.Errorf("setns: short record (%d bytes)", len(raw))
	}
	rec = (*gen.SetnsEvent)(unsafe.Pointer(&raw[0]))
	ev := &Event{
		// Same layout, both generated from header.h: TestHeaderLayout checks it.
		Header: event.Decode(Type, (*event.Raw)(unsafe.Pointer(&rec.Hdr)), clock, r),
		Setns: Details{
			Syscall:   syscallNames[rec.Syscall],
			Flags:     rec.Flags,
			NSTypes:   event.NSNames(uint64(rec.NsMask)),
			TargetPID: rec.TargetPid,
			Targets:   map[string]uint32{},
			Result:    "ok",
			Ret:       rec.Ret,
		},
	}
	if rec.Syscall == gen.SetnsSetnsSyscallSYSCALL_SETNS {
		fd := rec.Fd
		ev.Setns.FD = &fd
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
		ev.Setns.Targets[ty.Name] = inode
		// The first type, in index order (mnt, net, pid, ...), that a container owns names it.
		if r != nil && ev.Setns.TargetContainer == nil && inode != 0 {
			ev.Setns.TargetContainer = r.Owner(ty, inode)
		}
	}
	return ev, nil
}
