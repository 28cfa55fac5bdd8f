package oom_test

import (
	"context"
	"testing"

	"github.com/containerd/containerd/oci"

	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/gadget/gadgettest"
	"github.com/ghostwatch/ghostwatch/tracer/oom"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// The reproduction with real containerd and runc (cgroup v1): a container limited to
// 32 MiB runs `tail /dev/zero`, which keeps the line it is reading (there is no newline) until the
// kernel kills it. The kill names the container as the victim's and as the owner of the memory
// cgroup whose limit was hit, at its limit; then the container's exit follows, joined from
// containerd's TaskExit (137) and TaskOOM, with the kubelet's restart count from its annotation.
func TestContainerKilledAtItsLimit(t *testing.T) {
	testutil.RequirePrivileged(t)
	containertest.SkipInVM(t)
	d := containertest.Start(t)
	coll := d.Watch(t)
	g, err := gadget.Open(&oom.Gadget, gadget.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	events := gadgettest.Collect(t, func(ctx context.Context, emit func(gadget.Event)) error {
		return g.Run(ctx, coll, emit, nil, nil)
	})
	const limit = 32 * mib
	status, _ := d.RunToExit(t, containertest.Options{Name: "hog", Pod: "hog-0", Args: []string{"tail", "/dev/zero"},
		SpecOpts: []oci.SpecOpts{oci.WithMemoryLimit(limit), oci.WithAnnotations(map[string]string{"io.kubernetes.container.restartCount": "3"})}})
	if status != 137 {
		t.Fatalf("the container exited with %d, want 137 (SIGKILL)", status)
	}
	ev := events.Next(t, "the kill of tail", func(e gadget.Event) bool {
		k, ok := e.(*oom.Event)
		return ok && k.Proc.Comm == "tail"
	}, nil).(*oom.Event)
	d2 := ev.OOM
	if ev.Container == nil || ev.Container.Name != "hog" || ev.Kind != "kill" {
		t.Errorf("kind %q, victim's container %+v, want a kill in hog", ev.Kind, ev.Container)
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
	exit := events.Next(t, "the exit of hog", func(e gadget.Event) bool {
		_, ok := e.(*oom.Exit)
		return ok
	}, nil).(*oom.Exit)
	if exit.GaveUp != "" || exit.ExitStatus != 137 || !exit.RuntimeOOM || exit.RestartCount != 3 || exit.Kind != oom.KindExit {
		t.Errorf("exit %+v: want status 137 after containerd's TaskOOM, restart count 3", exit)
	}
	for _, e := range []gadget.Event{ev, exit} { // as the table shows them (go test -v)
		var r encode.Row
		gadget.AppendRow(&r, e)
		t.Logf("%s", r.B)
	}
	if exit.Proc.PID != ev.Proc.PID || !exit.KilledAt.Equal(ev.Time) || exit.Container == nil || exit.Container.ID != ev.Container.ID {
		t.Errorf("exit of pid %d in %v killed at %v, want the kill's: pid %d in %s at %v", exit.Proc.PID, exit.Container.Label(), exit.KilledAt, ev.Proc.PID, ev.Container.Label(), ev.Time)
	}
}
