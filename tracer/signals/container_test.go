package signals_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/oci"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/gadget/gadgettest"
	"github.com/ghostwatch/ghostwatch/tracer/signals"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// The story with real containerd and runc: a pod whose sandbox owns the pid namespace,
// an app that reloads on SIGHUP, and a sidecar that signals it. Sharing the pod's pid namespace
// the signal is delivered across containers; refused when the sidecar runs as another user; in a
// pid namespace of its own the sidecar's kill finds no process (ESRCH). A signal to the sandbox,
// the namespace's init, is one to an init.
func TestSidecarSignals(t *testing.T) {
	testutil.RequirePrivileged(t)
	containertest.SkipInVM(t)
	d := containertest.Start(t)
	coll := d.Watch(t)
	tr, err := gadget.OpenTracer[*signals.Event](&signals.Gadget, gadget.Options{}, coll)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	events := gadgettest.Collect(t, func(ctx context.Context, emit func(*signals.Event)) error {
		return tr.Run(ctx, emit, nil)
	})

	sandbox := run(t, d, coll, containertest.Options{Name: "pause", Pod: "web", Sandbox: true})
	sharedPID := oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.PIDNamespace, Path: fmt.Sprintf("/proc/%d/ns/pid", sandbox.Pid)})
	reloader := run(t, d, coll, containertest.Options{Name: "reloader", Pod: "web", SpecOpts: []oci.SpecOpts{sharedPID}})
	nobody := run(t, d, coll, containertest.Options{Name: "nobody", Pod: "web",
		SpecOpts: []oci.SpecOpts{sharedPID, oci.WithUIDGID(65534, 65534)}})
	app := run(t, d, coll, containertest.Options{Name: "app", Pod: "web", SpecOpts: []oci.SpecOpts{sharedPID},
		Args: []string{"sh", "-c", `trap "echo reloaded" HUP; while :; do sleep 1; done`}})
	// Started after the sidecars, the app has pid 4 or more in the pod: no pid alone's exec
	// takes (2: alone's init is 1, its exec's shell the next).
	appNSPID := nsPID(t, app.Pid)
	if appNSPID < 4 {
		t.Fatalf("the app has pid %d in the pod, want 4 or more", appNSPID)
	}
	alone := run(t, d, coll, containertest.Options{Name: "alone", Pod: "web"}) // its own pid namespace
	kill := func(t *testing.T, c *containertest.Container, sig string, pid uint32) {
		c.Exec(t, d, "sh", "-c", fmt.Sprintf("kill -%s %d || true", sig, pid))
	}

	cases := []struct {
		name     string
		generate func(t *testing.T)
		sender   string
		validate func(t *testing.T, e *signals.Event)
	}{
		{"a sidecar sharing the pod's pid namespace", func(t *testing.T) { kill(t, reloader, "HUP", appNSPID) }, "reloader", func(t *testing.T, e *signals.Event) {
			d := e.Signal
			if e.Kind != "sent" || d.Result != "delivered" || !d.CrossContainer || d.ToInit || d.Code != "SI_USER" || !d.Group {
				t.Errorf("%s %+v: want a delivered SI_USER to the process, cross-container, not to an init", e.Kind, d)
			}
			wantTarget(t, d.Target, app, "sh")
			if d.Target.NSPID != appNSPID {
				t.Errorf("target's pid in its namespace %d, want %d", d.Target.NSPID, appNSPID)
			}
		}},
		{"the sidecar runs as another user", func(t *testing.T) { kill(t, nobody, "HUP", appNSPID) }, "nobody", func(t *testing.T, e *signals.Event) {
			d := e.Signal
			if e.Kind != "failed" || d.Result != "EPERM" || d.Call != "kill" || d.PID != int32(appNSPID) {
				t.Errorf("%s %+v: want kill(%d) refused (EPERM)", e.Kind, d, appNSPID)
			}
			wantTarget(t, d.Target, app, "sh")
		}},
		{"a sidecar in a pid namespace of its own", func(t *testing.T) { kill(t, alone, "HUP", appNSPID) }, "alone", func(t *testing.T, e *signals.Event) {
			d := e.Signal
			if e.Kind != "failed" || d.Result != "ESRCH" || d.Call != "kill" || d.PID != int32(appNSPID) || d.Target.Known {
				t.Errorf("%s %+v: want kill(%d) with no target (ESRCH)", e.Kind, d, appNSPID)
			}
		}},
		{"to the pod's init", func(t *testing.T) { kill(t, reloader, "WINCH", 1) }, "reloader", func(t *testing.T, e *signals.Event) {
			d := e.Signal
			// The init has no handler: the kernel drops it (an init's default actions do not apply).
			if e.Kind != "sent" || !d.ToInit || !d.CrossContainer || d.Result != "ignored" || d.Target.NSPID != 1 {
				t.Errorf("%s %+v: want an ignored SIGWINCH to the init, cross-container", e.Kind, d)
			}
			wantTarget(t, d.Target, sandbox, "sleep")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.generate(t)
			e := events.Next(t, "a signal from "+tc.sender, func(e *signals.Event) bool {
				return e.Container != nil && e.Container.Name == tc.sender
			}, nil)
			if e.Proc.Comm != "sh" {
				t.Errorf("sender %s, want sh (its kill is a builtin)", e.Proc.Comm)
			}
			tc.validate(t, e)
		})
	}
}

// run starts a container and waits until the index knows its mount namespace, so that its
// processes' events name it.
func run(t *testing.T, d *containertest.Daemon, coll *container.Collection, o containertest.Options) *containertest.Container {
	t.Helper()
	indexed := make(chan string, 16)
	unsubscribe := coll.Subscribe(func(c container.Change) {
		if !c.Removed && c.Container.NS["mnt"] != 0 {
			select {
			case indexed <- c.Container.ID:
			default:
			}
		}
	})
	defer unsubscribe()
	c := d.Run(t, o)
	timeout := time.After(testutil.Wait)
	for {
		select {
		case id := <-indexed:
			if id == c.ID {
				return c
			}
		case <-timeout:
			t.Fatalf("container %s was not indexed within %v", o.Name, testutil.Wait)
		}
	}
}

// nsPID is a process's pid in its own pid namespace.
func nsPID(t *testing.T, pid int) uint32 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" {
			n, err := strconv.ParseUint(f[len(f)-1], 10, 32)
			if err != nil {
				t.Fatal(err)
			}
			return uint32(n)
		}
	}
	t.Fatalf("no NSpid in /proc/%d/status", pid)
	return 0
}

func wantTarget(t *testing.T, got signals.Target, c *containertest.Container, comm string) {
	t.Helper()
	if !got.Known || got.PID != uint32(c.Pid) || got.Comm != comm || got.Container == nil || got.Container.Name != c.Name {
		t.Errorf("target %+v (container %v), want %s pid %d in %s", got, got.Container.Label(), comm, c.Pid, c.Name)
	}
}
