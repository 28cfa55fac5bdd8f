package devices_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/devices"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// The reproduction with real containerd and runc (cgroup v1): a container opens
// /dev/urandom in a loop and logs each failure; on the host, its device cgroup is rewritten as
// "deny all, wait, allow each rule again". The deny write names the container that owns the
// cgroup, the window lasts at least the wait and at most the shell's run, and every failure the
// container logged is a denied event whose cause is the "a" write.
func TestContainerDenyAllWindow(t *testing.T) {
	testutil.RequirePrivileged(t)
	containertest.SkipInVM(t)
	d := containertest.Start(t)
	coll := d.Watch(t)
	events := openWith(t, coll)
	c := d.Run(t, containertest.Options{Name: "db", Args: []string{"sh", "-c",
		`while [ ! -e /tmp/stop ]; do head -c1 /dev/urandom >/tmp/x 2>/tmp/err || cat /tmp/err >>/tmp/log; sleep 0.01; done
touch /tmp/done; exec sleep 1000`}})

	const wait = 300 * time.Millisecond
	took := containertest.DenyAllDevices(t, c.Pid, wait)

	isDeny := func(ev gadget.Event) bool {
		w, ok := ev.(*devices.RuleWrite)
		return ok && w.Written == "a" && w.File == "devices.deny"
	}
	deny := events.Next(t, "the deny write", isDeny, nil).(*devices.RuleWrite)
	if deny.Cgroup.Container == nil || deny.Cgroup.Container.ID != c.ID || deny.Cgroup.Container.Name != "db" {
		t.Errorf("deny write's target %+v, want container %s (db)", deny.Cgroup.Container, c.ID)
	}
	if deny.Container != nil || deny.Proc.Comm != "sh" {
		t.Errorf("deny write's writer: %s in %+v, want sh on the host", deny.Proc.Comm, deny.Container)
	}
	denied := 0
	var window *devices.Window
	for window == nil {
		switch e := events.Next(t, "denials, then the window", func(gadget.Event) bool { return true }, nil).(type) {
		case *devices.Denied:
			if e.Path != "/dev/urandom" {
				t.Errorf("denied %s, want /dev/urandom only", e.Path)
				continue
			}
			denied++
			if e.Container == nil || e.Container.ID != c.ID || e.Device() != "c 1:9" {
				t.Errorf("denied %s (%s) in %s, want c 1:9 in %s", e.Path, e.Device(), e.Container.Label(), c.ID)
			}
			if e.Cause == nil || e.Cause.Kind != "rule" || !e.Cause.Time.Equal(deny.Time) {
				t.Errorf("denied open's cause %+v, want the \"a\" write at %v", e.Cause, deny.Time)
			}
		case *devices.Window:
			window = e
		}
	}
	if !window.DenyAll || window.Cgroup.Container == nil || window.Cgroup.Container.ID != c.ID ||
		window.Closed.Sub(window.Opened) < wait || window.Closed.Sub(window.Opened) > took || window.Denied != denied {
		t.Errorf("window: deny-all %v on %s lasting %v with %d denials; want deny-all on %s lasting from %v to the %v its shell took, with %d denials",
			window.DenyAll, window.Cgroup.Path, window.Closed.Sub(window.Opened), window.Denied, c.ID, wait, took, denied)
	}
	// The last failure of the window may not be logged yet: stop the loop and wait for its end.
	root := "/proc/" + strconv.Itoa(c.Pid) + "/root"
	if err := os.WriteFile(root+"/tmp/stop", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c.Exec(t, d, "sh", "-c", "until [ -e /tmp/done ]; do sleep 0.01; done")
	logged, err := os.ReadFile(root + "/tmp/log")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(logged), "/dev/urandom"); n == 0 || n != denied {
		t.Errorf("the container logged %d failures:\n%s\nghostwatch reported %d", n, logged, denied)
	}
}
