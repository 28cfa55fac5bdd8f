package container_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/gadget/gadgettest"
	"github.com/ghostwatch/ghostwatch/tracer/setns"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// sysAdmin lets a container's processes unshare.
var sysAdmin = []string{"CAP_SYS_ADMIN"}

// waitKnown waits until the index lists (known true) or no longer lists the container.
func waitKnown(t *testing.T, coll *container.Collection, id string, known bool) *container.Container {
	t.Helper()
	deadline := time.Now().Add(testutil.Wait)
	for {
		for _, c := range coll.List() {
			if c.ID == id && known {
				return c
			}
		}
		if !known && coll.Get(id) != nil && !listed(coll, id) {
			return nil
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s known=%v: not so within %v", id, known, testutil.Wait)
		}
		time.Sleep(20 * time.Millisecond) // the index is fed by containerd's event stream
	}
}

func listed(coll *container.Collection, id string) bool {
	for _, c := range coll.List() {
		if c.ID == id {
			return true
		}
	}
	return false
}

func startTracer(t *testing.T, f gadget.Filter, coll *container.Collection) *gadget.Tracer[gadget.Event] {
	t.Helper()
	tr, err := setns.New(f, coll)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// collect keeps the calls, not what followed them.
func collect(t *testing.T, tr *gadget.Tracer[gadget.Event]) *gadgettest.Collector[*setns.Event] {
	return gadgettest.Collect(t, func(ctx context.Context, emit func(*setns.Event)) error {
		return tr.Run(ctx, func(e gadget.Event) {
			if c, ok := e.(*setns.Event); ok {
				emit(c)
			}
		}, nil)
	})
}

// From the host, nsenter into a container: the actor is the host, the target the container. Inside
// the container, unshare: the actor is the container.
func TestActorAndTargetContainers(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := containertest.Start(t)
	db := d.Run(t, containertest.Options{Caps: sysAdmin, Name: "db", Pod: "db-0"})
	coll := d.Watch(t)
	waitKnown(t, coll, db.ID, true)
	events := collect(t, startTracer(t, gadget.Filter{}, coll))

	cmd := exec.Command("nsenter", "-t", fmt.Sprint(db.Pid), "-n", "-m", "true")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nsenter: %v: %s", err, out)
	}
	for _, ns := range []string{"net", "mnt"} {
		ev := events.Next(t, "nsenter's setns "+ns, func(e *setns.Event) bool {
			return int(e.Proc.PID) == cmd.Process.Pid && len(e.Setns.NSTypes) == 1 && e.Setns.NSTypes[0] == ns
		}, nil)
		if ev.Container != nil {
			t.Errorf("setns %s: actor attributed to %+v, want the host", ns, ev.Container)
		}
		tc := ev.Setns.TargetContainer
		if tc == nil || tc.ID != db.ID || tc.Name != "db" || tc.Pod != "db-0" || tc.K8sNamespace != "default" ||
			tc.Runtime != "containerd" || tc.Image != containertest.ImageName {
			t.Errorf("setns %s: target_container = %+v, want %s (db)", ns, tc, db.ID)
		}
	}

	pid := db.Exec(t, d, "unshare", "-n", "true")
	ev := events.Next(t, "unshare in the container", func(e *setns.Event) bool {
		return int(e.Proc.PID) == pid && e.Setns.Syscall == "unshare"
	}, nil)
	if ev.Container == nil || ev.Container.ID != db.ID || ev.Container.Name != "db" {
		t.Errorf("unshare in the container attributed to %+v", ev.Container)
	}
}

// The process, and then its container, are gone before the event is read: it still resolves.
func TestLateEventsResolve(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := containertest.Start(t)
	coll := d.Watch(t)
	tr := startTracer(t, gadget.Filter{}, coll) // not read until the end
	web := d.Run(t, containertest.Options{Caps: sysAdmin, Name: "web", Pod: "web-0"})
	waitKnown(t, coll, web.ID, true)
	pid := web.Exec(t, d, "unshare", "-n", "true") // exits before Exec returns
	web.Remove(d)
	waitKnown(t, coll, web.ID, false)

	events := collect(t, tr)
	ev := events.Next(t, "the late unshare", func(e *setns.Event) bool {
		return int(e.Proc.PID) == pid && e.Setns.Syscall == "unshare"
	}, nil)
	if ev.Container == nil || ev.Container.ID != web.ID {
		t.Errorf("late event attributed to %+v, want %s", ev.Container, web.ID)
	}
}

