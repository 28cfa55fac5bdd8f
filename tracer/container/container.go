// Package container knows which containers run on this node and attributes events to them: an
// index from namespace inodes and cgroup ids to containers, filled from the containerd API and,
// for runtimes without a client, from cgroup paths. Removed containers stay a while, so that late
// events (from processes, or containers, gone by the time the event is read) still resolve.
package container

import (
	"maps"
	"os"
	"sync"
	"time"

	"github.com/ghostwatch/ghostwatch/gen/header"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/lru"
)

// Grace is how long a removed container still resolves.
const Grace = 30 * time.Second

// Container is what ghostwatch knows of one container.
type Container struct {
	*event.Container                   // what events show
	Namespace        string            `json:"containerd_namespace,omitempty"`
	Sandbox          bool              `json:"sandbox,omitempty"` // a pod's sandbox (pause) container
	Pid              uint32            `json:"pid,omitempty"`     // init, on the host
	NS               map[string]uint32 `json:"ns"`                // type name to inode
	CgroupID         uint64            `json:"cgroup_id,omitempty"`
	CgroupPath       string            `json:"cgroup_path,omitempty"`
	Source           string            `json:"source"` // containerd, cgroup
	// OCIRuntime is the runtime binary that runs it (runc, crun), as its runtime's options name it;
	// "" when not known (not from containerd, or a runtime other than the runc shim).
	OCIRuntime      string `json:"oci_runtime,omitempty"`
	NoNewPrivileges bool   `json:"no_new_privileges,omitempty"` // its process's, from its spec
	// SpecNS is what its runtime spec asks of each namespace type: a path to join, "" for a new
	// one; a type left out is the host's. nil when the spec is not known (not from containerd).
	SpecNS  map[string]string `json:"spec_ns,omitempty"`
	removed time.Time
}

// Change is a container added to or removed from the index (removed: once its grace is over).
type Change struct {
	Container *Container
	Removed   bool
}

// TaskEvent is what the runtime said of a container's init: it ran out of memory (containerd's
// TaskOOM: the runtime saw its cgroup's OOM count rise), or it exited (TaskExit).
type TaskEvent struct {
	ContainerID string
	OOM         bool
	Exit        bool
	Pid         uint32 // Exit: the init's, on the host
	ExitStatus  uint32 // Exit: 128+n for a signal n (137: SIGKILL)
	ExitedAt    time.Time
}

// Collection is the index. It is safe for concurrent use.
type Collection struct {
	mu       sync.RWMutex
	byID     map[string]*Container
	byNS     map[string]map[uint32][]*Container // type name, inode
	byCgroup map[uint64]*Container
	subs     map[int]func(Change) // by subscription number
	taskSubs map[int]func(TaskEvent)
	nextSub  int
	now      func() time.Time
	cgroups  *cgroupPaths
	host     map[string]uint32 // the host's namespaces: never a container's
	swept    time.Time         // the last look for containers known by cgroup alone whose cgroup is gone
	// announced are containers a runtime created and has not started: what their labels say,
	// until they are added (their task created) or pushed out by newer ones.
	announced *lru.Cache[string, *event.Container]
	// networks are the pods CNI ADDs named for network namespaces, by inode (event.Networks); the
	// cache has a lock of its own.
	networks *lru.Cache[uint32, network]
}

// network is a CNI ADD's pod for a namespace, and when the ADD started.
type network struct {
	at  time.Time
	pod *event.Container
}

// Bounds of the ADDs remembered: a namespace's created event waits for its owner a few seconds.
const (
	networksMax = 1024
	networksTTL = time.Minute
)

// sweepEvery is how often containers known by their cgroup alone are looked at: no runtime tells of
// their end, so their cgroup's removal is theirs. Without it they would stay for ever, and with
// --host fill the kernel filter's list of mount namespaces.
const sweepEvery = 10 * time.Second

// announcedMax bounds the containers created and not started that the index remembers.
const announcedMax = 256

// NewCollection returns an empty index.
func NewCollection() *Collection {
	return &Collection{
		byID:      map[string]*Container{},
		byNS:      map[string]map[uint32][]*Container{},
		byCgroup:  map[uint64]*Container{},
		subs:      map[int]func(Change){},
		taskSubs:  map[int]func(TaskEvent){},
		now:       time.Now,
		cgroups:   newCgroupPaths(),
		host:      hostNamespaces(),
		announced: lru.New[string, *event.Container](announcedMax, 0),
		networks:  lru.New[uint32, network](networksMax, networksTTL),
	}
}

// hostNamespaces are the host's namespaces, PID 1's. Those PID 1 does not show (a sandbox that
// hides it, as on the development machines here) are taken as ours: ghostwatch runs in the host's
// namespaces there. Without them, a runtime's process seen in a container's cgroup before it left
// the host's namespaces made every host process that container's.
func hostNamespaces() map[string]uint32 {
	ns := ProcNS(1)
	for name, inode := range ProcNS(uint32(os.Getpid())) {
		if _, ok := ns[name]; !ok {
			ns[name] = inode
		}
	}
	return ns
}

