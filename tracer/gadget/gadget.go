// Package gadget holds what every gadget does the same way: check privileges, mount what tracing
// needs, push the actor filter into the kernel, attach the hooks, read the ring buffer, count drops,
// and undo all of it on Close.
package gadget

import (
	"context"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"

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

// MntNSMode is how the mount namespace list filters actors.
type MntNSMode = header.HeaderMntnsFilter

// The mount namespace filter modes.
const (
	MntNSOff    = header.HeaderMntnsFilterFILTER_MNTNS_OFF
	MntNSOnly   = header.HeaderMntnsFilterFILTER_MNTNS_ONLY
	MntNSExcept = header.HeaderMntnsFilterFILTER_MNTNS_EXCEPT
)

// Gadget is a loaded, attached gadget.
type Gadget struct {
	set     *attach.Set
	reader  *stream.Reader
	clock   event.Clock
	release func()
}

// Open loads spec (a bpf2go object including bpf/include/common.h) and attaches its hooks.
// On error nothing stays loaded or mounted.
func Open(spec *ebpf.CollectionSpec, hooks []attach.Hook, f Filter) (g *Gadget, err error) {
	if len(f.Comm) > MaxComm {
		return nil, fmt.Errorf("comm %q is longer than the kernel's %d characters", f.Comm, MaxComm)
	}
	if err := kernel.CheckPrivileges(); err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil { // kernels before 5.11 account BPF memory here
		return nil, fmt.Errorf("raising RLIMIT_MEMLOCK: %w", err)
	}
	release, err := kernel.Use(kernel.Tracefs)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			release()
		}
	}()

	var comm [MaxComm + 1]byte
	copy(comm[:], f.Comm)
	if err := setVariable(spec, "filter_tgid", f.PID); err != nil {
		return nil, err
	}
	if err := setVariable(spec, "filter_comm", comm); err != nil {
		return nil, err
	}
	if err := setVariable(spec, "filter_mntns_mode", f.MntNS); err != nil {
		return nil, err
	}

	set, err := attach.Load(spec, hooks)
	if err != nil {
		return nil, err
	}
	reader, err := stream.New(set.Map("events"), set.Map("lost"))
	if err != nil {
		set.Close()
		return nil, err
	}
	return &Gadget{set: set, reader: reader, clock: event.NewClock(), release: release}, nil
}

func setVariable(spec *ebpf.CollectionSpec, name string, value any) error {
	v, ok := spec.Variables[name]
	if !ok {
		return fmt.Errorf("object has no variable %s: does it include common.h?", name)
	}
	if err := v.Set(value); err != nil {
		return fmt.Errorf("setting %s: %w", name, err)
	}
	return nil
}

// SetMntNS adds (listed true) or removes a mount namespace from the kernel's filter list.
func (g *Gadget) SetMntNS(inode uint32, listed bool) error {
	m := g.set.Map("filter_mntns")
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

// Set is the loaded object, for gadgets with maps and variables of their own.
func (g *Gadget) Set() *attach.Set { return g.set }

// Choices tells which attach point each hook got.
func (g *Gadget) Choices() []attach.Choice { return g.set.Choices }

// Kind returns the attach kind chosen for a hook.
func (g *Gadget) Kind(hook string) string { return g.set.Kind(hook) }

// Clock converts the kernel's timestamps.
func (g *Gadget) Clock() event.Clock { return g.clock }

// Run delivers raw events to handle until ctx is done (see stream.Reader.Run).
func (g *Gadget) Run(ctx context.Context, handle func(raw []byte), onLost func(total uint64)) error {
	return g.reader.Run(ctx, handle, onLost)
}

// Lost returns how many events the kernel could not deliver.
func (g *Gadget) Lost() (uint64, error) { return g.reader.Lost() }

// Close detaches and unloads everything and unmounts what Open mounted.
func (g *Gadget) Close() error {
	err := errors.Join(g.reader.Close(), g.set.Close())
	g.release()
	return err
}
