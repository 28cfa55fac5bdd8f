package runtimebase

import (
	"slices"
	"testing"
)

// The committed sets are the ones CI checks against the runtimes: runc's and crun's of Debian 12,
// each mode with the exec that ends it, and none with the privileged set-up before the install.
func TestCommittedSets(t *testing.T) {
	for _, rt := range []struct{ name, version string }{{"runc", "1.1.5"}, {"crun", "1.8.1"}} {
		b, exact, err := Lookup(rt.name, rt.version)
		if err != nil || b == nil || !exact {
			t.Fatalf("Lookup(%s, %s) = %v, %v, %v", rt.name, rt.version, b, exact, err)
		}
		for _, nnp := range []bool{false, true} {
			set := b.Syscalls(nnp)
			if !slices.Contains(set, "execve") || !slices.IsSorted(set) {
				t.Errorf("%s: %v: want sorted, with execve", b.Name(nnp), set)
			}
			for _, setup := range []string{"mount", "pivot_root", "umount2", "exit"} {
				if slices.Contains(set, setup) {
					t.Errorf("%s: %v: has %s, which comes before the install (or is the probe's)", b.Name(nnp), set, setup)
				}
			}
		}
	}
}

// A release with no set of its own gets the nearest one of the same runtime, and says so; another
// runtime gets none.
func TestLookupNearestRelease(t *testing.T) {
	b, exact, err := Lookup("runc", "1.1.12")
	if err != nil || b == nil || exact || b.Version != "1.1.5" {
		t.Errorf("Lookup(runc, 1.1.12) = %+v, exact %v, %v; want 1.1.5's, not exact", b, exact, err)
	}
	if b, _, _ := Lookup("youki", "0.3.0"); b != nil {
		t.Errorf("Lookup(youki) = %+v, want none", b)
	}
	if distance(versionKey("1.2.0"), versionKey("1.1.5")) <= distance(versionKey("1.1.0"), versionKey("1.1.5")) {
		t.Error("a minor release apart must be further than patches apart")
	}
}

func TestAddKeepsSetsSortedAndSaysWhatIsNew(t *testing.T) {
	b := &Base{Runtime: "runc", Version: "9.9.9"}
	if got := b.Add(false, []string{"write", "close"}); !slices.Equal(got, []string{"write", "close"}) {
		t.Errorf("first Add = %v", got)
	}
	if got := b.Add(false, []string{"close", "read"}); !slices.Equal(got, []string{"read"}) {
		t.Errorf("second Add = %v, want [read]", got)
	}
	if !slices.Equal(b.NewPrivileges, []string{"close", "read", "write"}) || len(b.NoNewPrivileges) != 0 {
		t.Errorf("sets %v / %v", b.NewPrivileges, b.NoNewPrivileges)
	}
}

func TestForUnknownRuntimeWarns(t *testing.T) {
	if s, warn := For("", false); s != nil || warn == "" {
		t.Errorf("For(\"\") = %v, %q: want nothing and a warning", s, warn)
	}
	if s, warn := For("/nonexistent/runc", false); s != nil || warn == "" {
		t.Errorf("For(/nonexistent/runc) = %v, %q: want nothing and a warning", s, warn)
	}
}
