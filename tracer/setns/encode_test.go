package setns

import (
	"encoding/json"
	"testing"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/setns/setnstest"
)

// The hand-written JSON is byte for byte what encoding/json writes for the same event.
func TestJSONMatchesEncodingJSON(t *testing.T) {
	dec := gadget.NewDecoder(&Gadget, event.NewClock(), nil)
	for _, setns := range []bool{true, false} {
		ev, err := dec.Decode(setnstest.Record(setns))
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
		raw := setnstest.Record(true)
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
