package container

import (
	"context"
	"syscall"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/cri"
	"github.com/ghostwatch/ghostwatch/tracer/event"
)

// ociNamespaces maps the runtime spec's namespace types to the index's names.
var ociNamespaces = map[string]string{"network": "net", "ipc": "ipc", "uts": "uts", "pid": "pid",
	"mount": "mnt", "user": "user", "cgroup": "cgroup", "time": "time"}

// WatchCRI fills coll from a runtime's CRI at socket (containerd's CRI plugin, CRI-O): every pod
// sandbox, owning the namespaces its runtime spec pins (so a pod whose namespaces are held by bind
// mounts alone, with no pause process, still owns them), and every running container, with the
// pod's name, namespace and uid and the container's name and attempt as the kubelet gave them.
// It scans again every rescanEvery until ctx ends or the watcher is stopped: the CRI has no event
// stream that every runtime serves.
func WatchCRI(ctx context.Context, coll *Collection, socket string) (*Watcher, error) {
	wt, ctx := newWatcher(ctx)
	if err := wt.cri(ctx, coll, socket); err != nil {
		wt.cancel()
		return nil, err
	}
	return wt, nil
}

func (wt *Watcher) cri(ctx context.Context, coll *Collection, socket string) error {
	client, err := cri.Dial(ctx, socket)
	if err != nil {
		return err
	}
	w := &criWatch{client: client, coll: coll, known: map[string]bool{}}
	if err := w.scan(ctx); err != nil {
		client.Close()
		return err
	}
	wt.goWatch(func() {
		defer client.Close()
		every(ctx, rescanEvery, func() bool { w.scan(ctx); return false }) // a failed scan is retried at the next tick
	})
	return nil
}

type criWatch struct {
	client *cri.Client
	coll   *Collection
	known  map[string]bool // ids this watch added and has not removed
}

func (w *criWatch) scan(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pods, err := w.client.Pods(ctx)
	if err != nil {
		return err
	}
	cs, err := w.client.Containers(ctx, func(id string) bool { return w.known[id] })
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	byID := map[string]cri.Pod{}
	for _, p := range pods {
		byID[p.ID] = p
		listed[p.ID] = true
		if !w.known[p.ID] {
			w.addPod(p)
		}
	}
	for _, c := range cs {
		if !c.Running {
			continue // not running: nothing to attribute, and removed below if it was
		}
		listed[c.ID] = true
		if !w.known[c.ID] {
			w.addContainer(c, byID[c.PodID])
		}
	}
	for id := range w.known {
		if !listed[id] {
			w.coll.Remove(id)
			delete(w.known, id)
		}
	}
	return nil
}

func (w *criWatch) addPod(p cri.Pod) {
	ct := &Container{
		Container: &event.Container{ID: p.ID, Runtime: w.client.Name, Pod: p.Name, K8sNamespace: p.Namespace, PodUID: p.UID},
		Sandbox:   true,
		Source:    "cri",
		NS:        map[string]uint32{},
	}
	// The pause process's pid is trusted only while the sandbox is ready: once it has exited,
	// the pid may be another process's.
	if p.Ready && p.Pid != 0 {
		init := w.coll.initOf(p.Pid)
		ct.Pid, ct.NS, ct.CgroupPath, ct.CgroupID = p.Pid, init.ns, init.cgroupPath, init.cgroupID
	}
	for typ, path := range p.NSPaths {
		name, ok := ociNamespaces[typ]
		var st syscall.Stat_t
		if ok && syscall.Stat(path, &st) == nil {
			ct.NS[name] = uint32(st.Ino)
		}
	}
	w.coll.Add(ct)
	w.known[p.ID] = true
}

func (w *criWatch) addContainer(c cri.Container, pod cri.Pod) {
	ct := &Container{
		Container: &event.Container{ID: c.ID, Name: c.Name, Runtime: w.client.Name, Image: c.Image,
			Pod: pod.Name, K8sNamespace: pod.Namespace, PodUID: pod.UID, Attempt: c.Attempt},
		Source: "cri",
	}
	if c.Pid != 0 {
		init := w.coll.initOf(c.Pid)
		ct.Pid, ct.NS, ct.CgroupPath, ct.CgroupID = c.Pid, init.ns, init.cgroupPath, init.cgroupID
	}
	w.coll.Add(ct)
	w.known[c.ID] = true
}
