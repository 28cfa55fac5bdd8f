package setns

import (
	"encoding/json"
	"testing"
	"unsafe"

	gen "github.com/ghostwatch/ghostwatch/gen/setns"
	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

// record builds a kernel record as the BPF program writes it: a setns into a net namespace by fd,
// and an unshare of several types.
func record(setns bool) []byte {
	var rec gen.SetnsEvent
	rec.Hdr.Kind = uint32(gen.SetnsSetnsKindSETNS_CALL)
	rec.Hdr.TsBootNs = 123456789
	rec.Hdr.Pid, rec.Hdr.Tid, rec.Hdr.Ppid = 4242, 4243, 1
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&rec.Hdr.Comm[0])), len(rec.Hdr.Comm)), "nsenter \"<x>\"")
	for i := range rec.Hdr.Ns {
		rec.Hdr.Ns[i] = 4026531830 + uint32(i)
	}
	if setns {
		rec.Syscall, rec.Fd, rec.FdKind = gen.SetnsSetnsSyscallSYSCALL_SETNS, 3, gen.SetnsSetnsFdKindFD_NSFS
		rec.Flags, rec.NsMask = 0x40000000, 0x40000000
		rec.Target[1] = 4026532177
	} else {
		rec.Syscall, rec.Flags, rec.NsMask = gen.SetnsSetnsSyscallSYSCALL_UNSHARE, 0x6c020000, 0x6c020000
		for i := range rec.Target {
			rec.Target[i] = 4026532300 + uint32(i)
		}
		rec.Ret = -1
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&rec)), unsafe.Sizeof(rec))
}

// The hand-written JSON is byte for byte what encoding/json writes for the same event.
func TestJSONMatchesEncodingJSON(t *testing.T) {
	dec := gadget.NewDecoder(&Gadget, event.NewClock(), nil)
	for _, setns := range []bool{true, false} {
		ev, err := dec.Decode(record(setns))
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		var j encode.JSON
		gadget.AppendJSON(&j, ev)
		if got := j.B; string(got) != string(want)+"\n" {
			t.Errorf("AppendJSON:\n%s\nencoding/json:\n%s", got, want)
		}
	}
}

// Decoding and encoding an event allocates nothing, with containers resolved or not.
func TestDecodeEncodeAllocatesNothing(t *testing.T) {
	for name, r := range map[string]event.Resolver{"no resolver": nil, "containers": container.NewCollection()} {
		dec := gadget.NewDecoder(&Gadget, event.NewClock(), r)
		raw := record(true)
		j := encode.JSON{B: make([]byte, 0, 4096)}
		allocs := testing.AllocsPerRun(1000, func() {
			ev, err := dec.Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			j.B = j.B[:0]
			gadget.AppendJSON(&j, ev)
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per event", name, allocs)
		}
	}
}

func BenchmarkDecodeEncode(b *testing.B) {
	dec := gadget.NewDecoder(&Gadget, event.NewClock(), container.NewCollection())
	raw := record(true)
	j := encode.JSON{B: make([]byte, 0, 4096)}
	b.ReportAllocs()
	for b.Loop() {
		ev, err := dec.Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		j.B = j.B[:0]
		gadget.AppendJSON(&j, ev)
	}
}
