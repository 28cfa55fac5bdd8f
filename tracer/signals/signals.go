// Package signals traces signals a process sends across containers or to a container's init,
// and kill calls that found no target (ESRCH) or were refused (EPERM), with the sender, the target
// and their containers: a sidecar's reload signal that never arrived because the pod's containers
// do not share a PID namespace is a kill that found no target.
package signals

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	gen "github.com/ghostwatch/ghostwatch/gen/signals"
	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
)

// Type is the gadget's name and the name of its object in JSON.
const Type = "signals"

// The gadget's hooks.
const (
	HookSent   = "sent"
	HookFailed = "failed"
)

// ParamProbes reports failed calls of signal 0 (existence checks) too.
const ParamProbes = "probes"

// Gadget describes the signals gadget.
var Gadget = gadget.Descriptor{
	Name:    Type,
	Summary: "signals sent across containers or to a container's init, and kill calls that found no target (ESRCH) or were refused (EPERM), with sender, target and their containers",
	Load:    gen.LoadSignals,
	// fill_header (the sender) and the filter read the current task; the failed calls' arguments
	// are read from the syscall's registers (compat.h).
	Features: []kernel.Feature{kernel.TaskBTF, kernel.TaskPtRegs},
	Hooks: []attach.Hook{
		{Name: HookSent, Candidates: [][]string{{gen.SignalsProgSignalGenerate}}},
		{Name: HookFailed, Candidates: [][]string{{gen.SignalsProgKillExit, gen.SignalsProgTkillExit,
			gen.SignalsProgTgkillExit, gen.SignalsProgPidfdSendSignalExit}}},
	},
	Kinds: []gadget.Kind{
		gadget.NewKind[gen.SignalsSignalEvent, Event]("sent", uint32(gen.SignalsSignalsKindSIGNALS_SENT), sentFields...),
		gadget.NewKind[gen.SignalsSignalEvent, Event]("failed", uint32(gen.SignalsSignalsKindSIGNALS_FAILED), failedFields...),
	},
	Columns: []encode.Column{{Name: "SIGNAL", Width: 8}, {Name: "RESULT", Width: 15}, {Name: "WHAT"}},
	Params: []gadget.Param{{Name: ParamProbes, Default: false,
		Usage: "also report failed calls of signal 0, which only ask whether a process exists (pid files, liveness loops find none routinely)"}},
	Configure: func(spec *ebpf.CollectionSpec, p gadget.Params) error {
		return spec.Variables[gen.SignalsVarProbes].Set(p.Bool(ParamProbes))
	},
	// A SIGHUP to a pid that no process has: the shell's own kill finds no target.
	Selftest: gadget.Selftest{Command: []string{"sh", "-c", "kill -HUP 2147483647"}},
}

var common = []gadget.Field{
	{Name: "signal", Meaning: "the signal's name (`SIGHUP`; a real-time one by its number, `SIG34`; `0` for an existence check)"},
	{Name: "signo", Meaning: "its number"},
}

var sentFields = append(append([]gadget.Field{}, common...),
	gadget.Field{Name: "result", Meaning: "what the kernel did with it: `delivered` (queued for the target), `ignored` (the target's action for it is to ignore it: SIG_IGN, a default action of ignoring, or an init without a handler for it), `already_pending`, `overflow_fail` (the queue of real-time signals was full), `lose_info` (queued without its siginfo)"},
	gadget.Field{Name: "code", Meaning: "who sent it: `SI_USER` (kill, pidfd_send_signal), `SI_TKILL` (tkill, tgkill), `SI_QUEUE` (sigqueue)"},
	gadget.Field{Name: "group", Meaning: "sent to the whole process, not one thread"},
	gadget.Field{Name: "cross_container", Meaning: "sender and target are in different mount namespaces and one of them is in a pid namespace below the host's"},
	gadget.Field{Name: "to_init", Meaning: "the target is pid 1 of a pid namespace below the host's: a container's init"},
	gadget.Field{Name: "target", Meaning: "the target task: `pid`, `tid` (as the host numbers them), `ns_pid` (its pid in its own pid namespace), `comm`, `container`"},
)

var failedFields = append(append([]gadget.Field{}, common...),
	gadget.Field{Name: "result", Meaning: "`ESRCH` (no process had that pid in the sender's pid namespace, or it had exited) or `EPERM` (the sender may not signal it)"},
	gadget.Field{Name: "call", Meaning: "`kill`, `tkill`, `tgkill` or `pidfd_send_signal`"},
	gadget.Field{Name: "pid`, `tid`, `fd", Meaning: "what the call asked for: the pid as the sender's pid namespace numbers it (kill: also 0, -1 or -pgid; tgkill: the process), the thread (tkill, tgkill), the pidfd (pidfd_send_signal)"},
	gadget.Field{Name: "target", Meaning: "the process refused (`EPERM`), where it could be named: `pid`, `tid`, `comm`, `container`, and `from`: `kernel` (a pidfd's process, read in the kernel) or `proc` (the pid looked up in /proc once the event was read)"},
)

