package netns

import (
	"os"
	"strconv"
	"time"

	"github.com/cilium/ebpf"

	gen "github.com/ghostwatch/ghostwatch/gen/netns"
	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
)

// Type is the event type and the name of the gadget object in JSON.
const Type = "netns"

// Hook names.
const (
	HookTasks     = "tasks"     // forks and exits: who lives where
	HookMoves     = "moves"     // setns and unshare(CLONE_NEWNET)
	HookCreated   = "created"   // the kernel's creation of a namespace
	HookDestroyed = "destroyed" // the kernel's last reference going
	HookCensus    = "census"    // the tasks already living somewhere at start
	HookHolders   = "holders"   // what holds a namespace (snapshots, lingering reports)
)

// ParamLinger is how long after becoming empty a namespace still alive is reported lingering.
const ParamLinger = "linger"

// Gadget describes the netns gadget.
var Gadget = gadget.Descriptor{
	Name:     Type,
	Summary:  "network namespace lifecycle: created, empty (its last task left), destroyed, and lingering with what holds it",
	Load:     gen.LoadNetns,
	Features: []kernel.Feature{kernel.TaskBTF, kernel.FetchAtomics},
	Needs: map[string]kernel.Feature{gen.NetnsProgMemberExit: kernel.FetchAtomics,
		gen.NetnsProgUnshareExit: kernel.FetchAtomics, gen.NetnsProgSetnsExit: kernel.FetchAtomics},
	Hooks: []attach.Hook{
		{Name: HookTasks, Candidates: [][]string{
			{gen.NetnsProgMemberFork, gen.NetnsProgMemberExit},
			{gen.NetnsProgMemberFork, gen.NetnsProgMemberExitNofetch}}},
		{Name: HookMoves, Candidates: [][]string{
			{gen.NetnsProgUnshareEnter, gen.NetnsProgUnshareExit, gen.NetnsProgSetnsExit},
			{gen.NetnsProgUnshareEnter, gen.NetnsProgUnshareExitNofetch, gen.NetnsProgSetnsExitNofetch}}},
		{Name: HookCreated, Candidates: [][]string{{gen.NetnsProgCreatedFexit}, {gen.NetnsProgCreatedKretprobe}},
			Without: "creations are seen at clone (a child in another namespace than its parent's) and at unshare(CLONE_NEWNET), which is every way a task makes one"},
		{Name: HookDestroyed, Candidates: [][]string{{gen.NetnsProgDestroyedFentry}, {gen.NetnsProgDestroyedKprobe}},
			Without: "destruction is learnt from the kernel's RTM_DELNSID notifications, for namespaces ghostwatch saw created or lingering (it gives them an id in the host namespace, which holds no reference), within a second"},
		{Name: HookCensus, Candidates: [][]string{{gen.NetnsProgCensus}}},
		holdersHook,
	},
	Kinds: []gadget.Kind{
		gadget.NewKind[gen.NetnsNetnsEvent, Event]("created", uint32(gen.NetnsNetnsKindNETNS_CREATED), eventFields...),
		gadget.NewKind[gen.NetnsNetnsEvent, Event]("empty", uint32(gen.NetnsNetnsKindNETNS_EMPTY), eventFields...),
		gadget.NewKind[gen.NetnsNetnsEvent, Event]("destroyed", uint32(gen.NetnsNetnsKindNETNS_DESTROYED), eventFields...),
	},
	Derived: []gadget.Kind{{Name: "lingering", Fields: append(eventFields,
		gadget.Field{Name: "holders", Meaning: "what holds it: the object `netns holders` writes for it"},
		gadget.Field{Name: "held_by", Meaning: "the same in one sentence"})}},
	Columns: []encode.Column{{Name: "KIND", Width: 9}, {Name: "WHAT"}},
	Params: []gadget.Param{
		{Name: ParamLinger, Default: 5 * time.Second, Usage: "report a namespace still alive this long after its last task left, with what holds it"},
	},
	Configure: func(spec *ebpf.CollectionSpec, _ gadget.Params) error {
		return spec.Variables[gen.NetnsVarSelfTgid].Set(uint32(os.Getpid()))
	},
	NewProcessor: func(g *gadget.Gadget, p gadget.Params) (gadget.Processor, error) { return newTracker(g, p) },
	Selftest:     gadget.Selftest{Command: []string{"unshare", "--net", "true"}},
}

var eventFields = []gadget.Field{
	{Name: "netns", Meaning: "the namespace's inode"},
	{Name: "how", Meaning: "created: `clone`, `unshare` (the actor made it), or `kernel` (seen in the kernel's copy_net_ns: the actor asked for it); empty: `exit`, `setns` or `unshare` (how its last task left); destroyed: `kernel`"},
	{Name: "child", Meaning: "created by clone: the child's pid"},
	{Name: "owner", Meaning: "the container or pod sandbox the namespace belongs to, when known (same fields as `container`)"},
	{Name: "lived_ns", Meaning: "destroyed, lingering: how long since it was created, when ghostwatch saw that"},
	{Name: "empty_ns", Meaning: "destroyed, lingering: how long since its last task left, when ghostwatch saw that"},
}

