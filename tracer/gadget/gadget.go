// Package gadget holds what every gadget does the same way: its descriptor, checking privileges,
// pushing the actor filter into the kernel, attaching the hooks, reading, decoding and joining its
// events, counting drops, and undoing all of it on Close.
package gadget

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/ghostwatch/ghostwatch/gen/header"
	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
	"github.com/ghostwatch/ghostwatch/tracer/stream"
)

// MaxComm is the longest command name the kernel keeps (TASK_COMM_LEN less the NUL).
const MaxComm = 15

// Filter selects the actors whose events are wanted; it is applied in the kernel, so unwanted
// events cost no ring-buffer space. Zero values match everything.
type Filter struct {
	PID  uint32
	Comm string
	// MntNS says how the mount namespaces set with SetMntNS filter: only those, or all but those.
	MntNS MntNSMode
}

func (f Filter) active() bool { return f.PID != 0 || f.Comm != "" || f.MntNS != MntNSOff }

// MntNSMode is how the mount namespace list filters actors.
type MntNSMode = header.HeaderMntnsFilter

// The mount namespace filter modes.
const (
	MntNSOff    = header.HeaderMntnsFilterFILTER_MNTNS_OFF
	MntNSOnly   = header.HeaderMntnsFilterFILTER_MNTNS_ONLY
	MntNSExcept = header.HeaderMntnsFilterFILTER_MNTNS_EXCEPT
)

// The names every object that includes bpf/include/common.h shares.
const (
	mapEvents      = "events"
	mapLost        = "lost"
	mapFilterMntNS = "filter_mntns"
	varFilterTgid  = "filter_tgid"
	varFilterComm  = "filter_comm"
	varFilterMntNS = "filter_mntns_mode"
	varLacks       = "gw_lacks"
)

// Options configure one load of a gadget.
type Options struct {
	Filter Filter
	Params Params // missing ones take their defaults
	// BufferSize is the ring buffer's size in bytes (ParseBufferSize); 0: the object's own.
	BufferSize uint32
	// Source is where a snapshot reads from: SourceAuto (""), SourceIterators or SourceProc.
	Source string
}

// The sources of a snapshot.
const (
	SourceAuto      = "auto"      // the iterators where they load, else each hook's fallback
	SourceIterators = "iterators" // the iterators, or an error
	SourceProc      = "proc"      // the fallbacks: no program is loaded
)

// Sources are the values of Options.Source, the CLI's --source.
var Sources = []string{SourceAuto, SourceIterators, SourceProc}

// hooks returns the hooks Open attaches: with the options, and for a snapshot, by its source.
func (d *Descriptor) hooks(p Params, source string) ([]attach.Hook, error) {
	hooks := d.HooksFor(p)
	if d.Mode != Snapshot {
		if source != "" {
			return nil, fmt.Errorf("%s: only a snapshot has a source", d.Name)
		}
		return hooks, nil
	}
	switch source {
	case "", SourceAuto:
		return hooks, nil
	case SourceProc:
		return nil, nil
	case SourceIterators:
		required := make([]attach.Hook, len(hooks))
		for i, h := range hooks {
			required[i] = h
			required[i].Without = ""
		}
		return required, nil
	}
	return nil, fmt.Errorf("%s: unknown source %q: want %s", d.Name, source, strings.Join(Sources, ", "))
}

// Gadget is a loaded, attached gadget.
type Gadget struct {
	Desc   *Descriptor
	Params Params
	set    *attach.Set
	reader *stream.Reader // nil for a gadget whose object has no ring buffer
	// Fallbacks are the features of Desc.Features this kernel lacks: their fallbacks run.
	Fallbacks []kernel.Feature
	userLost  userLost
}

