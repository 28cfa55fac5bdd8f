package containertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Pod is a pod run through the daemon's CRI (StartCRI), as the kubelet runs one.
type Pod struct {
	ID        string
	Name      string
	Namespace string
	UID       string
	config    *runtimeapi.PodSandboxConfig
}

// RunPod runs a pod sandbox named name in Kubernetes namespace "default"; it is removed at the
// end of the test.
func (d *Daemon) RunPod(t testing.TB, name string) *Pod {
	t.Helper()
	return d.RunPodNS(t, name, nil)
}

// RunPodNS is RunPod with the pod's namespace options (host network, a PID namespace shared by
// its containers...), as the kubelet gives them; its containers get the same unless they say.
func (d *Daemon) RunPodNS(t testing.TB, name string, ns *runtimeapi.NamespaceOption) *Pod {
	t.Helper()
	p := newPod(t, name, ns)
	if err := d.runPod(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.removePod(p.ID) })
	return p
}

// StartPod asks for a pod sandbox as RunPod does and returns at once, for a test that looks at
// what happens while the runtime sets it up (its CNI ADD held, say): ran gives RunPodSandbox's
// answer, the pod's ID set before. At the end of the test, once RunPodSandbox has answered, the
// pod is removed.
func (d *Daemon) StartPod(t testing.TB, name string) (p *Pod, ran <-chan error) {
	t.Helper()
	p = newPod(t, name, nil)
	answer, done := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(done)
		answer <- d.runPod(p)
	}()
	t.Cleanup(func() {
		<-done
		if p.ID != "" {
			d.removePod(p.ID)
		}
	})
	return p, answer
}

func newPod(t testing.TB, name string, ns *runtimeapi.NamespaceOption) *Pod {
	p := &Pod{Name: name, Namespace: "default", UID: fmt.Sprintf("uid-%s-%d", name, time.Now().UnixNano())}
	p.config = &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: p.Name, Namespace: p.Namespace, Uid: p.UID},
		Labels:       p.labels(),
		Hostname:     name,
		LogDirectory: t.TempDir(),
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: ns}},
	}
	if ns.GetNetwork() == runtimeapi.NamespaceMode_NODE {
		p.config.Hostname = "" // the host's: runc cannot set one without a UTS namespace of its own
	}
	return p
}

// runPod runs the pod's sandbox and sets its ID.
func (d *Daemon) runPod(p *Pod) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := d.CRI.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: p.config})
	if err != nil {
		return fmt.Errorf("RunPodSandbox %s: %w\n%s", p.Name, err, d.log)
	}
	p.ID = resp.PodSandboxId
	return nil
}

// labels are those the kubelet gives a pod's sandbox and containers, and more (key, value pairs).
func (p *Pod) labels(kv ...string) map[string]string {
	l := map[string]string{"io.kubernetes.pod.name": p.Name, "io.kubernetes.pod.namespace": p.Namespace,
		"io.kubernetes.pod.uid": p.UID}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

// PodContainer describes a container of a pod.
type PodContainer struct {
	Name    string
	Attempt uint32   // the kubelet's restart count
	Args    []string // default: sleep
	// Namespaces: default the pod's. PID mode TARGET with TargetId joins another container's.
	Namespaces *runtimeapi.NamespaceOption
}

// Run creates and starts a container of the busybox image in the pod and returns its id.
func (p *Pod) Run(t testing.TB, d *Daemon, c PodContainer) string {
	t.Helper()
	args := c.Args
	if len(args) == 0 {
		args = []string{"sleep", "100000"}
	}
	ns := c.Namespaces
	if ns == nil {
		ns = p.config.Linux.SecurityContext.NamespaceOptions
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := d.CRI.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: p.ID,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: c.Attempt},
			Labels:   p.labels("io.kubernetes.container.name", c.Name),
			Image:    &runtimeapi.ImageSpec{Image: ImageName},
			Command:  args,
			LogPath:  fmt.Sprintf("%s-%d.log", c.Name, c.Attempt),
			Linux: &runtimeapi.LinuxContainerConfig{
				SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: ns}},
		},
		SandboxConfig: p.config,
	})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v\n%s", c.Name, err, d.log)
	}
	if _, err := d.CRI.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		t.Fatalf("StartContainer %s: %v\n%s", c.Name, err, d.log)
	}
	return resp.ContainerId
}

// removePods stops and removes every pod, which also removes their containers and unmounts
// their network namespaces.
func (d *Daemon) removePods() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := d.CRI.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return
	}
	for _, s := range resp.Items {
		d.removePod(s.Id)
	}
}

func (d *Daemon) removePod(id string) {
	if d.CRI == nil {
		return // the daemon is stopped, and its pods with it
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d.CRI.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
	d.CRI.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
}
