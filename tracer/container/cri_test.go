package container_test

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Pods run through containerd's CRI plugin are named as the CRI client (the kubelet) named them:
// pod name, namespace and uid, container name and attempt. A pod whose network namespace only a
// bind mount holds (its pause process gone) still owns it, by the sandbox's namespace paths;
// containerd's API alone cannot tell whose it is.
func TestCRINamesPodsAndPinnedNamespaces(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := containertest.StartCRI(t, containertest.CRIConfig{})
	web := d.RunPod(t, "web")
	appID := web.Run(t, d, containertest.PodContainer{Name: "app", Attempt: 2})

	bare := d.RunPod(t, "bare")
	pods, err := d.CRI.Pods(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var pinned string
	for _, p := range pods {
		if p.ID == bare.ID {
			if p.Pid == 0 || p.NSPaths["network"] == "" {
				t.Fatalf("sandbox %s: pid %d, namespace paths %v", p.Name, p.Pid, p.NSPaths)
			}
			pinned = p.NSPaths["network"]
			syscall.Kill(int(p.Pid), syscall.SIGKILL) // only the bind mount holds its namespaces now
		}
	}
	waitNotReady(t, d, bare.ID)
	var st syscall.Stat_t
	if err := syscall.Stat(pinned, &st); err != nil {
		t.Fatalf("the pinned namespace %s: %v", pinned, err)
	}
	netns := uint32(st.Ino)

	t.Run("containerd alone", func(t *testing.T) {
		coll := container.NewCollection()
		w, err := container.WatchContainerd(context.Background(), coll, d.Socket, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		if owner := coll.Owner(netType, netns); owner != nil {
			t.Errorf("containerd's API alone owns the pinned namespace by %v: this test no longer shows what only the CRI knows", owner)
		}
	})

	coll := container.NewCollection()
	w, err := container.WatchCRI(context.Background(), coll, d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	app := coll.Get(appID)
	if app == nil {
		t.Fatalf("container %s not indexed", appID)
	}
	want := event.Container{ID: appID, Name: "app", Runtime: "containerd", Image: containertest.ImageName,
		Pod: "web", K8sNamespace: "default", PodUID: web.UID, Attempt: 2}
	if got := app.Container; got.ID != want.ID || got.Name != want.Name || got.Runtime != want.Runtime || got.Image != want.Image ||
		got.Pod != want.Pod || got.K8sNamespace != want.K8sNamespace || got.PodUID != want.PodUID || got.Attempt != want.Attempt {
		t.Errorf("CRI gives %+v, want %+v", got, &want)
	}
	if app.Pid == 0 || app.NS["mnt"] != testutil.NSInode(t, int(app.Pid), "mnt") {
		t.Errorf("app: pid %d, mnt namespace %d", app.Pid, app.NS["mnt"])
	}
	if got := coll.ByMntNS(app.NS["mnt"]); got == nil || got.ID != appID {
		t.Errorf("app's mount namespace resolves to %v", got)
	}
	if owner := coll.Owner(netType, app.NS["net"]); owner == nil || owner.ID != web.ID || owner.Pod != "web" {
		t.Errorf("web's network namespace is owned by %v, want its sandbox %s", owner, web.ID)
	}
	if owner := coll.Owner(netType, netns); owner == nil || owner.ID != bare.ID || owner.Pod != "bare" || owner.PodUID != bare.UID {
		t.Errorf("the pinned network namespace of pod bare is owned by %v, want its sandbox %s", owner, bare.ID)
	}
}

var netType = event.NSTypes[1] // net

func waitNotReady(t *testing.T, d *containertest.Daemon, id string) {
	t.Helper()
	deadline := time.Now().Add(testutil.Wait)
	for time.Now().Before(deadline) {
		resp, err := d.CRI.Runtime.PodSandboxStatus(context.Background(), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
		if err == nil && resp.Status.State == runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
			return
		}
		time.Sleep(50 * time.Millisecond) // the CRI gives no sign of the change but its status
	}
	t.Fatalf("sandbox %s still ready after its pause was killed", id)
}

// Pods run through the CRI with the kubelet's namespace options: a PID namespace shared by the
// pod's containers (shareProcessNamespace), one each, and the host's network.
func TestPodsShareNamespacesAsAsked(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := containertest.StartCRI(t, containertest.CRIConfig{})
	shared := d.RunPodNS(t, "shared", &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD})
	sharedApp := shared.Run(t, d, containertest.PodContainer{Name: "app"})
	shared.Run(t, d, containertest.PodContainer{Name: "sidecar"})
	apart := d.RunPodNS(t, "apart", &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER})
	apart.Run(t, d, containertest.PodContainer{Name: "app"})
	apart.Run(t, d, containertest.PodContainer{Name: "sidecar"})
	hostnet := d.RunPodNS(t, "hostnet", &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE})
	hostnet.Run(t, d, containertest.PodContainer{Name: "app"})

	coll := container.NewCollection()
	w := container.Watch(context.Background(), coll, d.Socket, nil, func(err error) { t.Log(err) })
	defer w.Stop()
	pods := map[string]container.Pod{}
	for _, p := range coll.Pods() {
		pods[p.Pod] = p
	}
	members := func(pod string) map[string]container.PodMember {
		out := map[string]container.PodMember{}
		for _, m := range pods[pod].Members {
			if m.Sandbox {
				m.Name = "sandbox"
			}
			out[m.Name] = m
		}
		if len(out) == 0 {
			t.Fatalf("pod %s not shown: %+v", pod, pods)
		}
		return out
	}

	s := members("shared")
	if p := pods["shared"]; !p.PIDShared || len(p.Flags) != 0 {
		t.Errorf("pod shared: pid shared %v, flags %v", p.PIDShared, p.Flags)
	}
	for _, name := range []string{"app", "sidecar"} {
		m := s[name]
		for _, ty := range []string{"net", "ipc", "uts", "pid"} {
			if m.Shares[ty] != container.ShareSandbox {
				t.Errorf("shared/%s: %s is %q, want the sandbox's", name, ty, m.Shares[ty])
			}
		}
		if m.Shares["mnt"] != container.ShareOwn {
			t.Errorf("shared/%s: mnt is %q", name, m.Shares["mnt"])
		}
		if want := fmt.Sprintf("/proc/%d/ns/pid", s["sandbox"].Pid); m.Joins["pid"] != want {
			t.Errorf("shared/%s: its spec joins %v, want pid %s", name, m.Joins, want)
		}
	}
	if app := coll.Get(sharedApp); app == nil || app.NS["pid"] != testutil.NSInode(t, int(s["sandbox"].Pid), "pid") {
		t.Errorf("shared/app is not in the pause's PID namespace: %+v", app)
	}

	a := members("apart")
	if p := pods["apart"]; p.PIDShared || len(p.Flags) != 0 {
		t.Errorf("pod apart: pid shared %v, flags %v; want not shared, no flags (its spec did not ask)", p.PIDShared, p.Flags)
	}
	for _, name := range []string{"app", "sidecar"} {
		if m := a[name]; m.Shares["pid"] != container.ShareOwn || m.Shares["net"] != container.ShareSandbox || m.Joins["pid"] != "" {
			t.Errorf("apart/%s: shares %v, joins %v", name, m.Shares, m.Joins)
		}
	}

	h := members("hostnet")
	if p := pods["hostnet"]; !slices.Equal(p.Flags, []string{"host_net"}) {
		t.Errorf("pod hostnet: flags %v, want host_net", p.Flags)
	}
	for _, name := range []string{"sandbox", "app"} {
		if m := h[name]; m.Shares["net"] != container.ShareHost || m.Shares["ipc"] == container.ShareHost {
			t.Errorf("hostnet/%s: shares %v", name, m.Shares)
		}
	}
}
