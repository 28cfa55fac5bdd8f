// Package registry lists every gadget. Generic code (the CLI's trace command, doctor, vmtest's
// attach expectations, the JSON documentation, the shared gadget tests) iterates over All, so adding
// a gadget is adding it here.
package registry

import (
	"fmt"

	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/caps"
	"github.com/ghostwatch/ghostwatch/tracer/cni"
	"github.com/ghostwatch/ghostwatch/tracer/devices"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/netlink"
	"github.com/ghostwatch/ghostwatch/tracer/netns"
	"github.com/ghostwatch/ghostwatch/tracer/oom"
	"github.com/ghostwatch/ghostwatch/tracer/seccomp"
	"github.com/ghostwatch/ghostwatch/tracer/setns"
	"github.com/ghostwatch/ghostwatch/tracer/signals"
)

// All are the gadgets, in the order they are listed.
var All = []*gadget.Descriptor{
	&setns.Gadget,
	&caps.Gadget,
	&devices.Gadget,
	&netns.Gadget,
	&netns.Holders,
	&oom.Gadget,
	&signals.Gadget,
	&seccomp.Gadget,
	&cni.Gadget,
	&netlink.Gadget,
}

// Streams are the gadgets `ghostwatch trace` streams.
func Streams() []*gadget.Descriptor { return ofMode(gadget.Stream) }

// Snapshots are the gadgets read once, `ghostwatch GROUP NAME`.
func Snapshots() []*gadget.Descriptor { return ofMode(gadget.Snapshot) }

func ofMode(m gadget.Mode) []*gadget.Descriptor {
	var out []*gadget.Descriptor
	for _, d := range All {
		if d.Mode == m {
			out = append(out, d)
		}
	}
	return out
}

// Page is the documentation page (docs/gadgets/PAGE.md) of the gadget of that name: its own, or
// a snapshot's group's.
func Page(name string) string {
	for _, d := range All {
		if d.Name == name {
			return d.Page()
		}
	}
	return name
}

// BestChoices returns, for every hook of every gadget as "gadget/hook", the attach kind of its
// best candidate: what a kernel on which every attach point works must choose.
func BestChoices() (map[string]string, error) {
	out := map[string]string{}
	for _, d := range All {
		spec, err := d.Load()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.Name, err)
		}
		for _, h := range d.Hooks {
			kinds, err := attach.CandidateKinds(spec, h)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.Name, err)
			}
			out[d.Name+"/"+h.Name] = kinds[0]
		}
	}
	return out, nil
}
