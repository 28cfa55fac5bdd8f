package netns

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
)

// `netns holders` and the lingering event's holders are one form: the same namespace gives the
// same object in both.
func TestHoldersOneJSONForm(t *testing.T) {
	web := &event.Container{ID: "abc", Name: "web", Runtime: "containerd"}
	n := &Namespace{Inode: 42, Members: 1, Sample: []Proc{{PID: 7, TID: 8, Comm: "sleep", MntNS: 11, Container: web}},
		Holders: []Holder{
			{Kind: KindFD, Proc: Proc{PID: 9, TID: 9, Comm: "agent", MntNS: 12}, FD: 5},
			{Kind: KindMount, Proc: Proc{PID: 1, TID: 1, Comm: "init", MntNS: 13}, FD: -1, Mount: "/run/netns/x"},
		},
		Interfaces: []Interface{{Name: "lo", Addrs: []string{"127.0.0.1/8"}}}, Container: web}
	var line encode.JSON // what `netns holders -o json` writes
	n.AppendJSON(&line)
	const want = `{"netns":42,"members":1,"members_sample":[{"pid":7,"tid":8,"comm":"sleep","mntns":11,"container":{"id":"abc","name":"web","runtime":"containerd"}}],` +
		`"holders":[{"kind":"fd","pid":9,"tid":9,"comm":"agent","mntns":12,"fd":5},{"kind":"mount","pid":1,"tid":1,"comm":"init","mntns":13,"fd":-1,"mount":"/run/netns/x"}],` +
		`"interfaces":[{"name":"lo","addrs":["127.0.0.1/8"]}],"container":{"id":"abc","name":"web","runtime":"containerd"}}`
	if string(line.B) != want {
		t.Errorf("netns holders' line:\n%s\nwant (docs/gadgets/netns.md):\n%s", line.B, want)
	}
	ev := &Event{Header: event.Header{Kind: "lingering"}, NetNS: 42, Holders: n}
	var j encode.JSON
	ev.AppendJSON(&j)
	var snapshot any
	var lingering map[string]any
	if err := json.Unmarshal(line.B, &snapshot); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(j.B, &lingering); err != nil {
		t.Fatalf("%v: %s", err, j.B)
	}
	if !reflect.DeepEqual(lingering["holders"], snapshot) {
		t.Errorf("the lingering event's holders differ from netns holders' line:\nlingering: %v\nholders:   %s", lingering["holders"], line.B)
	}
}
