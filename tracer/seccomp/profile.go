package seccomp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ghostwatch/ghostwatch/gen/syscalls"
)

// Profile is an OCI seccomp profile (the linux.seccomp object of a runtime spec), plus the syscall
// numbers that were recorded but have no name in ghostwatch's table, so that none is dropped.
// Runtimes ignore the extra field.
type Profile struct {
	specs.LinuxSeccomp
	Unnamed map[specs.Arch][]uint32 `json:"ghostwatchUnnamedSyscalls,omitempty"`
	// RuntimeBase names the runtime start-ups added (AddRuntimeBase), sorted.
	RuntimeBase []string `json:"ghostwatchRuntimeBase,omitempty"`
}

// AddRuntimeBase allows the x86-64 syscalls a runtime makes between installing the profile and
// exec'ing the workload (tracer/seccomp/runtimebase), and names that set in the profile.
func (p *Profile) AddRuntimeBase(label string, names []string) {
	p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: slices.Clone(names), Action: specs.ActAllow})
	p.RuntimeBase = append(p.RuntimeBase, label)
	p.normalize()
}

// syscallTable is a syscall table the kernel records, with its libseccomp architecture and its generated
// names.
type syscallTable struct {
	arch  specs.Arch
	names map[uint32]string
	pick  func(Syscalls) []uint32
	// always: listed in every profile; else only in those that recorded a call of it (arm64's
	// AArch32 compat table: most arm64 hosts cannot run AArch32 at all).
	always bool
}

// tables are this architecture's, in the order of the profile's architectures: the kernel records
// the tables of the architecture it runs (bpf/seccomp.bpf.c), which is ghostwatch's own.
var tables = tablesFor(runtime.GOARCH)

func tablesFor(goarch string) []syscallTable {
	if goarch == "arm64" {
		return []syscallTable{
			{specs.ArchAARCH64, syscalls.Names["aarch64"], func(s Syscalls) []uint32 { return s.Native }, true},
			{specs.ArchARM, syscalls.Names["arm"], func(s Syscalls) []uint32 { return s.Compat }, false},
		}
	}
	return []syscallTable{
		{specs.ArchX86_64, syscalls.Names["x86_64"], func(s Syscalls) []uint32 { return s.Native }, true},
		{specs.ArchX86, syscalls.Names["x86"], func(s Syscalls) []uint32 { return s.Compat }, true},
		{specs.ArchX32, syscalls.Names["x32"], func(s Syscalls) []uint32 { return s.X32 }, true},
	}
}

// Build makes the profile that allows exactly the recorded syscalls and denies the rest with
// EPERM (the runtimes' errno for SCMP_ACT_ERRNO).
func Build(s Syscalls) *Profile {
	p := &Profile{LinuxSeccomp: specs.LinuxSeccomp{DefaultAction: specs.ActErrno}}
	var names []string
	for _, t := range tables {
		if t.always || len(t.pick(s)) > 0 {
			p.Architectures = append(p.Architectures, t.arch)
		}
		for _, n := range t.pick(s) {
			if name, ok := t.names[n]; ok {
				names = append(names, name)
				continue
			}
			if p.Unnamed == nil {
				p.Unnamed = map[specs.Arch][]uint32{}
			}
			p.Unnamed[t.arch] = append(p.Unnamed[t.arch], n)
		}
	}
	if len(names) > 0 {
		p.Syscalls = []specs.LinuxSyscall{{Names: names, Action: specs.ActAllow}}
	}
	p.normalize()
	return p
}

