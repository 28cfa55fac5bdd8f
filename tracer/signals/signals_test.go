package signals_test

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/gadget/gadgettest"
	"github.com/ghostwatch/ghostwatch/tracer/signals"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

func open(t *testing.T, p gadget.Params) *gadgettest.Collector[*signals.Event] {
	t.Helper()
	testutil.RequirePrivileged(t)
	tr, err := gadget.OpenTracer[*signals.Event](&signals.Gadget, gadget.Options{Params: p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return gadgettest.Collect(t, func(ctx context.Context, emit func(*signals.Event)) error {
		return tr.Run(ctx, emit, nil)
	})
}

// noPID has no process.
const noPID = 2147483647

// A host's ordinary signals are dropped in the kernel: one to a child in the same mount and pid
// namespaces, and an existence check (signal 0) that finds nothing, unless probes are asked for.
// A failed SIGHUP, sent after them, is the marker that they would have arrived by then.
func TestOrdinarySignalsDropped(t *testing.T) {
	cases := []struct {
		name   string
		probes bool
	}{{"default", false}, {"with probes", true}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			events := open(t, gadget.Params{signals.ParamProbes: tc.probes})
			child := exec.Command("sleep", "100")
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			child.Process.Signal(syscall.SIGTERM)
			child.Wait()
			syscall.Kill(noPID, 0)
			syscall.Kill(noPID, syscall.SIGHUP)
			var probe bool
			events.Next(t, "the failed SIGHUP", func(e *signals.Event) bool {
				return e.Proc.PID == uint32(os.Getpid()) && e.Signal.Signo == int32(syscall.SIGHUP) && e.Signal.Result == "ESRCH"
			}, func(e *signals.Event) {
				switch {
				case e.Signal.Target.PID == uint32(child.Process.Pid):
					t.Errorf("the child's SIGTERM was reported: %+v", e.Signal)
				case e.Proc.PID == uint32(os.Getpid()) && e.Signal.Signo == 0 && e.Signal.PID == noPID:
					probe = true
				}
			})
			if probe != tc.probes {
				t.Errorf("the failed existence check reported: %v, want %v", probe, tc.probes)
			}
		})
	}
}
