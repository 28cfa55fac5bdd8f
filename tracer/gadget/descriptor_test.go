package gadget

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/gen/devices"
	"github.com/ghostwatch/ghostwatch/gen/setns"
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

// Options a gadget cannot take are refused before the kernel is asked, as an *OptionError: the
// CLI makes that a usage error (exit 2).
func TestCheckRefusesOptions(t *testing.T) {
	linger := []Param{{Name: "linger", Default: time.Second}}
	filters := Descriptor{Name: "setns", Load: setns.LoadSetns, Params: linger}
	noFilter := Descriptor{Name: "devices", Load: devices.LoadDevices}
	if err := filters.Check(Options{Filter: Filter{PID: 1}, Params: Params{"linger": 5 * time.Second}}); err != nil {
		t.Fatalf("good options refused: %v", err)
	}
	for name, tc := range map[string]struct {
		d    Descriptor
		o    Options
		want string
	}{
		"negative duration": {filters, Options{Params: Params{"linger": -5 * time.Second}}, "option linger must not be negative, got -5s"},
		"unknown option":    {filters, Options{Params: Params{"bogus": true}}, `has no option "bogus"`},
		"long comm":         {filters, Options{Filter: Filter{Comm: "a-name-longer-than-15"}}, "longer than the kernel's 15"},
		"pid, no filter":    {noFilter, Options{Filter: Filter{PID: 1}}, "devices cannot filter by process or container"},
		"host, no filter":   {noFilter, Options{Filter: Filter{MntNS: MntNSExcept}}, "devices cannot filter by process or container"},
	} {
		err := tc.d.Check(tc.o)
		var oe *OptionError
		if !errors.As(err, &oe) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Check = %v, want an OptionError with %q", name, err, tc.want)
		}
	}
}