// Event is one signal sent, or one kill call that failed; its header's actor is the sender.
type Event struct {
	event.Header
	Signal  Details
	strings event.Strings // interns the target's comm
}

// Details is the gadget's own object.
type Details struct {
	Signo  int32
	Result string
	// Sent only.
	Code                          string
	Group, CrossContainer, ToInit bool
	// Failed only: the call and what it asked for.
	Call          string
	PID, TID, FD  int32
	Target        Target
	targetFromPID bool // Target was looked up in /proc
}

// Target is the task signalled.
type Target struct {
	Known     bool
	PID, TID  uint32
	NSPID     uint32 // in its own pid namespace (sent only)
	Comm      string
	Container *event.Container
}

// The kernel's enum trace_signal_result.
var results = []string{"delivered", "ignored", "already_pending", "overflow_fail", "lose_info"}

var codes = map[int32]string{0: "SI_USER", -1: "SI_QUEUE", -6: "SI_TKILL"}

var calls = map[gen.SignalsSignalsCall]string{
	gen.SignalsSignalsCallCALL_KILL:              "kill",
	gen.SignalsSignalsCallCALL_TKILL:             "tkill",
	gen.SignalsSignalsCallCALL_TGKILL:            "tgkill",
	gen.SignalsSignalsCallCALL_PIDFD_SEND_SIGNAL: "pidfd_send_signal",
}

// signalNames are the names of signals 0 to 64, made once so that decoding allocates nothing.
var signalNames = func() []string {
	names := make([]string, 65)
	names[0] = "0"
	for n := 1; n < len(names); n++ {
		names[n] = unix.SignalName(syscall.Signal(n))
		if names[n] == "" {
			names[n] = "SIG" + strconv.Itoa(n) // real-time: glibc's SIGRTMIN is 34, the kernel's 32
		}
	}
	return names
}()

// SignalName names a signal number.
func SignalName(n int32) string {
	if n >= 0 && int(n) < len(signalNames) {
		return signalNames[n]
	}
	return strconv.Itoa(int(n))
}

// Targets is the target's container.
func (e *Event) Targets(dst []*event.Container) []*event.Container {
	return append(dst, e.Signal.Target.Container)
}

// Decode fills the event from a kernel record.
func (e *Event) Decode(rec *gen.SignalsSignalEvent, h *event.Header, r event.Resolver) {
	e.Header = *h
	d := &e.Signal
	*d = Details{Signo: rec.Sig}
	if rec.HasTarget != 0 {
		t := (*event.Raw)(unsafe.Pointer(&rec.Target))
		d.Target = Target{Known: true, PID: t.Pid, TID: t.Tid, NSPID: rec.TargetNsPid, Comm: e.strings.Get(t.Comm[:])}
		if r != nil {
			d.Target.Container = r.Actor(t)
		}
	}
	if gen.SignalsSignalsKind(rec.Hdr.Kind) == gen.SignalsSignalsKindSIGNALS_SENT {
		if rec.Result >= 0 && int(rec.Result) < len(results) {
			d.Result = results[rec.Result]
		}
		d.Code = codes[rec.Code]
		d.Group = rec.Group != 0
		d.CrossContainer = rec.Why&uint8(gen.SignalsSignalsWhyWHY_CROSS_CONTAINER) != 0
		d.ToInit = rec.Why&uint8(gen.SignalsSignalsWhyWHY_TO_INIT) != 0
		return
	}
	d.Result = event.ErrnoName(int64(rec.Result))
	d.Call = calls[rec.Call]
	d.PID, d.TID, d.FD = rec.Pid, rec.Tid, rec.Fd
	if rec.Result == -int32(unix.EPERM) && !d.Target.Known {
		e.lookUp(r)
	}
}

// lookUp names the target of a refused kill from /proc: it lives (the kernel found it, then
// refused), though it may have exited since. The pid is the sender's pid namespace's.
func (e *Event) lookUp(r event.Resolver) {
	d := &e.Signal
	asked := d.PID
	if d.Call == "tkill" {
		asked = d.TID
	}
	if asked <= 0 {
		return // a process group, or every process: no one target
	}
	pid, ok := hostPID(e.NS.PID, uint32(asked))
	if !ok {
		return
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return
	}
	t := event.Raw{Pid: pid, Tid: pid}
	ns := container.ProcNS(pid)
	t.Ns[0] = ns["mnt"] // GW_NS_MNT: what containers are found by
	d.Target = Target{Known: true, PID: pid, TID: pid, Comm: strings.TrimSuffix(string(comm), "\n")}
	if d.Call == "tgkill" {
		d.Target.TID = 0 // the thread's host number is not looked up
	}
	if r != nil {
		d.Target.Container = r.Actor(&t)
	}
	d.targetFromPID = true
}

