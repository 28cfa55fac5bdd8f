package container_test

import (
	"context"
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
