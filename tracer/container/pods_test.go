package container

import (
	"slices"
	"testing"

	"github.com/ghostwatch/ghostwatch/tracer/event"
)

func podMember(pod, name string, sandbox bool, pid uint32, ns map[string]uint32, spec map[string]string) *Container {
	return &Container{Container: &event.Container{ID: name + "-id", Name: name, Pod: pod, K8sNamespace: "default", PodUID: "uid-" + pod},
		Sandbox: sandbox, Pid: pid, NS: ns, SpecNS: spec}
}

// What pods() concludes from namespaces and specs, including what a real runtime does not make
// (a spec's PID namespace not joined), which the CRI tests cannot show.
func TestPodsSharing(t *testing.T) {
	host := map[string]uint32{"net": 1, "pid": 2, "ipc": 3}
	gone := func(string) (uint32, bool) { return 0, false }
	list := []*Container{
		// shared: app joins the sandbox's PID namespace, as its spec asks.
		podMember("shared", "", true, 10, map[string]uint32{"net": 100, "pid": 101}, nil),
		podMember("shared", "app", false, 11, map[string]uint32{"net": 100, "pid": 101}, map[string]string{"pid": "/proc/10/ns/pid", "network": "x"}),
		// split: the spec asks for the sandbox's PID namespace, the container has its own.
		podMember("split", "", true, 20, map[string]uint32{"net": 200, "pid": 201}, nil),
		podMember("split", "app", false, 21, map[string]uint32{"net": 200, "pid": 202}, map[string]string{"pid": "/proc/20/ns/pid"}),
		// debug joins app's PID namespace (TARGET), not the sandbox's; all on the host network.
		podMember("target", "", true, 30, map[string]uint32{"net": 1, "pid": 301}, nil),
		podMember("target", "app", false, 31, map[string]uint32{"net": 1, "pid": 302}, map[string]string{"pid": ""}),
		podMember("target", "debugger-abcde", false, 32, map[string]uint32{"net": 1, "pid": 302}, map[string]string{"pid": "/proc/31/ns/pid"}),
		// not in a pod
		{Container: &event.Container{ID: "lone"}, NS: map[string]uint32{"pid": 9}},
	}
	got := pods(list, host, gone)
	if len(got) != 3 {
		t.Fatalf("%d pods, want 3: %+v", len(got), got)
	}
	byName := map[string]Pod{}
	for _, p := range got {
		byName[p.Pod] = p
	}
	check := func(pod string, pidShared bool, flags []string, shares map[string]map[string]string) {
		t.Helper()
		p := byName[pod]
		if p.PIDShared != pidShared || !slices.Equal(p.Flags, flags) {
			t.Errorf("pod %s: pid shared %v, flags %v; want %v, %v", pod, p.PIDShared, p.Flags, pidShared, flags)
		}
		for _, m := range p.Members {
			for ty, want := range shares[m.Name] {
				if m.Shares[ty] != want {
					t.Errorf("pod %s, %q: %s is %q, want %q", pod, m.Name, ty, m.Shares[ty], want)
				}
			}
		}
	}
	check("shared", true, nil, map[string]map[string]string{"app": {"net": ShareSandbox, "pid": ShareSandbox}, "": {"pid": ShareOwn}})
	check("split", false, []string{FlagPIDNotShared}, map[string]map[string]string{"app": {"pid": ShareOwn}})
	check("target", false, []string{"host_net", FlagPIDJoined}, map[string]map[string]string{
		"app": {"pid": ShareOwn, "net": ShareHost}, "debugger-abcde": {"pid": ContainerShare + "app"}})
	for _, m := range byName["target"].Members {
		if m.Name == "debugger-abcde" && m.Joins["pid"] != "/proc/31/ns/pid" {
			t.Errorf("debugger joins %v", m.Joins)
		}
	}
}
