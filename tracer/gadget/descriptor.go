package gadget

import (
	"fmt"
	"reflect"
	"slices"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
)

// Mode is how a gadget is used.
type Mode int

const (
	// Stream gadgets are traced: `ghostwatch trace NAME` streams their events.
	Stream Mode = iota
	// Recorder gadgets are driven by a session of their own (seccomp record), not streamed.
	Recorder
	// Snapshot gadgets are read once: their iterators (iter/ programs) walk the kernel's objects,
	// each hook with a fallback (Hook.Without) read from /proc where it does not load, and
	// `ghostwatch GROUP NAME` lists what they find (netns holders).
	Snapshot
)

// Item is one line of a snapshot.
type Item interface {
	// AppendJSON appends the item as one JSON object, documented by the descriptor's Derived.
	AppendJSON(j *encode.JSON)
	// AppendRow appends its table cells, one per column of the descriptor's Columns.
	AppendRow(r *encode.Row)
}

// Descriptor is everything generic code needs to know of a gadget: the CLI's trace command, doctor,
// vmtest's attach expectations, the README's JSON documentation and the shared gadget tests all
// iterate over the registered descriptors (tracer/registry).
type Descriptor struct {
	Name    string // the CLI's name and the JSON "type"
	Summary string // one line for --help
	Mode    Mode
	// Group, for a snapshot, is the gadget whose object it loads, whose command it is under
	// (`ghostwatch GROUP NAME`) and whose page documents it.
	Group string
	// Load returns the gadget's BPF object (bpf2go's LoadX).
	Load  func() (*ebpf.CollectionSpec, error)
	Hooks []attach.Hook
	// Features are the kernel features its programs use where the kernel has them, with a
	// fallback where it does not (bpf/include/compat.h), as doctor and the summary report them.
	Features []kernel.Feature
	// Needs names the feature a program uses with no fallback inside it (fetching atomics: see
	// compat.h), by program name. Where the kernel lacks it (or GHOSTWATCH_LACK says so), the
	// candidates with that program are skipped and the hook takes the next: the variant without.
	Needs map[string]kernel.Feature
	// HookParams names, for a hook that is worth not attaching, the boolean option that attaches
	// it: hook name to option name.
	HookParams map[string]string
	// Kinds are the events the kernel side writes, by their value in gw_header.kind.
	Kinds []Kind
	// Derived are the kinds of events the processor makes from others, or a snapshot's one kind of
	// item (Name and Fields only).
	Derived []Kind
	// Columns are the table's columns after the common TIME, CONTAINER, PID and COMM; a
	// snapshot's are all of them.
	Columns []encode.Column
	// Params are the gadget's own options (the CLI makes flags of them).
	Params []Param
	// Configure sets the object's constants from the options before it is loaded; nil: none.
	Configure func(spec *ebpf.CollectionSpec, p Params) error
	// NewProcessor makes the user-space state of one run (joins, derived events); nil: none. An
	// error (a set-up the processor cannot do without) ends the run before anything is read.
	NewProcessor func(g *Gadget, p Params) (Processor, error)
	// Snap reads a snapshot gadget once (its options in g.Params; a hook that got no attach point
	// has its fallback read instead) and returns its items in order, attributed with r if not nil.
	Snap func(g *Gadget, r event.Resolver) ([]Item, error)
	// Selftest says how to cause one of its events, for the shared gadget tests.
	Selftest Selftest
}

// Page is the name of the gadget's documentation page, docs/gadgets/PAGE.md: its group's, for a
// snapshot, else its own.
func (d *Descriptor) Page() string {
	if d.Group != "" {
		return d.Group
	}
	return d.Name
}

// Command is how the CLI runs the gadget.
func (d *Descriptor) Command() string {
	switch d.Mode {
	case Recorder:
		return "ghostwatch " + d.Name + " record"
	case Snapshot:
		return "ghostwatch " + d.Group + " " + d.Name
	}
	return "ghostwatch trace " + d.Name
}

