package kernel

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
)

// The probe's atomic reaches the kernel with BPF_FETCH in imm: a plain add, which 5.10 takes,
// would find fetching atomics on every kernel.
func TestFetchAddProbeFetches(t *testing.T) {
	var b bytes.Buffer
	if err := fetchAddProbe().Marshal(&b, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	const bpfFetch = 0x01
	found := false
	for raw := b.Bytes(); len(raw) >= asm.InstructionSize; raw = raw[asm.InstructionSize:] {
		if op := asm.OpCode(raw[0]); op.Class() == asm.StXClass && op.Mode() == asm.AtomicMode {
			found = true
			if imm := binary.LittleEndian.Uint32(raw[4:8]); imm != bpfFetch {
				t.Errorf("the probe's atomic has imm %#x, want BPF_ADD|BPF_FETCH (%#x)", imm, bpfFetch)
			}
		}
	}
	if !found {
		t.Fatal("the probe has no atomic instruction")
	}
}

// Kernels before 5.10 are out of scope, whatever their distribution's suffix; 5.10 and later, and
// a release that cannot be read, are not.
func TestOutOfScope(t *testing.T) {
	for rel, out := range map[string]bool{
		"4.19.0-27-amd64": true, "5.4.0-150-generic": true, "5.9.16": true, "3.10.0-1160.el7.x86_64": true,
		"5.10.0-35-amd64": false, "5.15.0-1051-aws": false, "6.1.0-57-arm64": false, "6.18.1": false, "10.0": false, "weird": false,
	} {
		got := outOfScope(rel)
		if (got != "") != out {
			t.Errorf("%s: out of scope %q, want %v", rel, got, out)
		}
		if out && (!strings.Contains(got, rel) || !strings.Contains(got, MinRelease)) {
			t.Errorf("%s: %q names neither the release nor %s", rel, got, MinRelease)
		}
	}
}
