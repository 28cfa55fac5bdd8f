package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/containerd/containerd"
	apievents "github.com/containerd/containerd/api/events"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/events"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/plugin"
	"github.com/containerd/typeurl/v2"

	"github.com/ghostwatch/ghostwatch/tracer/cri"
	"github.com/ghostwatch/ghostwatch/tracer/event"
)

// DefaultContainerdSocket is where containerd listens unless told otherwise.
const DefaultContainerdSocket = "/run/containerd/containerd.sock"

// CRI labels: what the Kubernetes runtime interface records on containerd containers.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
	labelKind          = "io.cri-containerd.kind" // "sandbox" or "container"
	labelNerdctlName   = "nerdctl/name"
	// The kubelet's restart count of a container, in its spec's annotations.
	annotationRestartCount = "io.kubernetes.container.restartCount"
)

// Containerd feeds a Collection from containerd: the containers running now, then task events.
type Containerd struct {
	client     *containerd.Client
	namespaces []string // nil: all
	coll       *Collection
}

// Watcher fills a Collection until it is stopped: a handle on the goroutines that Watch and
// WatchContainerd start.
type Watcher struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newWatcher(ctx context.Context) (*Watcher, context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	return &Watcher{cancel: cancel}, ctx
}

func (w *Watcher) goWatch(f func()) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		f()
	}()
}

// Stop ends the watching and waits for it: once Stop returns, the watcher changes nothing in the
// collection, so that what its subscribers update (a gadget's kernel filter) can be closed. It
// is safe to call more than once, and on a nil Watcher.
func (w *Watcher) Stop() {
	if w == nil {
		return
	}
	w.cancel()
	w.wg.Wait()
}

// WatchContainerd connects to containerd at socket and fills coll with the running containers of
// the given namespaces (nil: every namespace). Until ctx ends or the watcher is stopped it follows
// task events, so that a container is indexed when its task is created, before its workload runs.
// onStreamError, if not nil, is told when the event stream fails; it runs on the watcher's
// goroutine, and what it starts with the watcher's goWatch is waited for by Stop too. An
// unreachable daemon is an error and starts nothing.
func WatchContainerd(ctx context.Context, coll *Collection, socket string, nss []string, onStreamError func(error)) (*Watcher, error) {
	w, ctx := newWatcher(ctx)
	if err := w.containerd(ctx, coll, socket, nss, func(err error) {
		if onStreamError != nil {
			onStreamError(err)
		}
	}); err != nil {
		w.cancel()
		return nil, err
	}
	return w, nil
}

func (wt *Watcher) containerd(ctx context.Context, coll *Collection, socket string, nss []string, onStreamError func(error)) error {
	if _, err := os.Stat(socket); err != nil {
		return fmt.Errorf("containerd not reachable: no socket at %s", socket)
	}
	client, err := containerd.New(socket, containerd.WithTimeout(2*time.Second))
	if err != nil {
		return fmt.Errorf("containerd not reachable at %s (not answering)", socket)
	}
	vctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = client.Version(vctx)
	cancel()
	if err != nil {
		client.Close()
		return fmt.Errorf("containerd not reachable at %s (not answering)", socket)
	}
	w := &Containerd{client: client, namespaces: nss, coll: coll}
	// Subscribe before scanning, so that nothing happens unseen in between.
	sctx, stop := context.WithCancel(ctx)
	envelopes, errs := client.EventService().Subscribe(sctx, `topic~="^/tasks/"`, `topic=="/containers/create"`)
	if err := w.scan(ctx); err != nil {
		stop()
		client.Close()
		return err
	}
	wt.goWatch(func() {
		defer client.Close()
		defer stop()
		for {
			select {
			case env := <-envelopes:
				if ctx.Err() != nil {
					return // stopped: a change now would reach subscribers being closed
				}
				w.handle(ctx, env)
			case err := <-errs:
				if err != nil && ctx.Err() == nil {
					onStreamError(fmt.Errorf("containerd event stream ended: %w", err))
				}
				return
			case <-ctx.Done():
				return
			}
		}
	})
	return nil
}

func (w *Containerd) watched(ns string) bool {
	if w.namespaces == nil {
		return true
	}
	for _, n := range w.namespaces {
		if n == ns {
			return true
		}
	}
	return false
}

func (w *Containerd) scan(ctx context.Context) error {
	nss, err := w.client.NamespaceService().List(ctx)
	if err != nil {
		return fmt.Errorf("listing containerd namespaces: %w", err)
	}
	for _, ns := range nss {
		if !w.watched(ns) {
			continue
		}
		nctx := namespaces.WithNamespace(ctx, ns)
		cs, err := w.client.Containers(nctx)
		if err != nil {
			return fmt.Errorf("listing containers in %s: %w", ns, err)
		}
		for _, c := range cs {
			task, err := c.Task(nctx, nil)
			if err != nil {
				continue // no task: nothing runs, nothing to attribute
			}
			w.add(nctx, ns, c, w.coll.initOf(task.Pid()))
		}
	}
	return nil
}