// --container is applied in the kernel: the reader has no filter of its own, so an event of another
// container that is not delivered was never written to the ring buffer.
func TestContainerFilterIsInTheKernel(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := containertest.Start(t)
	coll := d.Watch(t)
	tr := startTracer(t, gadget.Filter{MntNS: gadget.MntNSOnly}, coll)
	t.Cleanup(container.SyncFilter(coll, container.Selector{Containers: []string{"wanted"}}, tr.SetMntNS, func(err error) { t.Error(err) }))
	wanted := d.Run(t, containertest.Options{Caps: sysAdmin, Name: "wanted"})
	other := d.Run(t, containertest.Options{Caps: sysAdmin, Name: "other"})
	waitKnown(t, coll, wanted.ID, true)
	waitKnown(t, coll, other.ID, true)
	events := collect(t, tr)

	otherPid := other.Exec(t, d, "unshare", "-n", "true")
	pid := wanted.Exec(t, d, "unshare", "-n", "true")
	events.Next(t, "the wanted container's unshare", func(e *setns.Event) bool { return int(e.Proc.PID) == pid },
		func(e *setns.Event) {
			if int(e.Proc.PID) == otherPid || (e.Container != nil && e.Container.ID == other.ID) {
				t.Errorf("event of a filtered-out container reached user space: %+v", e.Proc)
			}
		})
}

// With containerd down, containers are found by their cgroup paths and events still resolve.
func TestWithoutContainerd(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := containertest.Start(t)
	cache := d.Run(t, containertest.Options{Caps: sysAdmin, Name: "cache"})
	d.Crash(t)

	coll := container.NewCollection()
	if w, err := container.WatchContainerd(context.Background(), coll, d.Socket, nil, nil); err == nil {
		w.Stop()
		t.Fatal("containerd reported reachable after it was killed")
	}
	if err := coll.ScanProcesses(); err != nil {
		t.Fatal(err)
	}
	found := coll.Get(cache.ID)
	if found == nil || found.Runtime != "containerd" || found.Source != "cgroup" || found.NS["mnt"] == 0 {
		t.Fatalf("cgroup scan found %+v for %s", found, cache.ID)
	}
	events := collect(t, startTracer(t, gadget.Filter{}, coll))
	cache.RuncExec(t, "unshare", "-n", "true")
	ev := events.Next(t, "unshare in the container", func(e *setns.Event) bool {
		return e.Setns.Syscall == "unshare" && e.Proc.Comm == "unshare" && e.Container != nil
	}, nil)
	if ev.Container.ID != cache.ID {
		t.Errorf("attributed to %+v, want %s", ev.Container, cache.ID)
	}
}

// containerd restarted under a watcher: the stream's end is said in one line, containers are
// found by cgroup path meanwhile, and once containerd answers again the watcher reconnects and
// names the containers started since.
func TestContainerdRestarted(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := containertest.Start(t)
	coll := container.NewCollection()
	var mu sync.Mutex
	var warnings []string
	w := container.Watch(context.Background(), coll, d.Socket, []string{containertest.Namespace}, func(err error) {
		mu.Lock()
		defer mu.Unlock()
		warnings = append(warnings, err.Error())
	})
	t.Cleanup(w.Stop)
	before := d.Run(t, containertest.Options{Name: "before"})
	if c := waitKnown(t, coll, before.ID, true); c.Source != "containerd" {
		t.Fatalf("container before the restart found by %s, want containerd", c.Source)
	}

	d.Restart(t)
	after := d.Run(t, containertest.Options{Name: "after"})
	// The return is said once the reconnection's scan has named the container: wait for both.
	named := func() bool {
		c := coll.Get(after.ID)
		mu.Lock()
		defer mu.Unlock()
		return c != nil && c.Source == "containerd" && c.Name == "after" && len(warnings) >= 2
	}
	deadline := time.Now().Add(testutil.Wait)
	for !named() {
		if time.Now().After(deadline) {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("container started after the restart is %+v within %v, want it named by containerd; warnings: %q", coll.Get(after.ID), testutil.Wait, warnings)
		}
		time.Sleep(20 * time.Millisecond) // the index is fed by containerd's event stream
	}
	mu.Lock()
	defer mu.Unlock()
	if len(warnings) != 2 || !strings.Contains(warnings[0], "event stream ended") || !strings.Contains(warnings[1], "answers again") {
		t.Errorf("warnings = %q, want the stream's end, then containerd's return", warnings)
	}
	if c := coll.Get(before.ID); c == nil || c.Name != "before" {
		t.Errorf("container from before the restart is %+v, want it still known by name", c)
	}
}
