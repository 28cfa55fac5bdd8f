package container

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/gen/header"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

func testContainer(id string, mnt, net uint32) *Container {
	return &Container{Container: &event.Container{ID: id, Name: "n-" + id, Runtime: "containerd"},
		NS: map[string]uint32{"mnt": mnt, "net": net}, CgroupID: uint64(mnt) + 1000}
}

func raw(mnt uint32, cgroup uint64) *event.Raw {
	var h event.Raw
	h.Ns[header.HeaderGwNsGW_NS_MNT] = mnt
	h.CgroupId = cgroup
	return &h
}

func TestActorByMountNamespaceThenCgroup(t *testing.T) {
	c := NewCollection()
	a := testContainer("a", 100, 200)
	c.Add(a)
	if got := c.Actor(raw(100, 0)); got != a.Container {
		t.Errorf("by mntns: %v", got)
	}
	if got := c.Actor(raw(999, a.CgroupID)); got != a.Container {
		t.Errorf("by cgroup id: %v", got)
	}
	if got := c.Actor(raw(999, 1)); got != nil {
		t.Errorf("unknown task attributed to %v", got)
	}
}

// A container whose init was gone before its namespaces were read is found by its init's pid; one
// whose mount namespace is known is not, since its pid may be another process's by now.
func TestByInitOnlyWithoutMountNamespace(t *testing.T) {
	c := NewCollection()
	gone := &Container{Container: &event.Container{ID: "gone"}, Pid: 4242, NS: map[string]uint32{}}
	known := testContainer("known", 100, 200)
	known.Pid = 4343
	c.Add(gone)
	c.Add(known)
	if got := c.ByInit(4242); got != gone {
		t.Errorf("ByInit(4242) = %v, want the container without namespaces", got)
	}
	if got := c.ByInit(4343); got != nil {
		t.Errorf("ByInit(4343) = %v, want none: that container's mount namespace is known", got)
	}
	if got := c.ByInit(1); got != nil {
		t.Errorf("ByInit(1) = %v", got)
	}
}

func TestRemovedContainersResolveDuringGrace(t *testing.T) {
	now := time.Unix(1000, 0)
	c := NewCollection()
	c.now = func() time.Time { return now }
	var changes []Change
	c.Subscribe(func(ch Change) { changes = append(changes, ch) })
	a := testContainer("a", 100, 200)
	c.Add(a)
	c.Remove("a")
	now = now.Add(Grace - time.Second)
	c.Remove("other") // any call expires old entries
	if c.Actor(raw(100, 0)) != a.Container {
		t.Fatal("removed container no longer resolves within its grace period")
	}
	if len(c.List()) != 0 {
		t.Error("List shows a removed container")
	}
	now = now.Add(2 * time.Second)
	c.Remove("other")
	if c.Actor(raw(100, 0)) != nil || c.Get("a") != nil {
		t.Fatal("container still resolves after its grace period")
	}
	if len(changes) != 2 || changes[0].Removed || !changes[1].Removed {
		t.Errorf("changes = %+v, want add then remove", changes)
	}
}

func TestOwnerPrefersTheSandbox(t *testing.T) {
	c := NewCollection()
	app := testContainer("app", 101, 500)
	sandbox := testContainer("pause", 102, 500)
	sandbox.Sandbox = true
	c.Add(app)
	c.Add(sandbox)
	net := event.NSTypes[header.HeaderGwNsGW_NS_NET]
	if got := c.Owner(net, 500); got != sandbox.Container {
		t.Errorf("owner of a shared netns = %v, want the sandbox", got)
	}
	mnt := event.NSTypes[header.HeaderGwNsGW_NS_MNT]
	if got := c.Owner(mnt, 101); got != app.Container {
		t.Errorf("owner of mntns = %v", got)
	}
}

func TestHostNamespacesAreNeverAContainers(t *testing.T) {
	c := NewCollection()
	hostNet := c.host["net"]
	if hostNet == 0 {
		t.Skip("cannot read the namespaces of PID 1 or of this process")
	}
	c.Add(testContainer("hostnet", 100, hostNet)) // a container with hostNetwork
	if got := c.Owner(event.NSTypes[header.HeaderGwNsGW_NS_NET], hostNet); got != nil {
		t.Errorf("the host's netns is attributed to %v", got)
	}
}

func TestReplaceKeepsIndexesConsistent(t *testing.T) {
	c := NewCollection()
	c.Add(testContainer("a", 100, 200))
	b := testContainer("a", 300, 400) // same id, new task
	c.Add(b)
	if c.Actor(raw(100, 0)) != nil {
		t.Error("old mntns still indexed")
	}
	if c.Actor(raw(300, 0)) != b.Container {
		t.Error("new mntns not indexed")
	}
}