// Subscribe calls f for every container already known and for every later change, until the
// returned function is called; once it returns, f is not called again. f runs with the index
// locked: it must not call back into it.
func (c *Collection) Subscribe(f func(Change)) (unsubscribe func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ct := range c.byID {
		f(Change{Container: ct})
	}
	n := c.nextSub
	c.nextSub++
	c.subs[n] = f
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.subs, n)
	}
}

// SubscribeTasks calls f for every task event of the runtime from now on, until the returned
// function is called. f runs on the runtime's watcher goroutine, with the index locked: it must
// not call back into it, and must not block.
func (c *Collection) SubscribeTasks(f func(TaskEvent)) (unsubscribe func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nextSub
	c.nextSub++
	c.taskSubs[n] = f
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.taskSubs, n)
	}
}

func (c *Collection) publishTask(e TaskEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.taskSubs {
		f(e)
	}
}

// Add puts a container in the index, replacing one with the same id but keeping what the new one
// does not say: sources know different things of one container (containerd its image, OCI runtime
// and spec; the CRI its pod's uid and its attempt). ct must not have been written in an event yet.
func (c *Collection) Add(ct *Container) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.add(ct)
}

// addAbsent adds ct unless a container of its id is known already, and returns the one indexed:
// gadgets decoding on their own goroutines find a new cgroup at once, and the one that loses must
// not refill (write) a container the other's events already hold.
func (c *Collection) addAbsent(ct *Container) *Container {
	c.mu.Lock()
	defer c.mu.Unlock()
	if known, ok := c.byID[ct.ID]; ok {
		return known
	}
	c.add(ct)
	return ct
}

// add indexes ct. Called with mu held.
func (c *Collection) add(ct *Container) {
	c.expire()
	if old, ok := c.byID[ct.ID]; ok {
		c.unindex(old)
		fill(ct, old)
	}
	c.byID[ct.ID] = ct
	if ct.Source != "cgroup" { // a cgroup path names no container: its announcement still does
		c.announced.Delete(ct.ID)
	}
	for name, inode := range ct.NS {
		if inode == 0 || inode == c.host[name] {
			continue // a container sharing the host's namespace does not own it
		}
		m := c.byNS[name]
		if m == nil {
			m = map[uint32][]*Container{}
			c.byNS[name] = m
		}
		m[inode] = append(m[inode], ct)
	}
	if ct.CgroupID > 1 { // 1 is the root cgroup: every host process
		c.byCgroup[ct.CgroupID] = ct
	}
	for _, f := range c.subs {
		f(Change{Container: ct})
	}
}

// fill completes ct with what old says and ct does not.
func fill(ct, old *Container) {
	n, o := ct.Container, old.Container
	for _, f := range []struct{ to, from *string }{{&n.Name, &o.Name}, {&n.Image, &o.Image}, {&n.Pod, &o.Pod},
		{&n.K8sNamespace, &o.K8sNamespace}, {&n.PodUID, &o.PodUID}, {&ct.Namespace, &old.Namespace},
		{&ct.OCIRuntime, &old.OCIRuntime}, {&ct.CgroupPath, &old.CgroupPath}} {
		if *f.to == "" {
			*f.to = *f.from
		}
	}
	if n.Attempt == 0 {
		n.Attempt = o.Attempt
	}
	if ct.Pid == 0 {
		ct.Pid = old.Pid
	}
	if ct.CgroupID == 0 {
		ct.CgroupID = old.CgroupID
	}
	if ct.SpecNS == nil {
		ct.SpecNS = old.SpecNS
	}
	ct.Sandbox = ct.Sandbox || old.Sandbox
	ct.NoNewPrivileges = ct.NoNewPrivileges || old.NoNewPrivileges
	for name, inode := range old.NS {
		if ct.NS[name] == 0 && inode != 0 {
			if ct.NS == nil {
				ct.NS = map[string]uint32{}
			}
			ct.NS[name] = inode
		}
	}
}

// Remove marks a container removed: it still resolves for Grace, then leaves the index.
func (c *Collection) Remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ct, ok := c.byID[id]; ok && ct.removed.IsZero() {
		ct.removed = c.now()
	}
	c.expire()
}

// expire marks removed the containers known by cgroup alone whose cgroup is gone, and drops those
// removed more than Grace ago. Called with mu held.
func (c *Collection) expire() {
	now := c.now()
	if now.Sub(c.swept) >= sweepEvery {
		c.swept = now
		for _, ct := range c.byID {
			if ct.Source == "cgroup" && ct.removed.IsZero() && c.cgroups.gone(ct.CgroupID) {
				ct.removed = now
			}
		}
	}
	for _, ct := range c.byID {
		if !ct.removed.IsZero() && now.Sub(ct.removed) > Grace {
			c.unindex(ct)
			for _, f := range c.subs {
				f(Change{Container: ct, Removed: true})
			}
		}
	}
}

