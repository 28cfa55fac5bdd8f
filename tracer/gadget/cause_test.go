package gadget

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/encode"
)

func TestCauseJSONAndLabel(t *testing.T) {
	at := time.Date(2026, 11, 25, 1, 2, 3, 4, time.UTC)
	c := &Cause{Time: at, Kind: "exec", Before: 1500 * time.Millisecond, PID: 7, Comm: "python3",
		Attrs: []Attr{{"file", "/tmp/bad"}, {"rootid", "200000"}}}
	var j encode.JSON
	c.AppendJSON(&j)
	var got map[string]any
	if err := json.Unmarshal(j.B, &got); err != nil {
		t.Fatalf("%s: %v", j.B, err)
	}
	want := map[string]any{"time": "2026-11-25T01:02:03.000000004Z", "kind": "exec", "before_ns": 1.5e9,
		"pid": 7.0, "comm": "python3", "file": "/tmp/bad", "rootid": "200000"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (%s)", k, got[k], v, j.B)
		}
	}
	if l := c.Label(); l != "exec 1.5s before by python3 (pid 7): file=/tmp/bad rootid=200000" {
		t.Errorf("label %q", l)
	}
	if l := (*Cause)(nil).Label(); l != "-" {
		t.Errorf("nil label %q", l)
	}
}