// Open loads a gadget's object, sets its filter and options, and attaches its hooks. On error
// nothing stays loaded or mounted.
func Open(d *Descriptor, o Options) (*Gadget, error) {
	params, spec, err := d.check(o)
	if err != nil {
		return nil, err
	}
	hooks, err := d.hooks(params, o.Source)
	if err != nil {
		return nil, err
	}
	if err := kernel.CheckPrivileges(); err != nil {
		return nil, err
	}
	if err := kernel.CheckRequired(); err != nil {
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	lacking, err := kernel.Lacking()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	if err := setFilter(spec, o.Filter); err != nil {
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	// Every object has the variable (compat.h): all the bits, whichever features it declares.
	if v, ok := spec.Variables[varLacks]; !ok {
		return nil, fmt.Errorf("%s: object has no variable %s: does it include common.h?", d.Name, varLacks)
	} else if err := v.Set(kernel.LacksMask(lacking)); err != nil {
		return nil, fmt.Errorf("%s: setting %s: %w", d.Name, varLacks, err)
	}
	if events, ok := spec.Maps[mapEvents]; ok && o.BufferSize != 0 {
		events.MaxEntries = o.BufferSize
	}
	if d.Configure != nil {
		if err := d.Configure(spec, params); err != nil {
			return nil, fmt.Errorf("%s: %w", d.Name, err)
		}
	}
	set, err := attach.Load(spec, hooks, d.unusable(lacking))
	if err != nil {
		return nil, err
	}
	g := &Gadget{Desc: d, Params: params, set: set}
	for _, f := range lacking {
		if slices.ContainsFunc(d.Features, func(df kernel.Feature) bool { return df.Name == f.Name }) {
			g.Fallbacks = append(g.Fallbacks, f)
		}
	}
	if events := set.Map(mapEvents); events != nil && d.Mode != Snapshot { // a snapshot's object may be a stream's too
		if g.reader, err = stream.New(events, set.Map(mapLost), set.Programs()); err != nil {
			set.Close()
			return nil, err
		}
	}
	return g, nil
}

// OptionError is a mistake in the options a gadget is asked for (an unknown or ill-typed option,
// a negative duration, a filter the gadget cannot apply): the caller's to fix, not the kernel's.
type OptionError struct{ Err error }

func (e *OptionError) Error() string { return e.Err.Error() }
func (e *OptionError) Unwrap() error { return e.Err }

// Check says whether the gadget takes these options, without privileges or the kernel, so that a
// caller can refuse them before it starts anything; Open checks them the same way. Its errors are
// *OptionError.
func (d *Descriptor) Check(o Options) error {
	_, _, err := d.check(o)
	return err
}

func (d *Descriptor) check(o Options) (Params, *ebpf.CollectionSpec, error) {
	params, err := d.WithDefaults(o.Params)
	if err != nil {
		return nil, nil, &OptionError{err}
	}
	if len(o.Filter.Comm) > MaxComm {
		return nil, nil, &OptionError{fmt.Errorf("comm %q is longer than the kernel's %d characters", o.Filter.Comm, MaxComm)}
	}
	spec, err := d.Load()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	if d.Mode == Snapshot && o.Filter.active() {
		return nil, nil, &OptionError{fmt.Errorf("%s: a snapshot cannot filter by process or container", d.Name)}
	}
	// The filter lives in variables that common.h declares: an object without them cannot
	// filter, and asking it to is refused, never silently ignored.
	if _, ok := spec.Variables[varFilterTgid]; !ok && o.Filter.active() {
		return nil, nil, &OptionError{fmt.Errorf("%s cannot filter by process or container", d.Name)}
	}
	return params, spec, nil
}

// unusable says, for each program that needs a feature this kernel lacks, why it is not tried.
func (d *Descriptor) unusable(lacking []kernel.Feature) map[string]string {
	out := map[string]string{}
	for prog, f := range d.Needs {
		if slices.ContainsFunc(lacking, func(l kernel.Feature) bool { return l.Name == f.Name }) {
			out[prog] = fmt.Sprintf("needs %s (%s, Linux %s), which this kernel lacks or %s excludes", f.Name, f.What, f.Since, kernel.LackEnv)
		}
	}
	return out
}

// setFilter sets the actor filter of an object that has one (check refused a filter for one that
// has none).
func setFilter(spec *ebpf.CollectionSpec, f Filter) error {
	if _, ok := spec.Variables[varFilterTgid]; !ok {
		return nil
	}
	var comm [MaxComm + 1]byte
	copy(comm[:], f.Comm)
	for name, value := range map[string]any{varFilterTgid: f.PID, varFilterComm: comm, varFilterMntNS: f.MntNS} {
		v, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("object has no variable %s: does it include common.h?", name)
		}
		if err := v.Set(value); err != nil {
			return fmt.Errorf("setting %s: %w", name, err)
		}
	}
	return nil
}

// SetMntNS adds (listed true) or removes a mount namespace from the kernel's filter list.
func (g *Gadget) SetMntNS(inode uint32, listed bool) error {
	m := g.set.Map(mapFilterMntNS)
	if m == nil {
		return errors.New("this gadget cannot filter by container, or is closed")
	}
	if !listed {
		if err := m.Delete(inode); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("updating the container filter: %w", err)
		}
		return nil
	}
	if err := m.Put(inode, uint8(1)); err != nil {
		return fmt.Errorf("updating the container filter: %w", err)
	}
	return nil
}

// Snapshot reads a snapshot gadget once; r, if not nil, attributes its items to containers.
func (g *Gadget) Snapshot(r event.Resolver) ([]Item, error) {
	if g.Desc.Mode != Snapshot {
		return nil, errors.New(g.Desc.Name + " is no snapshot")
	}
	return g.Desc.Snap(g, r)
}

// Set is the loaded object, for gadgets with maps and variables of their own.
func (g *Gadget) Set() *attach.Set { return g.set }

// Choices tells which attach point each hook got.
func (g *Gadget) Choices() []attach.Choice { return g.set.Choices }

// Kind returns the attach kind chosen for a hook.
func (g *Gadget) Kind(hook string) string { return g.set.Kind(hook) }

// Lost returns how many events were lost since the gadget was opened, by cause: those the kernel
// could not deliver, and those user space dropped (CountLost).
func (g *Gadget) Lost() (Lost, error) {
	var l Lost
	for _, c := range LossCauses {
		l[c] = g.userLost[c].Load()
	}
	if g.reader == nil {
		return l, nil
	}
	k, err := g.reader.LostByCause()
	for i, n := range k.Counted {
		l[kernelCauses[i]] += n
	}
	l[LostRecursion] += k.Recursion
	return l, err
}

// CountLost counts n events lost in user space. Safe for concurrent use.
func (g *Gadget) CountLost(c LossCause, n uint64) { g.userLost[c].Add(n) }

// Forgot counts n things a join dropped for want of room (LostForgotten); a processor's joins are
// given it.
func (g *Gadget) Forgot(n uint64) { g.CountLost(LostForgotten, n) }

// Backlog is how many bytes wait in the ring buffer, written and not yet read.
func (g *Gadget) Backlog() int {
	if g.reader == nil {
		return 0
	}
	return g.reader.Backlog()
}

// PeakFill is the fullest the ring buffer was seen, from 0 to 1, since the last call.
func (g *Gadget) PeakFill() float64 {
	if g.reader == nil {
		return 0
	}
	return g.reader.PeakFill()
}

// Close detaches and unloads everything and unmounts what Open mounted.
func (g *Gadget) Close() error {
	var err error
	if g.reader != nil {
		err = g.reader.Close()
	}
	return errors.Join(err, g.set.Close())
}