// Validate checks what a mistake in a descriptor would break later: options of a type the CLI
// cannot make a flag of, hook options naming no hook or no boolean option, and a snapshot without
// its group, its reader, its one kind of item or a fallback for each hook. The shared tests call it
// for every registered gadget.
func (d *Descriptor) Validate() error {
	if d.Mode == Snapshot {
		if d.Group == "" || d.Snap == nil || len(d.Derived) != 1 || len(d.Kinds) != 0 {
			return fmt.Errorf("%s: a snapshot has a Group, a Snap, one Derived kind (its items) and no Kinds", d.Name)
		}
		for _, h := range d.Hooks {
			if h.Without == "" {
				return fmt.Errorf("%s: hook %s has no fallback (Without), which --source proc reads", d.Name, h.Name)
			}
		}
	} else if d.Group != "" || d.Snap != nil {
		return fmt.Errorf("%s: only a snapshot has a Group and a Snap", d.Name)
	}
	params := map[string]any{}
	for _, p := range d.Params {
		switch p.Default.(type) {
		case bool, time.Duration, uint64, string:
		default:
			return fmt.Errorf("%s: option %s has a default of type %T (want bool, time.Duration, uint64 or string)", d.Name, p.Name, p.Default)
		}
		params[p.Name] = p.Default
	}
	for hook, param := range d.HookParams {
		if _, ok := params[param].(bool); !ok {
			return fmt.Errorf("%s: hook %s is turned on by %q, which is no boolean option", d.Name, hook, param)
		}
		if !slices.ContainsFunc(d.Hooks, func(h attach.Hook) bool { return h.Name == hook }) {
			return fmt.Errorf("%s: HookParams names no hook %s", d.Name, hook)
		}
	}
	return nil
}

// Emitted returns the kinds of events the gadget writes: its kernel kinds that are not folded,
// then its derived kinds.
func (d *Descriptor) Emitted() []Kind {
	var out []Kind
	for _, k := range append(append([]Kind{}, d.Kinds...), d.Derived...) {
		if !k.Folded {
			out = append(out, k)
		}
	}
	return out
}

// HooksFor returns the hooks to attach with these options.
func (d *Descriptor) HooksFor(p Params) []attach.Hook {
	var out []attach.Hook
	for _, h := range d.Hooks {
		if param, ok := d.HookParams[h.Name]; ok && !p.Bool(param) {
			continue
		}
		out = append(out, h)
	}
	return out
}

// CommonColumns start every gadget's table.
var CommonColumns = []encode.Column{{Name: "TIME", Width: 12}, {Name: "CONTAINER", Width: 16}, {Name: "PID", Width: 7}, {Name: "COMM", Width: 15}}

// Kind is one kind of event: a C struct that starts with struct gw_header, its Go type generated by
// bpf2go, and the Go event it is decoded into.
type Kind struct {
	Name  string // "check"; shown as the event's "kind" when the gadget has more than one
	Value uint32 // its value in the gadget's C kind enum
	// Fields documents the members of the gadget's JSON object for this kind.
	Fields []Field
	// Folded: the processor folds these records into its derived events and never emits them,
	// so they are not documented.
	Folded bool
	record reflect.Type
	newDec func() decodeFunc
}

// Fold returns the kind marked Folded.
func (k Kind) Fold() Kind { k.Folded = true; return k }

// Folded is embedded by a folded kind's record: the processor folds the record into its derived
// events and never emits it, so it has no JSON or row of its own, only what Event asks for.
type Folded struct{ event.Header }

// Head returns the common part.
func (f *Folded) Head() *event.Header { return &f.Header }

// AppendJSON appends an empty object: a folded record is never written.
func (*Folded) AppendJSON(j *encode.JSON) { j.Object(); j.End() }

// AppendRow appends nothing: a folded record is never written.
func (*Folded) AppendRow(*encode.Row) {}

// Field documents one member of a gadget's JSON object.
type Field struct {
	Name, Meaning string
}

// Record is the generated Go type of the kind's C struct.
func (k Kind) Record() reflect.Type { return k.record }

