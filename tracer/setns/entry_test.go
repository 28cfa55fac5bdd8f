package setns

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/oci"
	"github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// Entries into real containers, each of its class: made by containerd's CRI and its runc, a host
// shell's nsenter, a CNI plugin, and a container entering another's network namespace.
func TestEntryClasses(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := containertest.StartCRI(t, containertest.CRIConfig{})
	coll := container.NewCollection()
	w := container.Watch(context.Background(), coll, d.Socket, nil, func(err error) { t.Log(err) })
	t.Cleanup(w.Stop)
	_, events, thens := startTracer(t, gadget.Filter{}, coll)
	// then waits for what followed the entry of the call event ev (or of a later call of its
	// thread: runc joins each namespace in turn, and the last call begins the session).
	then := func(t *testing.T, what string, ev *Event) *Then {
		t.Helper()
		return thens.Next(t, what, func(e *Then) bool {
			return e.Then.EnteredBy == ev.Proc.TID && e.Then.EnteredAt.After(ev.Time.Add(-time.Microsecond))
		}, nil)
	}
	entry := func(t *testing.T, what string, match func(*Event) bool) *Event {
		t.Helper()
		return events.Next(t, what, func(e *Event) bool { return e.Setns.Entry != nil && match(e) }, nil)
	}

	// The sandbox's network is set up by its CNI plugins, in /usr/lib/cni.
	pod := d.RunPodNS(t, "web", &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER})
	ev := entry(t, "a CNI plugin entering the pod's network namespace", func(e *Event) bool {
		return e.Setns.Entry.Class == ClassCNI
	})
	if ev.Container != nil || ev.Setns.Syscall != "setns" || ev.Setns.NSTypes[0] != "net" || len(ev.Setns.Entry.Ancestry) == 0 {
		t.Errorf("cni entry: %+v, %+v", ev.Setns, ev.Setns.Entry)
	}

	t.Run("start", func(t *testing.T) {
		app := pod.Run(t, d, containertest.PodContainer{Name: "app"})
		ev := entry(t, "runc creating app", func(e *Event) bool {
			return e.Setns.Entry.Class == ClassStart && e.Setns.Entry.Container.ID == app && e.Setns.Syscall == "setns"
		})
		if e := ev.Setns.Entry; e.Container.Name != "app" || e.Container.Pod != "web" || ev.Setns.TargetContainer == nil ||
			ev.Setns.TargetContainer.ID != pod.ID {
			t.Errorf("start: entry %+v (container %+v), target %+v; want app of pod web, entering sandbox %s",
				e, e.Container, ev.Setns.TargetContainer, pod.ID)
		}
	})
	appID := pod.Run(t, d, containertest.PodContainer{Name: "main"})
	app := waitIndexed(t, coll, appID)

	t.Run("exec", func(t *testing.T) {
		cmd := exec.Command("ctr", "--address", d.Socket, "--namespace", containertest.Namespace, "task", "exec",
			"--exec-id", "gw-exec-1", appID, "true")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", cmd, err, out)
		}
		ev := entry(t, "runc exec into main", func(e *Event) bool {
			return e.Setns.Entry.Class == ClassExec && e.Setns.Entry.ExecID == "gw-exec-1"
		})
		if ev.Setns.TargetContainer == nil || ev.Setns.Entry.Container.ID != appID {
			t.Errorf("exec: target %+v, entry container %+v; want %s", ev.Setns.TargetContainer, ev.Setns.Entry.Container, appID)
		}
		if th := then(t, "the exec's command", ev); !th.Then.Exec || th.Then.Result != "ok" || !slices.Equal(th.Then.Argv, []string{"true"}) ||
			th.Container == nil || th.Container.ID != appID {
			t.Errorf("then of the exec: %+v in %+v", th.Then, th.Container)
		}

		// runc looks the command up before it would exec it: the kernel sees an exit, no exec.
		cmd = exec.Command("ctr", "--address", d.Socket, "--namespace", containertest.Namespace, "task", "exec",
			"--exec-id", "gw-exec-2", appID, "/no/such/tcpdump")
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Fatalf("%v: a missing binary ran: %s", cmd, out)
		}
		ev = entry(t, "runc exec of a missing binary", func(e *Event) bool {
			return e.Setns.Entry.Class == ClassExec && e.Setns.Entry.ExecID == "gw-exec-2"
		})
		if th := then(t, "the missing binary's exec", ev); th.Then.Exec || th.Then.Result != "exit" || th.Then.ExitCode == nil || *th.Then.ExitCode == 0 {
			t.Errorf("then of the missing binary: %+v", th.Then)
		}
	})

	t.Run("debug", func(t *testing.T) {
		dbg := pod.Run(t, d, containertest.PodContainer{Name: "debugger-abcde",
			Namespaces: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_TARGET, TargetId: appID}})
		ev := entry(t, "runc creating the debug container", func(e *Event) bool {
			return e.Setns.Entry.Container.ID == dbg && e.Setns.Syscall == "setns" && e.Setns.NSTypes[0] == "pid"
		})
		e := ev.Setns.Entry
		if e.Class != ClassDebug || !e.Heuristic || !strings.Contains(e.Why, "named debugger-*") ||
			!strings.Contains(e.Why, "joins the PID namespace of container web/main") || ev.Setns.Targets.Inode[2] != app.NS["pid"] {
			t.Errorf("debug: %+v, target pid namespace %d (main's: %d)", e, ev.Setns.Targets.Inode[2], app.NS["pid"])
		}
	})

	t.Run("nsenter", func(t *testing.T) {
		cmd := exec.Command("sh", "-c", fmt.Sprintf("nsenter -t %d -n true; nsenter -t %[1]d -n tcpdump-missing; true", app.Pid))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", cmd, err, out)
		}
		ev := entry(t, "nsenter from a host shell", func(e *Event) bool {
			return e.Setns.Entry.Class == ClassNsenter && e.Proc.Comm == "nsenter"
		})
		if a := ev.Setns.Entry.Ancestry; len(a) < 2 || a[0].Comm != "sh" || a[0].PID != uint32(cmd.Process.Pid) {
			t.Errorf("nsenter's ancestry %+v, want sh (%d) first", a, cmd.Process.Pid)
		}
		if th := then(t, "nsenter's true", ev); !th.Then.Exec || th.Then.Result != "ok" || !slices.Equal(th.Then.Argv, []string{"true"}) {
			t.Errorf("then of nsenter: %+v", th.Then)
		}
		ev = entry(t, "the second nsenter", func(e *Event) bool {
			return e.Setns.Entry.Class == ClassNsenter && e.Proc.Comm == "nsenter"
		})
		// execvp tried each PATH directory: the last ENOENT is told.
		if th := then(t, "nsenter's missing command", ev); !th.Then.Exec || th.Then.Result != "ENOENT" || th.Then.Ret != -2 ||
			!slices.Equal(th.Then.Argv, []string{"tcpdump-missing"}) || !strings.HasSuffix(th.Then.File, "/tcpdump-missing") {
			t.Errorf("then of the missing command: %+v", th.Then)
		}
	})

	t.Run("agent", func(t *testing.T) {
		agent := d.Run(t, containertest.Options{Name: "agent", Caps: []string{"CAP_SYS_ADMIN"}, SpecOpts: []oci.SpecOpts{
			oci.WithMounts([]specs.Mount{{Destination: "/netns", Type: "bind", Source: fmt.Sprintf("/proc/%d/ns/net", app.Pid), Options: []string{"bind"}}}),
		}})
		agent.Exec(t, d, "nsenter", "--net=/netns", "true")
		ev := entry(t, "the agent entering main's network namespace", func(e *Event) bool {
			return e.Setns.Entry.Class == ClassAgent
		})
		if ev.Container == nil || ev.Container.ID != agent.ID || ev.Setns.TargetContainer == nil || ev.Setns.TargetContainer.ID != pod.ID {
			t.Errorf("agent: actor %+v, target %+v; want %s entering pod %s", ev.Container, ev.Setns.TargetContainer, agent.ID, pod.ID)
		}
	})
}

func waitIndexed(t *testing.T, coll *container.Collection, id string) *container.Container {
	t.Helper()
	got := make(chan *container.Container, 1)
	stop := coll.Subscribe(func(c container.Change) {
		if c.Container.ID == id && c.Container.Pid != 0 && !c.Removed {
			select {
			case got <- c.Container:
			default:
			}
		}
	})
	defer stop()
	select {
	case c := <-got:
		return c
	case <-time.After(testutil.Wait):
		t.Fatalf("container %s not indexed", id)
		return nil
	}
}
