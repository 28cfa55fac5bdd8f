package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/registry"
	"github.com/ghostwatch/ghostwatch/vmtest"
)

// kernelTable is the "kernels" section: for every hook, the attach kind it takes on each row of
// vmtest's matrix, which vmtest asserts there (GHOSTWATCH_EXPECT_ATTACH), and what each kernel
// lacks (GHOSTWATCH_EXPECT_LACKS). A hook that takes a program variant without fetching atomics
// says so.
func kernelTable() (string, error) {
	best, err := registry.BestChoices()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("| gadget/hook |")
	for _, r := range vmtest.Matrix {
		pending := ""
		if _, ok := vmtest.Pending[r]; ok {
			pending = " (pending)"
		}
		fmt.Fprintf(&b, " %s %s%s |", r.Series, r.Arch, pending)
	}
	b.WriteString("\n| --- |" + strings.Repeat(" --- |", len(vmtest.Matrix)) + "\n")
	for _, d := range registry.All {
		spec, err := d.Load()
		if err != nil {
			return "", fmt.Errorf("%s: %w", d.Name, err)
		}
		for _, h := range d.Hooks {
			kinds, err := attach.CandidateKinds(spec, h)
			if err != nil {
				return "", fmt.Errorf("%s: %w", d.Name, err)
			}
			key := d.Name + "/" + h.Name
			fmt.Fprintf(&b, "| %s |", key)
			for _, r := range vmtest.Matrix {
				kind := r.Expect(best)[key]
				lacks := strings.Split(vmtest.Lacks[r.Series], ",")
				// The candidate taken: the first of that kind whose programs need nothing lacked.
				cell, without := kind, ""
				for i, c := range h.Candidates {
					if kinds[i] != kind {
						continue
					}
					if j := slices.IndexFunc(c, func(p string) bool { f, ok := d.Needs[p]; return ok && slices.Contains(lacks, f.Name) }); j >= 0 {
						without = d.Needs[c[j]].Name
						continue
					}
					if without != "" {
						cell += " without " + without
					}
					break
				}
				fmt.Fprintf(&b, " %s |", cell)
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("| *features lacked* |")
	for _, r := range vmtest.Matrix {
		lacks := vmtest.Lacks[r.Series]
		if lacks == "" {
			lacks = "none"
		}
		fmt.Fprintf(&b, " %s |", strings.ReplaceAll(lacks, ",", ", "))
	}
	b.WriteString("\n")
	return b.String(), nil
}
