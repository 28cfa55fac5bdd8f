package gadget

import (
	"testing"

	"github.com/ghostwatch/ghostwatch/tracer/attach"
)

func TestValidate(t *testing.T) {
	ok := Descriptor{Name: "g", Hooks: []attach.Hook{{Name: "h"}}, Params: []Param{{Name: "on", Default: true}},
		HookParams: map[string]string{"h": "on"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]Descriptor{
		"int option":        {Name: "g", Params: []Param{{Name: "n", Default: 3}}},
		"hook of no option": {Name: "g", Hooks: ok.Hooks, HookParams: map[string]string{"h": "missing"}},
		"option of no hook": {Name: "g", Params: ok.Params, HookParams: map[string]string{"x": "on"}},
	} {
		if d.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