func TestParseCgroupPath(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		path, runtime, id string
	}{
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a2b_3c.slice/cri-containerd-" + id + ".scope", "containerd", id},
		{"/kubepods/besteffort/pod1a2b-3c/" + id, "cri", id},
		{"/kubepods.slice/kubepods-pod1.slice/crio-" + id + ".scope", "cri-o", id},
		{"/kubepods/burstable/pod1/crio-" + id, "cri-o", id},
		{"/system.slice/docker-" + id + ".scope", "docker", id},
		{"/docker/" + id, "docker", id},
		{"/machine.slice/libpod-" + id + ".scope", "podman", id},
		{"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope/container", "", ""},
		{"/libpod_parent/" + id, "podman", id},
		{"/k8s.io/web-123", "containerd", "web-123"},
		{"/default/db", "containerd", "db"},
		{"/", "", ""},
		{"/system.slice/containerd.service", "", ""},
		{"/user.slice/user-0.slice/session-1.scope", "", ""},
		{"/machine.slice/libpod-conmon-" + id + ".scope", "", ""},
		{"/other/ns/deep", "", ""},
	} {
		rt, got, ok := ParseCgroupPath(tc.path)
		if rt != tc.runtime || got != tc.id || ok != (tc.id != "") {
			t.Errorf("ParseCgroupPath(%q) = %q, %q, %v; want %q, %q", tc.path, rt, got, ok, tc.runtime, tc.id)
		}
	}
}

func TestSelector(t *testing.T) {
	db := &Container{Container: &event.Container{ID: "f00dbabe1234", Name: "db", Pod: "db-0", K8sNamespace: "prod"}}
	for _, tc := range []struct {
		sel  Selector
		want bool
	}{
		{Selector{Containers: []string{"db"}}, true},
		{Selector{Containers: []string{"f00d"}}, true},
		{Selector{Containers: []string{"web", "db"}}, true},
		{Selector{Containers: []string{"d"}}, false}, // names match whole, ids by prefix
		{Selector{Pods: []string{"db-0"}}, true},
		{Selector{Pods: []string{"db-0"}, K8sNamespace: "dev"}, false},
		{Selector{K8sNamespace: "prod"}, true},
	} {
		if got := tc.sel.Matches(db); got != tc.want {
			t.Errorf("%+v matches = %v, want %v", tc.sel, got, tc.want)
		}
	}
	for _, bad := range []Selector{
		{Host: true, Containers: []string{"db"}},
		{Containers: []string{"a b"}},
		{Pods: []string{"../x"}},
		{K8sNamespace: "$x"},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// A cgroup's path comes from its id alone (no walk), and a container's cgroup names it.
func TestCgroupPathFromID(t *testing.T) {
	testutil.RequirePrivileged(t)
	p := newCgroupPaths()
	if p.mount < 0 {
		t.Fatal("no cgroup v2 hierarchy found")
	}
	id := strings.Repeat("ab", 32)
	rel := "/gw-test-" + strconv.Itoa(os.Getpid()) + "/docker-" + id + ".scope"
	dir := filepath.Join(p.root, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir); os.Remove(filepath.Dir(dir)) })
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	c, path := p.container(st.Ino)
	if path != rel || c == nil || c.ID != id || c.Runtime != "docker" {
		t.Fatalf("cgroup %d: path %q container %+v, want %q and docker %s", st.Ino, path, c, rel, id)
	}
	if _, path := p.container(st.Ino + 1<<40); path != "" {
		t.Errorf("an id of no cgroup resolved to %q", path)
	}
}

// Gadgets decode on goroutines of their own and meet a new container's cgroup at once: the
// container each one gets is never written afterwards (the race detector saw fill write the
// reference the cgroup cache shares while another gadget's event read it).
func TestCgroupContainerFoundByManyDecoders(t *testing.T) {
	testutil.RequirePrivileged(t)
	root, _ := unified()
	id := strings.Repeat("cd", 32)
	rel := "/gw-test-" + strconv.Itoa(os.Getpid()) + "/docker-" + id + ".scope"
	dir := filepath.Join(root, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir); os.Remove(filepath.Dir(dir)) })
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		c := NewCollection()
		got := make(chan *event.Container)
		for range 4 {
			go func() {
				ct := c.Actor(raw(4242, st.Ino))
				if ct != nil {
					_ = ct.Name + ct.Image // read as an event's writer does
				}
				got <- ct
			}()
		}
		var first *event.Container
		for range 4 {
			ct := <-got
			if ct == nil || ct.ID != id || ct.Runtime != "docker" {
				t.Fatalf("cgroup %d: container %+v, want docker %s", st.Ino, ct, id)
			}
			if first == nil {
				first = ct
			}
		}
		// The runtime's client names it later: a new container, the ones in events stay as they were.
		c.Add(&Container{Container: &event.Container{ID: id, Name: "named", Runtime: "docker"}})
		if first.Name != "" {
			t.Fatalf("a container held by an event changed: %+v", first)
		}
	}
}