// decodeFunc decodes one record of a kind, whose header is already decoded into h.
type decodeFunc func(raw []byte, h *event.Header, r event.Resolver) Event

// Decodable is a Go event that a record of type R decodes into. Its values are reused.
type Decodable[R any] interface {
	Event
	Decode(rec *R, h *event.Header, r event.Resolver)
}

// NewKind declares a kind whose kernel record is R (a bpf2go type beginning with the header) and
// whose Go event is *E.
func NewKind[R any, E any, PE interface {
	*E
	Decodable[R]
}](name string, value uint32, fields ...Field) Kind {
	return Kind{Name: name, Value: value, Fields: fields, record: reflect.TypeFor[R](),
		newDec: func() decodeFunc {
			ev := PE(new(E)) // one value per run, reused for every record
			return func(raw []byte, h *event.Header, r event.Resolver) Event {
				ev.Decode((*R)(unsafe.Pointer(&raw[0])), h, r)
				return ev
			}
		}}
}

// Event is a decoded event. Decoders reuse their values: an Event passed to a callback is valid
// until the callback returns; Clone keeps one.
type Event interface {
	Head() *event.Header
	// AppendJSON appends the gadget's own object, the value of the member named after its type.
	AppendJSON(j *encode.JSON)
	// AppendRow appends the table cells after the common ones.
	AppendRow(r *encode.Row)
	Clone() Event
}

// Targeted is an event about containers besides its actor's (the owner of a namespace entered,
// of a cgroup written to): the flight record finds it by those too.
type Targeted interface {
	// Targets appends the containers the event is about to dst (nil ones are skipped).
	Targets(dst []*event.Container) []*event.Container
}

// Processor is the user-space part of one run: it sees every decoded event in order, may add a
// cause to it (a join) and may emit events of its own.
type Processor interface {
	Process(ev Event, emit func(Event))
	// Flush is called about every second, and at stop with final set: it emits what is due.
	Flush(now time.Time, final bool, emit func(Event))
}

// ResolverUser is a processor that joins its events to what the run's resolver (the container
// index) learns from the runtime: it is given the resolver before the first event.
type ResolverUser interface {
	UseResolver(r event.Resolver)
}

// Param is an option of a gadget. Its default's type is its type: bool, time.Duration, string or
// uint64.
type Param struct {
	Name    string
	Usage   string
	Default any
}

// Params are option values by name.
type Params map[string]any

// Bool returns a boolean option.
func (p Params) Bool(name string) bool { v, _ := p[name].(bool); return v }

// String returns a string option.
func (p Params) String(name string) string { v, _ := p[name].(string); return v }

// Uint64 returns a number option.
func (p Params) Uint64(name string) uint64 { v, _ := p[name].(uint64); return v }

// Duration returns a duration option.
func (p Params) Duration(name string) time.Duration { v, _ := p[name].(time.Duration); return v }

// WithDefaults returns the values with each missing option set to its default, and an error for
// a value of the wrong type, an unknown name or a negative duration (every duration option is a
// wait or a window).
func (d *Descriptor) WithDefaults(p Params) (Params, error) {
	out := Params{}
	for _, prm := range d.Params {
		out[prm.Name] = prm.Default
	}
	for name, v := range p {
		def, ok := out[name]
		if !ok {
			return nil, fmt.Errorf("gadget %s has no option %q", d.Name, name)
		}
		if reflect.TypeOf(v) != reflect.TypeOf(def) {
			return nil, fmt.Errorf("gadget %s: option %s is a %T, not a %T", d.Name, name, def, v)
		}
		if dur, ok := v.(time.Duration); ok && dur < 0 {
			return nil, fmt.Errorf("gadget %s: option %s must not be negative, got %v", d.Name, name, dur)
		}
		out[name] = v
	}
	return out, nil
}

// Selftest causes an event of the gadget, for the shared tests: with Params, Command causes an
// event whose actor is the command's own process (its pid, its comm, its mount namespace). For a
// snapshot, Command prints a line once it is what the snapshot must list (an item names its pid),
// and stays until its stdin closes.
type Selftest struct {
	Params  Params
	Command []string
}
