// Package attach loads a gadget's BPF object and attaches each of its hooks at the best attach
// point this kernel offers, trying a ranked list of candidates (fentry/fexit, then kprobes, then
// tracepoints) and recording what was chosen and why the better ones were not. It mounts tracefs
// only when a tracepoint is tried, and attaches iterators (iter/) and LSM programs (lsm/) too.
package attach

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

	"github.com/ghostwatch/ghostwatch/tracer/kernel"
)

// Hook is one thing a gadget observes, with the attach points that can observe it, best first.
type Hook struct {
	Name       string
	Candidates [][]string // each candidate: the programs (by name) attached together
	// Without says what the gadget loses when no candidate attaches; empty means the hook is
	// required and loading fails.
	Without string
}

// Choice records how one hook was attached.
type Choice struct {
	Hook     string      `json:"hook"`
	Chosen   string      `json:"chosen"` // e.g. "fentry switch_task_namespaces"; "" if none attached
	Kind     string      `json:"kind"`   // fentry, fexit, kprobe, kretprobe, tracepoint, raw_tp, tp_btf
	Without  string      `json:"without,omitempty"`
	Rejected []Rejection `json:"rejected,omitempty"`
}

// Rejection is a better candidate that did not work here, and why.
type Rejection struct {
	Candidate string `json:"candidate"`
	Reason    string `json:"reason"`
}

func (c Choice) String() string {
	if c.Chosen == "" {
		return fmt.Sprintf("%s: none (%s)", c.Hook, c.Without)
	}
	return fmt.Sprintf("%s: %s", c.Hook, c.Chosen)
}

// Set is a loaded object: its maps and the programs and links of the chosen candidates.
type Set struct {
	maps    *ebpf.Collection
	loaded  []*ebpf.Collection
	progs   map[string]*ebpf.Program     // attached, by name
	specs   map[string]*ebpf.ProgramSpec // of the attached programs, to attach them again
	linkOf  map[string]link.Link         // by program name; nil while detached
	hookOf  map[string][]string          // the programs chosen for each hook
	release func()                       // unmounts tracefs if this set mounted it
	Choices []Choice
}

