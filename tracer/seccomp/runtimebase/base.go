// Package runtimebase holds what OCI runtimes do between installing a container's seccomp filter
// and exec'ing its workload: the syscalls a profile must allow for the container to start under
// it, which a recording that began at the workload's exec (no filter installed) does not see. The
// sets are learnt from the runtimes themselves by tools/runtimebase, committed in gen/runtimebase,
// and looked up per runtime, release and noNewPrivileges (For).
package runtimebase

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	data "github.com/ghostwatch/ghostwatch/gen/runtimebase"
	"github.com/ghostwatch/ghostwatch/tracer/ociruntime"
)

// Runtimes are the runtimes whose start-up is learnt.
var Runtimes = []string{"runc", "crun"}

// Base is what one runtime release does between installing a container's seccomp filter and
// exec'ing its workload, per noNewPrivileges mode (which moves the install: runc installs early,
// before dropping privileges, or just before exec with noNewPrivileges). Syscall names are those
// of the x86-64 table; the runtimes are native.
type Base struct {
	Runtime         string   `json:"runtime"`
	Version         string   `json:"version"`
	NewPrivileges   []string `json:"newPrivileges"`   // noNewPrivileges false
	NoNewPrivileges []string `json:"noNewPrivileges"` // noNewPrivileges true
}

// Syscalls returns the set of a mode.
func (b *Base) Syscalls(nnp bool) []string {
	if nnp {
		return b.NoNewPrivileges
	}
	return b.NewPrivileges
}

// Add merges names into a mode's set and returns those that were not in it.
func (b *Base) Add(nnp bool, names []string) []string {
	set := &b.NewPrivileges
	if nnp {
		set = &b.NoNewPrivileges
	}
	var added []string
	for _, n := range names {
		if !slices.Contains(*set, n) {
			added = append(added, n)
		}
	}
	*set = append(*set, added...)
	slices.Sort(*set)
	return added
}

// Name is the set's label in profiles and messages: "runc 1.1.5, noNewPrivileges false".
func (b *Base) Name(nnp bool) string {
	return fmt.Sprintf("%s %s, noNewPrivileges %v", b.Runtime, b.Version, nnp)
}

func fileName(runtime, version string) string { return runtime + "-" + version + ".json" }

// ReadFile reads a runtime release's set from dir; a release never recorded gives an empty one.
func ReadFile(dir, runtime, version string) (*Base, error) {
	b := &Base{Runtime: runtime, Version: version, NewPrivileges: []string{}, NoNewPrivileges: []string{}}
	raw, err := os.ReadFile(filepath.Join(dir, fileName(runtime, version)))
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	return b, json.Unmarshal(raw, b)
}

// WriteFile writes the set into dir, in one canonical form.
func (b *Base) WriteFile(dir string) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(b); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, fileName(b.Runtime, b.Version)), buf.Bytes(), 0o644)
}

// Committed returns the sets built into ghostwatch.
func Committed() ([]*Base, error) {
	entries, err := fs.Glob(data.Files, "*.json")
	if err != nil {
		return nil, err
	}
	var out []*Base
	for _, name := range entries {
		raw, err := data.Files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		var b Base
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, fmt.Errorf("gen/runtimebase/%s: %w", name, err)
		}
		out = append(out, &b)
	}
	return out, nil
}

// Lookup returns the set for a runtime release. With no set for that release, it returns the set
// of the same runtime's nearest release and exact false (the caller warns); with none for the
// runtime, nil.
func Lookup(runtime, version string) (b *Base, exact bool, err error) {
	all, err := Committed()
	if err != nil {
		return nil, false, err
	}
	want := versionKey(version)
	for _, c := range all {
		if c.Runtime != runtime {
			continue
		}
		if c.Version == version {
			return c, true, nil
		}
		if b == nil || distance(versionKey(c.Version), want) < distance(versionKey(b.Version), want) {
			b = c
		}
	}
	return b, false, nil
}

// versionKey makes "1.1.5" comparable: major, minor, patch.
func versionKey(v string) [3]int {
	var k [3]int
	for i, part := range strings.SplitN(v, ".", 3) {
		k[i], _ = strconv.Atoi(part)
	}
	return k
}

// distance orders releases by how far apart they are: major first, then minor, then patch.
func distance(a, b [3]int) int {
	d := 0
	for i := range a {
		x := a[i] - b[i]
		if x < 0 {
			x = -x
		}
		d = d*1000 + x
	}
	return d
}

// Start is what to add to the profile of a container so that its runtime can start it under it.
type Start struct {
	Label string   // names the set in the profile: "runc 1.1.5, noNewPrivileges false"
	Names []string // x86-64 syscall names
}

var versions sync.Map // runtime binary to its ociruntime.Version, asked once

// For returns the start-up set for a container that the runtime binary (a name in PATH or a path)
// runs with noNewPrivileges nnp, and a warning when there is none or only another release's.
func For(binary string, nnp bool) (s *Start, warn string) {
	if binary == "" {
		return nil, "its runtime is not known: no runtime start-up is added, so it may not start under the profile unless a seccomp filter was installed while it was recorded"
	}
	type nameVersion struct{ name, version string }
	v, ok := versions.Load(binary)
	if !ok {
		name, version, err := ociruntime.Version(binary)
		if err != nil {
			return nil, fmt.Sprintf("%v: no runtime start-up is added, so it may not start under the profile", err)
		}
		v, _ = versions.LoadOrStore(binary, nameVersion{name, version})
	}
	nv := v.(nameVersion)
	b, exact, err := Lookup(nv.name, nv.version)
	switch {
	case err != nil:
		return nil, err.Error()
	case b == nil:
		return nil, fmt.Sprintf("runtime %s %s: ghostwatch knows the start-up of %s only: none is added, so it may not start under the profile",
			nv.name, nv.version, strings.Join(Runtimes, " and "))
	case !exact:
		return &Start{Label: fmt.Sprintf("%s %s (recorded for %s), noNewPrivileges %v", b.Runtime, nv.version, b.Version, nnp), Names: b.Syscalls(nnp)},
			fmt.Sprintf("runtime %s %s: its start-up was never recorded: that of %s %s is added (record it with tools/runtimebase)",
				nv.name, nv.version, b.Runtime, b.Version)
	}
	return &Start{Label: b.Name(nnp), Names: b.Syscalls(nnp)}, ""
}