// Event is a lifecycle event of a network namespace, or a lingering one.
type Event struct {
	event.Header
	NetNS uint32
	How   string
	Child uint32
	Owner *event.Container
	// Set by the tracker when it knows them.
	Lived, Empty time.Duration
	Holders      *Namespace // lingering: what holds it
	resolver     event.Resolver
}

var hows = map[uint32]string{
	uint32(gen.NetnsNetnsHowHOW_CLONE): "clone", uint32(gen.NetnsNetnsHowHOW_UNSHARE): "unshare",
	uint32(gen.NetnsNetnsHowHOW_SETNS): "setns", uint32(gen.NetnsNetnsHowHOW_EXIT): "exit",
	uint32(gen.NetnsNetnsHowHOW_KERNEL): "kernel",
}

// Decode fills the event from a kernel record.
func (e *Event) Decode(rec *gen.NetnsNetnsEvent, h *event.Header, r event.Resolver) {
	*e = Event{Header: *h, NetNS: rec.Netns, How: hows[rec.How], Child: rec.Child, resolver: r}
	e.resolveOwner()
}

func (e *Event) resolveOwner() {
	if e.resolver != nil {
		if o := e.resolver.Owner(event.NSTypes[1], e.NetNS); o != nil {
			e.Owner = o
		}
	}
}

// ownerFromADD gives a created event whose owner has no pod the pod of a CNI ADD for its namespace
// since its creation, where the cni gadget runs in the same process (event.Networks), and says
// whether it did.
func (e *Event) ownerFromADD() bool {
	nw, ok := e.resolver.(event.Networks)
	if !ok || (e.Owner != nil && e.Owner.Pod != "") {
		return false
	}
	if c := nw.Network(e.NetNS, e.Time); c != nil {
		e.Owner = c
		return true
	}
	return false
}

// ownerComplete says whether the owner is known with its name: a container first known by its
// cgroup path alone gets its name when the runtime's API tells of it.
func (e *Event) ownerComplete() bool { return e.Owner != nil && e.Owner.Name != "" }

// Targets is the container or pod sandbox the namespace belongs to.
func (e *Event) Targets(dst []*event.Container) []*event.Container { return append(dst, e.Owner) }

// Head returns the common part.
func (e *Event) Head() *event.Header { return &e.Header }

// Clone returns a copy; the holders snapshot is never changed once set, and is shared.
func (e *Event) Clone() gadget.Event { c := *e; return &c }

// AppendJSON appends the netns object.
func (e *Event) AppendJSON(j *encode.JSON) {
	j.Object()
	j.Uint("netns", uint64(e.NetNS))
	j.OmitEmpty("how", e.How)
	if e.Child != 0 {
		j.Uint("child", uint64(e.Child))
	}
	appendContainer(j, "owner", e.Owner)
	if e.Lived > 0 {
		j.Int("lived_ns", int64(e.Lived))
	}
	if e.Empty > 0 {
		j.Int("empty_ns", int64(e.Empty))
	}
	if e.Holders != nil {
		j.Key("holders")
		e.Holders.AppendJSON(j)
		j.String("held_by", e.Holders.HeldBy()+"; "+e.Holders.Addresses())
	}
	j.End()
}

// AppendRow appends the kind and a sentence; for lingering, the one an operator needs:
// "netns 4026532181 (db-0/db, empty 12s) LINGERING: held by pid 812 agent fd 5 netlink(route); 10.99.0.7/24 on eth0".
func (e *Event) AppendRow(r *encode.Row) {
	r.Cell(e.Header.Kind)
	r.Begin()
	r.Str("netns ")
	r.Uint(uint64(e.NetNS))
	var notes []string
	if e.Owner != nil {
		notes = append(notes, e.Owner.Label())
	}
	if e.Empty > 0 {
		notes = append(notes, "empty "+e.Empty.Round(time.Millisecond).String())
	}
	if e.Lived > 0 {
		notes = append(notes, "lived "+e.Lived.Round(time.Millisecond).String())
	}
	for i, n := range notes {
		r.Str(map[bool]string{true: " (", false: ", "}[i == 0])
		r.Str(n)
	}
	if len(notes) > 0 {
		r.Str(")")
	}
	switch e.Header.Kind {
	case "lingering":
		r.Str(" LINGERING: ")
		r.Str(e.Holders.HeldBy())
		r.Str("; ")
		r.Str(e.Holders.Addresses())
	case "created":
		r.Str(" by " + e.How)
		if e.Child != 0 {
			r.Str(", child pid " + strconv.Itoa(int(e.Child)))
		}
	case "empty":
		r.Str(": its last task left by " + e.How)
	}
}
