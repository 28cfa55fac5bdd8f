package setns

import (
	"encoding/json"
	"testing"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/gadget/gadgettest"
	"github.com/ghostwatch/ghostwatch/tracer/setns/setnstest"
)

// The hand-written JSON is byte for byte what encoding/json writes for the same event.
func TestJSONMatchesEncodingJSON(t *testing.T) {
	dec := gadget.NewDecoder(&Gadget, event.NewClock(), nil)
	var j gadget.JSONLines // one writer: the second event's actor, the first's, is copied
	for _, raw := range [][]byte{setnstest.Record(true), setnstest.Record(false), setnstest.ThenRecord(true), setnstest.ThenRecord(false)} {
		ev, err := dec.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		j.B = j.B[:0]
		j.Append(ev)
		if got := j.B; string(got) != string(want)+"\n" {
			t.Errorf("AppendJSON:\n%s\nencoding/json:\n%s", got, want)
		}
	}
}

// Decoding and encoding an event, as a JSON line or a table row, allocates nothing, with
// containers resolved or not, for both shapes of record.
func TestDecodeEncodeAllocatesNothing(t *testing.T) {
	for name, r := range map[string]event.Resolver{"no resolver": nil, "containers": container.NewCollection()} {
		dec := gadget.NewDecoder(&Gadget, event.NewClock(), r)
		for _, setns := range []bool{true, false} {
			allocs := gadgettest.AllocsPerEvent(t, &Gadget, dec, setnstest.Record(setns))
			if allocs != 0 {
				t.Errorf("%s, setns %v: %.1f allocations per event", name, setns, allocs)
			}
		}
	}
}