func (w *Containerd) handle(ctx context.Context, env *events.Envelope) {
	if !w.watched(env.Namespace) {
		return
	}
	ev, err := typeurl.UnmarshalAny(env.Event)
	if err != nil {
		return
	}
	nctx := namespaces.WithNamespace(ctx, env.Namespace)
	switch e := ev.(type) {
	case *apievents.ContainerCreate:
		// Named before it runs: its runtime's entering the pod's namespaces names it.
		if c, err := w.client.LoadContainer(nctx, e.ID); err == nil {
			if info, err := c.Info(nctx, containerd.WithoutRefreshedMetadata); err == nil {
				w.coll.Announce(labeled(info))
			}
		}
	case *apievents.TaskCreate:
		// Read before asking containerd about it: a short-lived container can have run and
		// exited by the time the answers come, and then /proc has nothing left to show.
		init := w.coll.initOf(e.Pid)
		if c, err := w.client.LoadContainer(nctx, e.ContainerID); err == nil {
			w.add(nctx, env.Namespace, c, init)
		}
	case *apievents.TaskOOM:
		w.coll.publishTask(TaskEvent{ContainerID: e.ContainerID, OOM: true})
	case *apievents.TaskExit:
		if e.ID == e.ContainerID { // the init process, not an exec
			w.coll.publishTask(TaskEvent{ContainerID: e.ContainerID, Exit: true, Pid: e.Pid,
				ExitStatus: e.ExitStatus, ExitedAt: e.ExitedAt.AsTime()})
			w.coll.Remove(e.ContainerID)
		}
	case *apievents.TaskDelete:
		if e.ID == "" || e.ID == e.ContainerID {
			w.coll.Remove(e.ContainerID)
		}
	}
}

func (w *Containerd) add(ctx context.Context, ns string, c containerd.Container, init initProcess) {
	info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
	if err != nil {
		return
	}
	ct := &Container{
		Container:  labeled(info),
		Namespace:  ns,
		Sandbox:    info.Labels[labelKind] == "sandbox",
		Pid:        init.pid,
		NS:         init.ns,
		CgroupPath: init.cgroupPath,
		CgroupID:   init.cgroupID,
		Source:     "containerd",
	}
	ct.OCIRuntime = ociRuntime(info.Runtime)
	var spec struct {
		Process *struct {
			NoNewPrivileges bool `json:"noNewPrivileges"`
		} `json:"process"`
		Annotations map[string]string `json:"annotations"`
		Linux       *struct {
			Namespaces []struct {
				Type string `json:"type"`
				Path string `json:"path"`
			} `json:"namespaces"`
		} `json:"linux"`
	}
	if info.Spec != nil && json.Unmarshal(info.Spec.GetValue(), &spec) == nil {
		if spec.Process != nil {
			ct.NoNewPrivileges = spec.Process.NoNewPrivileges
		}
		// The kubelet's restart count, which the CRI plugin passes on as an annotation.
		if n, err := strconv.ParseUint(spec.Annotations[annotationRestartCount], 10, 32); err == nil {
			ct.Attempt = uint32(n)
		}
		if spec.Linux != nil {
			ct.SpecNS = map[string]string{}
			for _, ns := range spec.Linux.Namespaces {
				if name, ok := ociNamespaces[ns.Type]; ok {
					ct.SpecNS[name] = ns.Path
				}
			}
		}
	}
	w.coll.Add(ct)
}

// labeled is what a containerd container's labels and image say of it.
func labeled(info containers.Container) *event.Container {
	l := info.Labels
	ct := &event.Container{ID: info.ID, Name: l[labelContainerName], Runtime: "containerd", Image: info.Image,
		Pod: l[labelPodName], K8sNamespace: l[labelPodNamespace], PodUID: l[labelPodUID]}
	if ct.Name == "" {
		ct.Name = l[labelNerdctlName]
	}
	return ct
}

// ociRuntime is the binary the runc shim runs for a container: its options' BinaryName, or runc.
func ociRuntime(rt containers.RuntimeInfo) string {
	if rt.Name != plugin.RuntimeRuncV2 {
		return ""
	}
	if rt.Options != nil {
		if v, err := typeurl.UnmarshalAny(rt.Options); err == nil {
			if o, ok := v.(*runcoptions.Options); ok && o.BinaryName != "" {
				return o.BinaryName
			}
		}
	}
	return "runc"
}

// rescanEvery is how often running processes are scanned for containers when no runtime client
// reports them.
const rescanEvery = 2 * time.Second

// Watch fills coll from containerd and the CRI (containerd's plugin, CRI-O) and, when containerd
// is unreachable or its event stream ends (a restart), from the cgroup paths of running processes,
// rescanned until containerd answers again: then the watcher reconnects, rescans it and follows its
// events, so that new containers are named again. Running processes are scanned once in any case,
// for containers of other runtimes. warn is told of each fallback, and of each return, in one line.
// It runs until ctx ends or the watcher is stopped.
func Watch(ctx context.Context, coll *Collection, socket string, nss []string, warn func(error)) *Watcher {
	w, ctx := newWatcher(ctx)
	var connect func() error
	connect = func() error {
		return w.containerd(ctx, coll, socket, nss, func(err error) {
			warn(fmt.Errorf("%w; new containers are attributed by cgroup path until it answers again", err))
			w.goWatch(func() { coll.untilConnected(ctx, connect, warn) })
		})
	}
	err := connect()
	for _, s := range cri.Sockets(socket) {
		// Names from the CRI where a runtime serves it; containerd without its CRI plugin
		// (and a node without CRI-O) have nothing to add.
		w.cri(ctx, coll, s)
	}
	coll.ScanProcesses()
	if err != nil {
		warn(fmt.Errorf("%w; attributing containers by cgroup path", err))
		w.goWatch(func() { coll.untilConnected(ctx, connect, warn) })
	}
	return w
}

// untilConnected rescans running processes by cgroup path until connect succeeds (containerd
// answers again) or ctx ends.
func (c *Collection) untilConnected(ctx context.Context, connect func() error, warn func(error)) {
	every(ctx, rescanEvery, func() bool {
		c.ScanProcesses()
		if connect() != nil {
			return false
		}
		warn(errors.New("containerd answers again: containers are named from it again"))
		return true
	})
}

// every calls f every d until ctx ends or f says it is done.
func every(ctx context.Context, d time.Duration, f func() (done bool)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if f() {
				return
			}
		}
	}
}