// A container its runtime announced (containerd's /containers/create) and whose task event has not
// come yet is named from the announcement when its cgroup is first seen: the events of its first
// moments carry its name and pod (TestAgentIncidents's deny-all window came before the task event
// and was found by cgroup alone, without its pod).
func TestCgroupContainerNamedByItsAnnouncement(t *testing.T) {
	testutil.RequirePrivileged(t)
	root, _ := unified()
	id := strings.Repeat("ab", 32)
	dir := filepath.Join(root, "/gw-test-"+strconv.Itoa(os.Getpid())+"/docker-"+id+".scope")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir); os.Remove(filepath.Dir(dir)) })
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	c := NewCollection()
	c.Announce(&event.Container{ID: id, Name: "db", Runtime: "containerd", Pod: "db-0", K8sNamespace: "default"})
	ct := c.Actor(raw(4242, st.Ino))
	if ct == nil || ct.ID != id || ct.Name != "db" || ct.Pod != "db-0" || ct.K8sNamespace != "default" || ct.Runtime != "docker" {
		t.Fatalf("cgroup %d: container %+v, want %s named db of pod default/db-0 (runtime from its cgroup path)", st.Ino, ct, id)
	}
	// A devices cgroup's path (the devices gadget's rule events) names it the same way.
	other := strings.Repeat("ef", 32)
	c.Announce(&event.Container{ID: other, Name: "web", Runtime: "containerd", Pod: "web-0"})
	if ct := c.Cgroup("/k8s.io/" + other); ct == nil || ct.Name != "web" || ct.Pod != "web-0" {
		t.Errorf("devices cgroup of an announced container: %+v, want web of pod web-0", ct)
	}
	// Found by its cgroup before its announcement came (containerd's event can reach the agent
	// after runc has started the container): named from then on.
	late := strings.Repeat("cd", 32)
	lateDir := filepath.Join(filepath.Dir(dir), "docker-"+late+".scope")
	if err := os.Mkdir(lateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(lateDir) })
	if err := syscall.Stat(lateDir, &st); err != nil {
		t.Fatal(err)
	}
	if ct := c.Actor(raw(4343, st.Ino)); ct == nil || ct.ID != late || ct.Name != "" {
		t.Fatalf("cgroup %d before its announcement: %+v, want %s by its id alone", st.Ino, ct, late)
	}
	c.Announce(&event.Container{ID: late, Name: "cache", Runtime: "containerd", Pod: "cache-0"})
	if ct := c.Actor(raw(4343, st.Ino)); ct == nil || ct.Name != "cache" || ct.Pod != "cache-0" || ct.Runtime != "docker" {
		t.Errorf("cgroup %d after its announcement: %+v, want cache of pod cache-0", st.Ino, ct)
	}
	if ct := c.Cgroup("/k8s.io/" + late); ct == nil || ct.Name != "cache" {
		t.Errorf("its cgroup's path after its announcement: %+v, want cache", ct)
	}
}

// A container known by its cgroup alone (no runtime tells of its end) is removed once its cgroup
// is gone: it leaves the index, and subscribers (the kernel filter of --host) hear of it.
func TestCgroupOnlyContainerLeavesWithItsCgroup(t *testing.T) {
	testutil.RequirePrivileged(t)
	now := time.Unix(1000, 0)
	c := NewCollection()
	c.now = func() time.Time { return now }
	if c.cgroups.mount < 0 {
		t.Fatal("no cgroup v2 hierarchy found")
	}
	id := strings.Repeat("ce", 32)
	dir := filepath.Join(c.cgroups.root, "gw-test-"+strconv.Itoa(os.Getpid()), "docker-"+id+".scope")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir); os.Remove(filepath.Dir(dir)) })
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	var removed []string
	c.Subscribe(func(ch Change) {
		if ch.Removed {
			removed = append(removed, ch.Container.ID)
		}
	})
	if ct := c.Actor(raw(4242, st.Ino)); ct == nil || ct.ID != id {
		t.Fatalf("cgroup %s attributed to %+v", dir, ct)
	}
	now = now.Add(sweepEvery)
	c.Remove("other") // any call looks
	if c.Get(id) == nil || len(c.List()) != 1 {
		t.Fatal("a container whose cgroup is still there was removed")
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	now = now.Add(sweepEvery)
	c.Remove("other")
	if len(c.List()) != 0 {
		t.Error("a container whose cgroup is gone is still listed")
	}
	now = now.Add(Grace + time.Second)
	c.Remove("other")
	if c.Get(id) != nil || len(removed) != 1 || removed[0] != id {
		t.Errorf("after its cgroup went and the grace: in the index %v, removals told %v", c.Get(id) != nil, removed)
	}
}

// A CNI ADD's pod for a namespace is given for that namespace from the ADD's start on; an ADD that
// started before the namespace was made was for another namespace of the same inode.
func TestNetworkFromADD(t *testing.T) {
	c := NewCollection()
	at := time.Unix(3000, 0)
	pod := &event.Container{ID: "sandbox1", Runtime: "cni", Pod: "web-0", K8sNamespace: "prod"}
	c.AddNetwork(4026532001, at, pod)
	if got := c.Network(4026532001, at.Add(-time.Second)); got != pod {
		t.Errorf("namespace made before the ADD: %+v, want %+v", got, pod)
	}
	if got := c.Network(4026532001, at.Add(time.Second)); got != nil {
		t.Errorf("namespace made after the ADD: %+v, want none", got)
	}
	if got := c.Network(4026532002, at); got != nil {
		t.Errorf("another namespace: %+v", got)
	}
}
