package seccomp

import (
	"bytes"
	"slices"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// useTables makes Build use an architecture's syscall tables for the test, whatever the
// architecture built for.
func useTables(t *testing.T, goarch string) {
	saved := tables
	tables = tablesFor(goarch)
	t.Cleanup(func() { tables = saved })
}

func TestBuildNamesAndKeepsUnnamed(t *testing.T) {
	for _, tc := range []struct {
		goarch       string
		nums, compat []uint32
		arches       []specs.Arch
		native       specs.Arch
	}{
		// x86-64 0 read, 1 write, 59 execve; i386 1 exit, 11 execve
		{"amd64", []uint32{0, 1, 59, 511}, []uint32{11, 1}, []specs.Arch{specs.ArchX32, specs.ArchX86, specs.ArchX86_64}, specs.ArchX86_64},
		// arm64 63 read, 64 write, 221 execve; arm 1 exit, 11 execve
		{"arm64", []uint32{63, 64, 221, 511}, []uint32{11, 1}, []specs.Arch{specs.ArchAARCH64, specs.ArchARM}, specs.ArchAARCH64},
	} {
		t.Run(tc.goarch, func(t *testing.T) {
			useTables(t, tc.goarch)
			p := Build(Syscalls{Native: tc.nums, Compat: tc.compat})
			if p.DefaultAction != specs.ActErrno {
				t.Errorf("defaultAction %s", p.DefaultAction)
			}
			if !slices.Equal(p.Architectures, tc.arches) {
				t.Errorf("architectures %v, want %v", p.Architectures, tc.arches)
			}
			want := []string{"execve", "exit", "read", "write"}
			if len(p.Syscalls) != 1 || p.Syscalls[0].Action != specs.ActAllow || !slices.Equal(p.Syscalls[0].Names, want) {
				t.Errorf("syscalls %+v, want one ALLOW entry with %v", p.Syscalls, want)
			}
			if !slices.Equal(p.Unnamed[tc.native], []uint32{511}) {
				t.Errorf("unnamed %v: 511 was dropped", p.Unnamed)
			}
		})
	}
}

func TestProfilesAreStable(t *testing.T) {
	a, _ := Build(Syscalls{Native: []uint32{3, 0, 1}}).Marshal()
	b, _ := Build(Syscalls{Native: []uint32{1, 3, 0}}).Marshal()
	if !bytes.Equal(a, b) {
		t.Fatalf("same set, different bytes:\n%s\n%s", a, b)
	}
	p, err := Parse(a)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := p.Marshal()
	if !bytes.Equal(a, c) {
		t.Fatalf("parse and write changed the profile:\n%s\n%s", a, c)
	}
}

func TestMergeIsCommutativeAndKeepsRules(t *testing.T) {
	useTables(t, "amd64") // x86-64's numbers below
	one := uint(1)
	base := &Profile{LinuxSeccomp: specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 8, Op: specs.OpEqualTo}}},
			{Names: []string{"mount"}, Action: specs.ActErrno, ErrnoRet: &one},
			{Names: []string{"read"}, Action: specs.ActAllow},
		}}}
	rec := Build(Syscalls{Native: []uint32{0, 1, 500}})
	ab, err := Merge(base, rec)
	if err != nil {
		t.Fatal(err)
	}
	ba, err := Merge(rec, base)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := ab.Marshal()
	y, _ := ba.Marshal()
	if !bytes.Equal(x, y) {
		t.Fatalf("merge is not commutative:\n%s\n%s", x, y)
	}
	if len(ab.Syscalls) != 3 || !slices.Equal(ab.Syscalls[0].Names, []string{"read", "write"}) {
		t.Errorf("merged syscalls %+v", ab.Syscalls)
	}
	if !slices.Equal(ab.Unnamed[specs.ArchX86_64], []uint32{500}) {
		t.Errorf("unnamed lost in merge: %v", ab.Unnamed)
	}
	if _, err := Merge(base, &Profile{LinuxSeccomp: specs.LinuxSeccomp{DefaultAction: specs.ActAllow}}); err == nil {
		t.Error("merged profiles that deny differently")
	}
}

func TestParseRejectsWhatIsNoProfile(t *testing.T) {
	for _, bad := range []string{
		``, `[]`, `{"defaultAction":"SCMP_ACT_NOPE"}`, `{"defaultAction":"SCMP_ACT_ERRNO","archMap":[]}`,
		`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"action":"SCMP_ACT_ALLOW"}]}`,
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// A runtime's start-up joins the allowed names and is named in the profile.
func TestAddRuntimeBase(t *testing.T) {
	useTables(t, "amd64")
	p := Build(Syscalls{Native: []uint32{0, 1}}) // read, write
	p.AddRuntimeBase("runc 1.1.5, noNewPrivileges true", []string{"close", "write"})
	if len(p.Syscalls) != 1 || !slices.Equal(p.Syscalls[0].Names, []string{"close", "read", "write"}) {
		t.Errorf("syscalls %+v", p.Syscalls)
	}
	data, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(data)
	if err != nil || !slices.Equal(back.RuntimeBase, []string{"runc 1.1.5, noNewPrivileges true"}) {
		t.Errorf("parsed back %v, %v:\n%s", back, err, data)
	}
}