// Load creates the maps of spec, then attaches each hook. A candidate with a program in unusable
// (program name: why it cannot run on this kernel) is skipped, with that reason. On error nothing
// stays loaded.
func Load(spec *ebpf.CollectionSpec, hooks []Hook, unusable map[string]string) (*Set, error) {
	if err := rlimit.RemoveMemlock(); err != nil { // kernels before 5.11 account BPF memory there
		return nil, fmt.Errorf("raising RLIMIT_MEMLOCK: %w", err)
	}
	mapsOnly := spec.Copy()
	mapsOnly.Programs = map[string]*ebpf.ProgramSpec{}
	maps, err := ebpf.NewCollection(mapsOnly)
	if err != nil {
		return nil, fmt.Errorf("creating maps: %w", err)
	}
	s := &Set{maps: maps, progs: map[string]*ebpf.Program{}, specs: map[string]*ebpf.ProgramSpec{},
		linkOf: map[string]link.Link{}, hookOf: map[string][]string{}}
	for _, h := range hooks {
		if err := s.attachHook(spec, h, unusable); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Set) attachHook(spec *ebpf.CollectionSpec, h Hook, unusable map[string]string) error {
	choice := Choice{Hook: h.Name}
candidates:
	for _, names := range h.Candidates {
		desc, kind, err := describe(spec, names)
		if err != nil {
			return fmt.Errorf("hook %s: %w", h.Name, err)
		}
		for _, n := range names {
			if why, ok := unusable[n]; ok {
				choice.Rejected = append(choice.Rejected, Rejection{Candidate: desc, Reason: why})
				continue candidates
			}
		}
		if kind == "kprobe" || kind == "kretprobe" {
			if !kernel.HasKprobes() { // else the error would only say a tracefs file is missing
				choice.Rejected = append(choice.Rejected, Rejection{Candidate: desc, Reason: "this kernel has no kprobes (CONFIG_KPROBES is off)"})
				continue
			}
		}
		if kind == "tracepoint" && s.release == nil {
			// Tracepoint ids are read from tracefs: mount it for as long as the set lives.
			release, err := kernel.Use(kernel.Tracefs)
			if err != nil {
				choice.Rejected = append(choice.Rejected, Rejection{Candidate: desc, Reason: err.Error()})
				continue
			}
			s.release = release
		}
		if err := s.tryCandidate(spec, names); err != nil {
			choice.Rejected = append(choice.Rejected, Rejection{Candidate: desc, Reason: whyNot(spec, names, err)})
			continue
		}
		s.hookOf[h.Name] = names
		choice.Chosen, choice.Kind = desc, kind
		s.Choices = append(s.Choices, choice)
		return nil
	}
	if h.Without == "" {
		var why []string
		for _, r := range choice.Rejected {
			why = append(why, r.Candidate+": "+r.Reason)
		}
		return fmt.Errorf("no attach point works for %s (%s)", h.Name, strings.Join(why, "; "))
	}
	choice.Without = h.Without
	s.Choices = append(s.Choices, choice)
	return nil
}

// tryCandidate loads the candidate's programs against the already created maps and attaches
// them all, or leaves nothing behind.
func (s *Set) tryCandidate(spec *ebpf.CollectionSpec, names []string) error {
	only := spec.Copy()
	only.Programs = map[string]*ebpf.ProgramSpec{}
	for _, n := range names {
		only.Programs[n] = spec.Programs[n]
	}
	coll, err := ebpf.NewCollectionWithOptions(only, ebpf.CollectionOptions{MapReplacements: s.maps.Maps})
	if err != nil {
		return err
	}
	var links []link.Link
	for _, n := range names {
		l, err := attachProgram(only.Programs[n], coll.Programs[n])
		if err != nil {
			for _, l := range links {
				l.Close()
			}
			coll.Close()
			return fmt.Errorf("attaching %s: %w", n, err)
		}
		links = append(links, l)
	}
	s.loaded = append(s.loaded, coll)
	for i, n := range names {
		s.progs[n], s.specs[n], s.linkOf[n] = coll.Programs[n], only.Programs[n], links[i]
	}
	return nil
}

// Detach detaches a hook's programs, keeping them loaded, so that they cost nothing until Attach.
func (s *Set) Detach(hook string) error {
	var errs []error
	for _, n := range s.hookOf[hook] {
		if l := s.linkOf[n]; l != nil {
			errs = append(errs, l.Close())
			s.linkOf[n] = nil
		}
	}
	return errors.Join(errs...)
}

// Attach attaches again the programs of a hook that Detach detached.
func (s *Set) Attach(hook string) error {
	for _, n := range s.hookOf[hook] {
		if s.linkOf[n] != nil {
			continue
		}
		l, err := attachProgram(s.specs[n], s.progs[n])
		if err != nil {
			return fmt.Errorf("attaching %s: %w", n, err)
		}
		s.linkOf[n] = l
	}
	return nil
}

// attachProgram attaches a program where its ELF section says.
func attachProgram(ps *ebpf.ProgramSpec, p *ebpf.Program) (link.Link, error) {
	kind, target, _ := strings.Cut(ps.SectionName, "/")
	switch kind {
	case "tracepoint":
		group, name, _ := strings.Cut(target, "/")
		return link.Tracepoint(group, name, p, nil)
	case "raw_tp", "raw_tracepoint":
		return link.AttachRawTracepoint(link.RawTracepointOptions{Name: target, Program: p})
	case "kprobe":
		return link.Kprobe(target, p, nil)
	case "kretprobe":
		return link.Kretprobe(target, p, nil)
	case "fentry", "fexit", "tp_btf":
		return link.AttachTracing(link.TracingOptions{Program: p})
	case "lsm":
		return link.AttachLSM(link.LSMOptions{Program: p})
	case "iter":
		return link.AttachIter(link.IterOptions{Program: p})
	}
	return nil, fmt.Errorf("unknown section %q", ps.SectionName)
}

// describe names a candidate by its kind and targets: "fentry switch_task_namespaces". A candidate's
// programs are of one kind, or an entry and exit pair of one family (fentry and fexit, kprobe and
// kretprobe), whose kind is the family's: "fentry+fexit devcgroup_access_write".
func describe(spec *ebpf.CollectionSpec, names []string) (desc, kind string, err error) {
	var kinds, targets []string
	for _, n := range names {
		ps, ok := spec.Programs[n]
		if !ok {
			return "", "", fmt.Errorf("no program %q in the object", n)
		}
		k, target, _ := strings.Cut(ps.SectionName, "/")
		if len(kinds) > 0 && family(k) != family(kinds[0]) {
			return "", "", fmt.Errorf("candidate mixes %s and %s programs", kinds[0], k)
		}
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
		if target = strings.ReplaceAll(target, "/", ":"); !slices.Contains(targets, target) {
			targets = append(targets, target)
		}
	}
	kind = kinds[0]
	if len(kinds) > 1 {
		kind = family(kind)
	}
	return strings.Join(kinds, "+") + " " + strings.Join(targets, ","), kind, nil
}

// family is the entry kind of an exit kind.
func family(kind string) string {
	switch kind {
	case "fexit":
		return "fentry"
	case "kretprobe":
		return "kprobe"
	}
	return kind
}

// CandidateKinds returns the attach kind of each of a hook's candidates, best first.
func CandidateKinds(spec *ebpf.CollectionSpec, h Hook) ([]string, error) {
	kinds, _, err := candidates(spec, h)
	return kinds, err
}

// Describe names each of a hook's candidates as doctor shows them ("fentry switch_task_namespaces"),
// best first.
func Describe(spec *ebpf.CollectionSpec, h Hook) ([]string, error) {
	_, descs, err := candidates(spec, h)
	return descs, err
}

func candidates(spec *ebpf.CollectionSpec, h Hook) (kinds, descs []string, err error) {
	for _, names := range h.Candidates {
		desc, kind, err := describe(spec, names)
		if err != nil {
			return nil, nil, fmt.Errorf("hook %s: %w", h.Name, err)
		}
		kinds, descs = append(kinds, kind), append(descs, desc)
	}
	return kinds, descs, nil
}

// whyNot says why a candidate failed with err: what the kernel lacks for one of its programs, with
// the first release that has it, or else the error, shortened.
func whyNot(spec *ebpf.CollectionSpec, names []string, err error) string {
	for _, n := range names {
		kind, target, _ := strings.Cut(spec.Programs[n].SectionName, "/")
		if l := lacked(runtime.GOARCH, kernel.Release(), kind, target, err, kernelHas); l != "" {
			return l
		}
	}
	return reason(err)
}

// reason shortens a load or attach error to what an operator needs to read.
func reason(err error) string {
	switch {
	case errors.Is(err, ebpf.ErrNotSupported):
		return "not supported by this kernel"
	case errors.Is(err, link.ErrNotSupported):
		return "not supported by this kernel"
	}
	// cilium/ebpf suggests the memlock limit on any EPERM; Load has already raised it.
	msg := strings.TrimSuffix(err.Error(), " (MEMLOCK may be too low, consider rlimit.RemoveMemlock)")
	if len(msg) > 200 { // verifier errors can run long; doctor shows enough to search for
		msg = msg[:200] + "..."
	}
	return msg
}

// Variable returns one of the object's global variables by name; writable ones are shared with the
// kernel through memory-mapped maps.
func (s *Set) Variable(name string) *ebpf.Variable { return s.maps.Variables[name] }

// Map returns one of the object's maps by name; nil once the set is closed.
func (s *Set) Map(name string) *ebpf.Map {
	if s.maps == nil {
		return nil
	}
	return s.maps.Maps[name]
}

// Programs returns the attached programs.
func (s *Set) Programs() []*ebpf.Program {
	out := make([]*ebpf.Program, 0, len(s.progs))
	for _, p := range s.progs {
		out = append(out, p)
	}
	return out
}

// Iter returns the link of an attached iterator program, to read it; nil if there is none.
func (s *Set) Iter(program string) *link.Iter {
	it, _ := s.linkOf[program].(*link.Iter)
	return it
}

// Chosen returns the names of the programs of a hook's chosen candidate; nil if none attached.
func (s *Set) Chosen(hook string) []string { return s.hookOf[hook] }

// Kind returns the attach kind chosen for a hook, or "" if none attached.
func (s *Set) Kind(hook string) string {
	for _, c := range s.Choices {
		if c.Hook == hook {
			return c.Kind
		}
	}
	return ""
}

// Close detaches every link and unloads every program and map. It is safe to call twice.
func (s *Set) Close() error {
	var errs []error
	for n, l := range s.linkOf {
		if l != nil {
			errs = append(errs, l.Close())
			s.linkOf[n] = nil
		}
	}
	for _, c := range s.loaded {
		c.Close()
	}
	if s.maps != nil {
		s.maps.Close()
	}
	if s.release != nil {
		s.release()
	}
	s.loaded, s.maps, s.progs, s.linkOf, s.release = nil, nil, nil, nil, nil
	return errors.Join(errs...)
}
