package oom_test

import (
	"testing"

	"github.com/containerd/containerd/oci"

	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/oom"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// The reproduction with real containerd and runc (cgroup v1): a container limited to
// 32 MiB runs `tail /dev/zero`, which keeps the line it is reading (there is no newline) until the
// kernel kills it. The kill names the container as the victim's and as the owner of the memory
// cgroup whose limit was hit, at its limit.
func TestContainerKilledAtItsLimit(t *testing.T) {
	testutil.RequirePrivileged(t)
	containertest.SkipInVM(t)
	d := containertest.Start(t)
	coll := d.Watch(t)
	events := open(t, coll)
	const limit = 32 * mib
	status, _ := d.RunToExit(t, containertest.Options{Name: "hog", Args: []string{"tail", "/dev/zero"},
		SpecOpts: []oci.SpecOpts{oci.WithMemoryLimit(limit)}})
	if status != 137 {
		t.Fatalf("the container exited with %d, want 137 (SIGKILL)", status)
	}
	ev := events.Next(t, "the kill of tail", func(e *oom.Event) bool { return e.Proc.Comm == "tail" }, nil)
	d2 := ev.OOM
	if ev.Container == nil || ev.Container.Name != "hog" {
		t.Errorf("victim's container %+v, want hog", ev.Container)
	}
	if d2.Constraint != "memcg" || d2.Memcg.Limit != limit || !d2.Memcg.AtLimit {
		t.Errorf("constraint %s, memcg limit %d (at limit %v), want memcg at its limit %d", d2.Constraint, d2.Memcg.Limit, d2.Memcg.AtLimit, limit)
	}
	if d2.Memcg.Container == nil || d2.Memcg.Container.ID != ev.Container.ID {
		t.Errorf("memcg %s belongs to %+v, want the victim's container", d2.Memcg.Path, d2.Memcg.Container)
	}
	if !d2.Trigger.Same || d2.Victim.AnonRSS < limit/2 {
		t.Errorf("trigger %+v, victim memory %+v: want tail itself, holding most of the limit", d2.Trigger, d2.Victim)
	}
}