func (c *Collection) unindex(ct *Container) {
	delete(c.byID, ct.ID)
	for name, inode := range ct.NS {
		list := c.byNS[name][inode]
		for i, x := range list {
			if x == ct {
				list = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(c.byNS[name], inode)
		} else {
			c.byNS[name][inode] = list
		}
	}
	if c.byCgroup[ct.CgroupID] == ct {
		delete(c.byCgroup, ct.CgroupID)
	}
}

// Announce remembers a container its runtime has created and not started yet, so that what
// happens while it starts (its runtime entering namespaces) can name it. One found by its cgroup
// before the announcement came is replaced by a named copy: events made already hold the old
// one, which is never written to.
func (c *Collection) Announce(ct *event.Container) {
	c.mu.Lock()
	defer c.mu.Unlock()
	x, indexed := c.byID[ct.ID]
	if indexed && x.Source != "cgroup" {
		return
	}
	c.announced.Put(ct.ID, ct)
	if indexed {
		c.add(&Container{Container: c.unindexed(ct.ID, x.Runtime), CgroupID: x.CgroupID,
			CgroupPath: x.CgroupPath, Source: "cgroup", NS: maps.Clone(x.NS)})
	}
}

// AddNetwork remembers the pod a CNI ADD named for a network namespace (event.Networks).
func (c *Collection) AddNetwork(inode uint32, at time.Time, pod *event.Container) {
	c.networks.Put(inode, network{at: at, pod: pod})
}

// Network returns the pod an ADD started at or after since named for a network namespace, or nil
// (event.Networks).
func (c *Collection) Network(inode uint32, since time.Time) *event.Container {
	if n, ok := c.networks.Get(inode); ok && !n.at.Before(since) {
		return n.pod
	}
	return nil
}

// Lookup returns a container by id, indexed or announced, and whether it is a pod's sandbox; nil
// if it is neither.
func (c *Collection) Lookup(id string) (ct *event.Container, sandbox bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	x, indexed := c.byID[id]
	if indexed && x.Source != "cgroup" {
		return x.Container, x.Sandbox
	}
	if a, ok := c.announced.Get(id); ok {
		return a, false
	}
	if indexed {
		return x.Container, x.Sandbox
	}
	return nil, false
}

// Get returns a container by id, or nil.
func (c *Collection) Get(id string) *Container {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.byID[id]
}

// List returns the containers known and not removed.
func (c *Collection) List() []*Container {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []*Container
	for _, ct := range c.byID {
		if ct.removed.IsZero() {
			out = append(out, ct)
		}
	}
	return out
}

// Actor attributes an event's task: by its mount namespace (one per container), then by its
// cgroup, then by the cgroup's path for runtimes no client told us about.
func (c *Collection) Actor(h *event.Raw) *event.Container {
	mnt := h.Ns[header.HeaderGwNsGW_NS_MNT]
	c.mu.RLock()
	ct := first(c.byNS["mnt"][mnt])
	if ct == nil {
		ct = c.byCgroup[h.CgroupId]
	}
	c.mu.RUnlock()
	if ct == nil {
		ct = c.fromCgroup(h)
	}
	if ct == nil {
		return nil
	}
	return ct.Container
}

// ByMntNS returns the container whose mount namespace this is, or nil.
func (c *Collection) ByMntNS(inode uint32) *Container {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return first(c.byNS["mnt"][inode])
}

// ByInit returns the container whose init process is pid, among those whose mount namespace is not
// known: an init that exited before /proc could show its namespaces. Its pid is all that is left
// to match a kernel event of that init by.
func (c *Collection) ByInit(pid uint32) *Container {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, ct := range c.byID {
		if ct.Pid == pid && ct.NS["mnt"] == 0 {
			return ct
		}
	}
	return nil
}

// Owner returns the container a namespace belongs to. Where containers share one (the network
// namespace of a pod), the pod's sandbox owns it, else the first container that was seen in it.
func (c *Collection) Owner(t event.NSType, inode uint32) *event.Container {
	c.mu.RLock()
	defer c.mu.RUnlock()
	list := c.byNS[t.Name][inode]
	for _, ct := range list {
		if ct.Sandbox {
			return ct.Container
		}
	}
	if ct := first(list); ct != nil {
		return ct.Container
	}
	return nil
}

// Cgroup returns the container whose cgroup this is, by the runtimes' path forms: the one the index
// knows, else one named by the path alone.
func (c *Collection) Cgroup(path string) *event.Container {
	runtime, id, ok := ParseCgroupPath(path)
	if !ok {
		return nil
	}
	if ct := c.Get(id); ct != nil {
		return ct.Container
	}
	return c.unindexed(id, runtime)
}

// unindexed makes a container the index does not hold, from what names it: its runtime's
// announcement (containerd's /containers/create, with its labels) if there is one, so that what
// it does before its task event arrives has its name and pod; else its id and runtime alone.
func (c *Collection) unindexed(id, runtime string) *event.Container {
	ct := &event.Container{ID: id, Runtime: runtime}
	if a, ok := c.announced.Get(id); ok {
		ct.Name, ct.Image, ct.Pod, ct.K8sNamespace, ct.PodUID, ct.Attempt = a.Name, a.Image, a.Pod, a.K8sNamespace, a.PodUID, a.Attempt
	}
	return ct
}

func first(list []*Container) *Container {
	if len(list) == 0 {
		return nil
	}
	return list[0]
}
