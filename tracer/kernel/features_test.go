package kernel

import (
	"bytes"
	"encoding/binary"
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