// normalize puts the profile in its one canonical form: the same content always gives the same
// bytes. Unconditional entries with the same action are joined, names sorted and made unique,
// entries and architectures sorted.
func (p *Profile) normalize() {
	slices.Sort(p.Architectures)
	p.Architectures = slices.Compact(p.Architectures)
	plain := map[specs.LinuxSeccompAction][]string{}
	var rest []specs.LinuxSyscall
	for _, s := range p.Syscalls {
		if len(s.Args) == 0 && s.ErrnoRet == nil {
			plain[s.Action] = append(plain[s.Action], s.Names...)
			continue
		}
		slices.Sort(s.Names)
		s.Names = slices.Compact(s.Names)
		rest = append(rest, s)
	}
	var out []specs.LinuxSyscall
	for action, names := range plain {
		slices.Sort(names)
		out = append(out, specs.LinuxSyscall{Names: slices.Compact(names), Action: action})
	}
	slices.SortFunc(out, func(a, b specs.LinuxSyscall) int { return strings.Compare(string(a.Action), string(b.Action)) })
	key := func(s specs.LinuxSyscall) string { b, _ := json.Marshal(s); return string(b) }
	slices.SortFunc(rest, func(a, b specs.LinuxSyscall) int { return strings.Compare(key(a), key(b)) })
	rest = slices.CompactFunc(rest, func(a, b specs.LinuxSyscall) bool { return key(a) == key(b) })
	p.Syscalls = append(out, rest...)
	for arch, nums := range p.Unnamed {
		slices.Sort(nums)
		p.Unnamed[arch] = slices.Compact(nums)
	}
	slices.Sort(p.RuntimeBase)
	p.RuntimeBase = slices.Compact(p.RuntimeBase)
}

// Merge returns the union of two profiles: what either allows, the other's rules kept. Both must
// deny the same way. Merge(a, b) and Merge(b, a) are the same bytes.
func Merge(a, b *Profile) (*Profile, error) {
	if a.DefaultAction != b.DefaultAction || !sameErrno(a.DefaultErrnoRet, b.DefaultErrnoRet) {
		return nil, fmt.Errorf("profiles with different default actions (%s, %s) cannot be merged", a.DefaultAction, b.DefaultAction)
	}
	m := &Profile{LinuxSeccomp: specs.LinuxSeccomp{
		DefaultAction:   a.DefaultAction,
		DefaultErrnoRet: a.DefaultErrnoRet,
		Architectures:   append(slices.Clone(a.Architectures), b.Architectures...),
		Flags:           append(slices.Clone(a.Flags), b.Flags...),
		Syscalls:        append(slices.Clone(a.Syscalls), b.Syscalls...),
	}, RuntimeBase: append(slices.Clone(a.RuntimeBase), b.RuntimeBase...)}
	slices.Sort(m.Flags)
	m.Flags = slices.Compact(m.Flags)
	for _, p := range []*Profile{a, b} {
		for arch, nums := range p.Unnamed {
			if m.Unnamed == nil {
				m.Unnamed = map[specs.Arch][]uint32{}
			}
			m.Unnamed[arch] = append(m.Unnamed[arch], nums...)
		}
	}
	m.normalize()
	return m, nil
}

func sameErrno(a, b *uint) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// Marshal writes the profile as indented JSON with a final newline.
func (p *Profile) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

var knownActions = map[specs.LinuxSeccompAction]bool{
	specs.ActKill: true, specs.ActKillProcess: true, specs.ActKillThread: true, specs.ActTrap: true,
	specs.ActErrno: true, specs.ActTrace: true, specs.ActAllow: true, specs.ActLog: true, specs.ActNotify: true,
}

// Parse reads an OCI seccomp profile; what is not one is an error saying what is wrong.
func Parse(data []byte) (*Profile, error) {
	var p Profile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("not an OCI seccomp profile: %v", err)
	}
	if !knownActions[p.DefaultAction] {
		return nil, fmt.Errorf("not an OCI seccomp profile: defaultAction %q is not a seccomp action", p.DefaultAction)
	}
	for i, s := range p.Syscalls {
		if len(s.Names) == 0 || !knownActions[s.Action] {
			return nil, fmt.Errorf("not an OCI seccomp profile: syscalls[%d] needs names and a seccomp action", i)
		}
	}
	p.normalize()
	return &p, nil
}
