package setns

import (
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	gencni "github.com/ghostwatch/ghostwatch/gen/cni"
	gen "github.com/ghostwatch/ghostwatch/gen/setns"
	"github.com/ghostwatch/ghostwatch/tracer/cni"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

// Entry classes: how the actor came to enter (or create) a container's namespaces.
const (
	ClassStart   = "start"   // a runtime creating a container
	ClassExec    = "exec"    // a runtime running a process in a running container
	ClassDebug   = "debug"   // a start that looks like kubectl debug (a heuristic)
	ClassNsenter = "nsenter" // a host process that is not a runtime nor a CNI plugin
	ClassCNI     = "cni"     // a CNI plugin
	ClassAgent   = "agent"   // a process of another container
)

// DebugPrefix is how kubectl debug names the containers it adds (debugger-xxxxx).
const DebugPrefix = "debugger-"

// Entry says how the actor came: what the kernel showed of it (its ancestry, its executable's
// directory, its runtime's arguments), judged.
type Entry struct {
	Class string `json:"class"`
	// Heuristic: the class is a guess from signs, which Why names.
	Heuristic bool   `json:"heuristic,omitempty"`
	Why       string `json:"why,omitempty"`
	// Container is the container the runtime creates (start, debug) or runs a process in (exec),
	// from the runtime's arguments: its id, and more once its runtime has announced it.
	Container *event.Container `json:"container,omitempty"`
	ExecID    string           `json:"exec_id,omitempty"` // exec: the runtime's exec id
	// Ancestry is the actor's parent, its parent, ... (up to 4).
	Ancestry []Ancestor `json:"ancestry,omitempty"`
}

// Ancestor is a process above the actor.
type Ancestor struct {
	PID  uint32 `json:"pid"`
	Comm string `json:"comm"`
}

// Containers is what classifying entries needs of the container index beyond event.Resolver:
// containers by id, those being created too.
type Containers interface {
	Lookup(id string) (ct *event.Container, sandbox bool)
}

// runtimeArgs reads what containerd's runc shim passes a runtime at the end of its argv:
// `--pid-file BUNDLE/ID.pid CONTAINER`, where ID is "init" for the container's own process and
// the exec id for an exec. ok is false when there is no container id to read.
func runtimeArgs(rt *gen.SetnsRtArgs) (container, execID string, ok bool) {
	n := min(int(rt.Len), len(rt.Args))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rt.Args[i])
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if n == len(rt.Args) && len(args) > 0 {
		args = args[1:] // the argv was longer: its first argument here is cut
	}
	if len(args) == 0 || args[len(args)-1] == "" || strings.HasPrefix(args[len(args)-1], "-") {
		return "", "", false
	}
	container = args[len(args)-1]
	for i, a := range args[:len(args)-1] {
		if a == "--pid-file" || a == "-pid-file" {
			if id := strings.TrimSuffix(filepath.Base(args[i+1]), ".pid"); id != "init" {
				execID = id
			}
		}
	}
	return container, execID, true
}

// isRuntime says whether a comm is a runtime's own process: runc and crun, runc's children
// (runc:[1:CHILD]). A process a runtime has exec'd (the workload, or an exec'd command) has its own
// name, though the runtime may still be above it.
func isRuntime(comm string) bool {
	return strings.HasPrefix(comm, "runc") || strings.HasPrefix(comm, "crun")
}

// cniDirs are the kernel's keys of the default CNI bin dirs.
var cniDirs = sync.OnceValue(func() map[gencni.CniInodeKey]bool {
	keys := map[gencni.CniInodeKey]bool{}
	for _, k := range cni.BinDirs(filepath.SplitList(cni.DefaultBinDirs)) {
		keys[k] = true
	}
	return keys
})

// signs is what the kernel captured of an event's actor for classifying it, kept with the event by
// Decode (copied, not allocated: most events are no entry) until the processor judges it.
type signs struct {
	ancestry     [len(gen.SetnsEvent{}.Ancestry)]gen.SetnsAncestor
	exeDir       gencni.CniInodeKey
	runtimePid   uint32
	runtimeStart uint64
}

// entries is the gadget's processor: it judges each call's entry. A runtime's arguments are read
// from the kernel's runtimes table, by the pid and start time the event names, rather than copied
// into every event's record.
type entries struct {
	r        event.Resolver
	runtimes *ebpf.Map
	forgot   func(uint64)
	args     gen.SetnsRtArgs
}

func newEntries(g *gadget.Gadget, _ gadget.Params) (gadget.Processor, error) {
	return &entries{runtimes: g.Set().Map(gen.SetnsMapRuntimes), forgot: g.Forgot}, nil
}

func (p *entries) UseResolver(r event.Resolver) { p.r = r }

func (p *entries) Process(ev gadget.Event, emit func(gadget.Event)) {
	if c, ok := ev.(*Event); ok {
		c.Setns.Entry = c.classify(p.r, p.runtimeArgs)
	}
	emit(ev)
}