// ownPIDNS is the pid namespace ghostwatch runs in: where a pid is a /proc entry's name.
var ownPIDNS = container.ProcNS(uint32(os.Getpid()))["pid"]

// hostPID returns the pid in this /proc of the process that pid names in pid namespace ns: itself
// in ours, else the process in that namespace whose innermost number it is (a scan of /proc, for
// rare events only).
func hostPID(ns, pid uint32) (uint32, bool) {
	if ns == ownPIDNS {
		return pid, true
	}
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, false
	}
	for _, dir := range dirs {
		n, err := strconv.ParseUint(filepath.Base(dir), 10, 32)
		if err != nil || container.ProcNS(uint32(n))["pid"] != ns {
			continue
		}
		if innermostPID(dir) == pid {
			return uint32(n), true
		}
	}
	return 0, false
}

// innermostPID is the last number of a process's NSpid line: its pid in its own namespace.
func innermostPID(dir string) uint32 {
	b, err := os.ReadFile(dir + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" {
			n, _ := strconv.ParseUint(f[len(f)-1], 10, 32)
			return uint32(n)
		}
	}
	return 0
}

// Head returns the common part.
func (e *Event) Head() *event.Header { return &e.Header }

// Clone returns a copy that later decoding leaves alone.
func (e *Event) Clone() gadget.Event {
	return &Event{Header: e.Header, Signal: e.Signal}
}

// AppendJSON appends the signals object.
func (e *Event) AppendJSON(j *encode.JSON) {
	d := &e.Signal
	j.Object()
	j.String("signal", SignalName(d.Signo))
	j.Int("signo", int64(d.Signo))
	j.String("result", d.Result)
	if d.Call == "" {
		j.String("code", d.Code)
		j.Bool("group", d.Group)
		j.Bool("cross_container", d.CrossContainer)
		j.Bool("to_init", d.ToInit)
	} else {
		j.String("call", d.Call)
		switch d.Call {
		case "kill":
			j.Int("pid", int64(d.PID))
		case "tkill":
			j.Int("tid", int64(d.TID))
		case "tgkill":
			j.Int("pid", int64(d.PID))
			j.Int("tid", int64(d.TID))
		default:
			j.Int("fd", int64(d.FD))
		}
	}
	if t := &d.Target; t.Known {
		j.ObjectKey("target")
		j.Uint("pid", uint64(t.PID))
		if t.TID != 0 {
			j.Uint("tid", uint64(t.TID))
		}
		if d.Call == "" {
			j.Uint("ns_pid", uint64(t.NSPID))
		}
		j.String("comm", t.Comm)
		if t.Container != nil {
			j.Key("container")
			j.B = t.Container.AppendJSON(j.B)
		}
		if d.Call != "" {
			if d.targetFromPID {
				j.String("from", "proc")
			} else {
				j.String("from", "kernel")
			}
		}
		j.End()
	}
	j.End()
}

// AppendRow appends SIGNAL, RESULT and a sentence: "to nginx (pid 4242, 1 in its namespace,
// web/nginx): cross-container, to its init", "kill(17): no such process in the sender's pid
// namespace" or "kill(17): refused: nginx (pid 4242, web/nginx)".
func (e *Event) AppendRow(r *encode.Row) {
	d := &e.Signal
	r.Cell(SignalName(d.Signo))
	r.Cell(d.Result)
	r.Begin()
	if d.Call != "" {
		r.Str(d.Call)
		r.Str("(")
		switch d.Call {
		case "kill":
			r.Int(int64(d.PID))
		case "tkill":
			r.Int(int64(d.TID))
		case "tgkill":
			r.Int(int64(d.PID))
			r.Str(", ")
			r.Int(int64(d.TID))
		default:
			r.Str("pidfd ")
			r.Int(int64(d.FD))
		}
		r.Str(")")
		if d.Result == "ESRCH" {
			r.Str(": no such process in the sender's pid namespace")
		} else {
			r.Str(": refused")
		}
	}
	if t := &d.Target; t.Known {
		if d.Call != "" {
			r.Str(": ")
		} else {
			r.Str("to ")
		}
		r.Str(t.Comm)
		r.Str(" (pid ")
		r.Uint(uint64(t.PID))
		if d.Call == "" && t.NSPID != t.PID {
			r.Str(", ")
			r.Uint(uint64(t.NSPID))
			r.Str(" in its namespace")
		}
		r.Str(", ")
		if t.Container == nil {
			r.Str("host")
		} else {
			r.Str(t.Container.Label())
		}
		r.Str(")")
	}
	if d.Call == "" {
		switch {
		case d.CrossContainer && d.ToInit:
			r.Str(": cross-container, to its init")
		case d.CrossContainer:
			r.Str(": cross-container")
		default:
			r.Str(": to its init")
		}
	}
}