// Flush holds nothing: each event is judged as it comes.
func (p *entries) Flush(time.Time, bool, func(gadget.Event)) {}

// runtimeArgs returns the argv the kernel took of a runtime when it exec'd; nil, counted as
// forgotten, when newer runtimes have pushed it out of the table (or its pid is another's now).
func (p *entries) runtimeArgs(pid uint32, start uint64) *gen.SetnsRtArgs {
	if err := p.runtimes.Lookup(&pid, &p.args); err != nil || p.args.StartTime != start {
		p.forgot(1)
		return nil
	}
	return &p.args
}

// classify judges how the actor of an event came, nil when it is no entry into a container
// (allocating nothing then). args looks a runtime's arguments up.
func (ev *Event) classify(r event.Resolver, args func(pid uint32, start uint64) *gen.SetnsRtArgs) *Entry {
	d, sg := &ev.Setns, &ev.signs
	var e *Entry
	switch {
	case sg.runtimePid != 0 && isRuntime(ev.Proc.Comm):
		rt := args(sg.runtimePid, sg.runtimeStart)
		if rt == nil {
			return nil
		}
		id, execID, ok := runtimeArgs(rt)
		if !ok {
			return nil
		}
		e = &Entry{Container: &event.Container{ID: id}}
		if cs, ok := r.(Containers); ok {
			if ct, _ := cs.Lookup(id); ct != nil {
				e.Container = ct
			}
		}
		if execID != "" {
			e.Class, e.ExecID = ClassExec, execID
		} else {
			e.Class = ClassStart
			e.debug(d, r)
		}
	case cniDirs()[sg.exeDir]:
		e = &Entry{Class: ClassCNI}
	case d.TargetContainer == nil:
		return nil // the host's namespaces, or new ones
	case ev.Container != nil && ev.Container.ID != d.TargetContainer.ID:
		e = &Entry{Class: ClassAgent}
	case ev.Container == nil:
		e = &Entry{Class: ClassNsenter}
	default:
		return nil // within its own container
	}
	for _, a := range sg.ancestry {
		if a.Pid == 0 {
			break
		}
		e.Ancestry = append(e.Ancestry, Ancestor{PID: a.Pid, Comm: event.CString(a.Comm[:])})
	}
	return e
}

// debug makes a start a debug when it looks like kubectl debug: a container named as kubectl
// names its debug containers, or one that joins another container's PID namespace (not its
// pod's sandbox's): --target.
func (e *Entry) debug(d *Details, r event.Resolver) {
	if strings.HasPrefix(e.Container.Name, DebugPrefix) {
		e.Class, e.Heuristic, e.Why = ClassDebug, true, "named "+DebugPrefix+"*"
	}
	pid := event.NSTypes[2] // the PID namespace
	cs, ok := r.(Containers)
	if !ok || d.Targets.Mask&pid.Flag == 0 {
		return
	}
	owner := r.Owner(pid, d.Targets.Inode[pid.Index])
	if owner == nil || owner.ID == e.Container.ID {
		return
	}
	if _, sandbox := cs.Lookup(owner.ID); sandbox {
		return
	}
	why := "joins the PID namespace of container " + owner.Label()
	if e.Class == ClassDebug {
		why = e.Why + ", " + why
	}
	e.Class, e.Heuristic, e.Why = ClassDebug, true, why
}

func (e *Entry) appendJSON(j *encode.JSON) {
	j.ObjectKey("entry")
	j.String("class", e.Class)
	if e.Heuristic {
		j.Bool("heuristic", true)
		j.String("why", e.Why)
	}
	if e.Container != nil {
		j.Key("container")
		j.B = e.Container.AppendJSON(j.B)
	}
	j.OmitEmpty("exec_id", e.ExecID)
	if len(e.Ancestry) > 0 {
		j.Array("ancestry", len(e.Ancestry), func(i int) {
			j.Object()
			j.Uint("pid", uint64(e.Ancestry[i].PID))
			j.String("comm", e.Ancestry[i].Comm)
			j.End()
		})
	}
	j.End()
}

// appendCell writes the class and what names the entry: the container created or exec'd in,
// the exec id, or the ancestry (sshd>bash>nsenter, the actor last).
func (e *Entry) appendCell(r *encode.Row, actor string) {
	if e == nil {
		r.Str("-")
		return
	}
	r.Str(e.Class)
	if e.Heuristic {
		r.Str("?")
	}
	r.Str(" ")
	switch {
	case e.ExecID != "":
		r.Str(e.ExecID)
	case e.Container != nil:
		r.Str(e.Container.Label())
	default:
		for i := len(e.Ancestry) - 1; i >= 0; i-- {
			r.Str(e.Ancestry[i].Comm)
			r.Str(">")
		}
		r.Str(actor)
	}
}
