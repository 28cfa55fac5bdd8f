package container

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/lru"
	"github.com/ghostwatch/ghostwatch/tracer/procfs"
)

// ProcNS returns the namespace inodes of a process by type name, from /proc/PID/ns; empty if the
// process is gone.
func ProcNS(pid uint32) map[string]uint32 {
	ns := map[string]uint32{}
	for _, t := range event.NSTypes {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, t.Name))
		if err != nil {
			continue
		}
		_, rest, _ := strings.Cut(link, "[")
		if n, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 32); err == nil {
			ns[t.Name] = uint32(n)
		}
	}
	return ns
}

var (
	hex64 = `([0-9a-f]{64})`
	// Cgroup path forms of container runtimes, matched against the last path component (systemd
	// driver) or the last two (cgroupfs driver).
	scopeRuntimes = []struct {
		re      *regexp.Regexp
		runtime string
	}{
		{regexp.MustCompile(`^cri-containerd-` + hex64 + `\.scope$`), "containerd"},
		{regexp.MustCompile(`^crio-` + hex64 + `(\.scope)?$`), "cri-o"},
		{regexp.MustCompile(`^docker-` + hex64 + `\.scope$`), "docker"},
		{regexp.MustCompile(`^libpod-` + hex64 + `(\.scope)?$`), "podman"},
	}
	parentRuntimes = map[string]string{"docker": "docker", "libpod_parent": "podman"}
	podDir         = regexp.MustCompile(`^pod[0-9a-f_-]+$`)
	hexID          = regexp.MustCompile(`^` + hex64 + `$`)
)

// ContainerdNamespaces are the namespaces ghostwatch watches by default, and those whose
// containers' default cgroup path is /NAMESPACE/ID.
var ContainerdNamespaces = []string{"k8s.io", "moby", "default"}

// ParseCgroupPath recognises the cgroup of a container and returns its runtime and id.
func ParseCgroupPath(path string) (runtime, id string, ok bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	last := parts[len(parts)-1]
	for _, r := range scopeRuntimes {
		if m := r.re.FindStringSubmatch(last); m != nil {
			return r.runtime, m[1], true
		}
	}
	if len(parts) < 2 {
		return "", "", false
	}
	parent := parts[len(parts)-2]
	if rt, ok := parentRuntimes[parent]; ok && hexID.MatchString(last) {
		return rt, last, true
	}
	// kubelet's cgroupfs driver: /kubepods/<qos>/pod<uid>/<id>, whatever the CRI runtime.
	if podDir.MatchString(parent) && parts[0] == "kubepods" && hexID.MatchString(last) {
		return "cri", last, true
	}
	// containerd without Kubernetes: /<namespace>/<id>.
	if len(parts) == 2 {
		for _, ns := range ContainerdNamespaces {
			if parent == ns {
				return "containerd", last, true
			}
		}
	}
	return "", "", false
}

// cgroupPaths maps cgroup v2 ids to paths. A cgroup's id is its kernfs node id, which is also a
// file handle of the hierarchy: open_by_handle_at opens the cgroup's directory from its id alone,
// and the kernel says its path. Nothing walks the hierarchy, and no lock is held while the
// kernel is asked. Answers, a cgroup that is not a container's included, are kept in a bounded
// cache (ids are never reused).
type cgroupPaths struct {
	root  string
	mount int // an open descriptor of root (open_by_handle_at refuses O_PATH ones), or -1
	cache *lru.Cache[uint64, cgroupEntry]
}

type cgroupEntry struct {
	path      string
	container *event.Container // nil: not a container's cgroup
}

// cgroupCacheSize bounds the cgroups remembered; a node has rarely more than a few thousand.
const cgroupCacheSize = 8192

// fileidKernfs is the file handle type of kernfs (FILEID_KERNFS): the 64-bit node id.
const fileidKernfs = 0xfe

// unifiedRoots are where the cgroup v2 hierarchy is mounted: alone, or beside v1 (hybrid).
var unifiedRoots = []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}

// unified finds the cgroup v2 hierarchy once per process, and opens it for open_by_handle_at:
// every collection shares the descriptor, which lives as long as the process.
var unified = sync.OnceValues(func() (root string, fd int) {
	for _, r := range unifiedRoots {
		if isCgroup2(r) {
			fd, err := unix.Open(r, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				fd = -1
			}
			return r, fd
		}
	}
	return "", -1
})

func newCgroupPaths() *cgroupPaths {
	root, fd := unified()
	return &cgroupPaths{root: root, mount: fd, cache: lru.New[uint64, cgroupEntry](cgroupCacheSize, 0)}
}

func isCgroup2(path string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(path, &st) == nil && st.Type == 0x63677270 // CGROUP2_SUPER_MAGIC
}

// container returns the container a cgroup id belongs to according to its path, or nil.
func (p *cgroupPaths) container(id uint64) (*event.Container, string) {
	if e, ok := p.cache.Get(id); ok {
		return e.container, e.path
	}
	path, ok := p.path(id)
	if !ok {
		return nil, "" // gone already, or no hierarchy: not cached, a later id is another cgroup
	}
	e := cgroupEntry{path: path}
	if runtime, cid, ok := ParseCgroupPath(path); ok {
		e.container = &event.Container{ID: cid, Runtime: runtime}
	}
	p.cache.Put(id, e)
	return e.container, path
}

// open opens a cgroup by its id (O_PATH); the hierarchy must be open.
func (p *cgroupPaths) open(id uint64) (int, error) {
	var handle [8]byte
	binary.NativeEndian.PutUint64(handle[:], id)
	return unix.OpenByHandleAt(p.mount, unix.NewFileHandle(fileidKernfs, handle[:]), unix.O_PATH|unix.O_CLOEXEC)
}

// gone says whether the cgroup of id has been removed; false when that cannot be told.
func (p *cgroupPaths) gone(id uint64) bool {
	if p.mount < 0 || id <= 1 {
		return false
	}
	fd, err := p.open(id)
	if err == nil {
		unix.Close(fd)
		return false
	}
	if errors.Is(err, unix.ESTALE) || errors.Is(err, unix.ENOENT) {
		p.cache.Delete(id)
		return true
	}
	return false
}

// path asks the kernel for a cgroup's path below the hierarchy's root.
func (p *cgroupPaths) path(id uint64) (string, bool) {
	if p.mount < 0 {
		return "", false
	}
	fd, err := p.open(id)
	if err != nil {
		return "", false
	}
	defer unix.Close(fd)
	full, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", false
	}
	rel, ok := strings.CutPrefix(full, p.root)
	if !ok {
		return "", false // the hierarchy is mounted elsewhere in this mount namespace
	}
	return "/" + strings.TrimPrefix(rel, "/"), true
}

// fromCgroup attributes a task no runtime client told us about, by its cgroup's path, and adds
// the container to the index so that its other events resolve at once.
func (c *Collection) fromCgroup(h *event.Raw) *Container {
	if h.CgroupId <= 1 {
		return nil
	}
	ref, path := c.cgroups.container(h.CgroupId)
	if ref == nil {
		return nil
	}
	if known := c.Get(ref.ID); known != nil {
		return known
	}
	// A container of its own: the cache hands the same reference to every caller, and Add fills in
	// the container it is given, while events may hold what Actor returned.
	own := c.unindexed(ref.ID, ref.Runtime)
	ct := &Container{Container: own, CgroupID: h.CgroupId, CgroupPath: path, Source: "cgroup", NS: map[string]uint32{}}
	for _, t := range event.NSTypes {
		ct.NS[t.Name] = h.Ns[t.Index]
	}
	return c.addAbsent(ct)
}

// initProcess is what /proc shows of a container's init: its namespaces and cgroup, all empty
// once it is gone.
type initProcess struct {
	pid        uint32
	ns         map[string]uint32
	cgroupPath string
	cgroupID   uint64
}

func (c *Collection) initOf(pid uint32) initProcess {
	p := initProcess{pid: pid, ns: ProcNS(pid)}
	p.cgroupPath, p.cgroupID = c.cgroupOf(pid)
	return p
}

// cgroupOf returns the cgroup v2 path and id of a process.
func (c *Collection) cgroupOf(pid uint32) (string, uint64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if path, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			var st syscall.Stat_t
			if c.cgroups.root == "" || syscall.Stat(filepath.Join(c.cgroups.root, path), &st) != nil {
				return path, 0
			}
			return path, st.Ino
		}
	}
	return "", 0
}

// ScanProcesses adds the containers that running processes' cgroups reveal and that no runtime
// client reported: runtimes without a client, or containerd when it is unreachable.
func (c *Collection) ScanProcesses() error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	var pids []uint32
	for _, e := range entries {
		if pid, err := strconv.ParseUint(e.Name(), 10, 32); err == nil {
			pids = append(pids, uint32(pid))
		}
	}
	slices.Sort(pids)
	for _, pid := range pids {
		path, id := c.cgroupOf(pid)
		runtime, cid, ok := ParseCgroupPath(path)
		if !ok || c.Get(cid) != nil {
			continue
		}
		// The first process found (lowest pid) stands for the container: usually its init.
		c.Add(&Container{Container: &event.Container{ID: cid, Runtime: runtime}, Pid: pid,
			NS: ProcNS(pid), CgroupID: id, CgroupPath: path, Source: "cgroup"})
	}
	return nil
}

// MountNamespaces lists the mount namespaces processes are in now.
func MountNamespaces() []uint32 {
	entries, _ := os.ReadDir("/proc")
	seen := map[uint32]bool{}
	var out []uint32
	for _, e := range entries {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		if mnt := ProcNS(uint32(pid))["mnt"]; mnt != 0 && !seen[mnt] {
			seen[mnt] = true
			out = append(out, mnt)
		}
	}
	return out
}

// Descendants lists the processes below pid now (children, their children, ...), from each
// process's parent in /proc/PID/stat.
func Descendants(pid uint32) []uint32 {
	entries, _ := os.ReadDir("/proc")
	children := map[uint32][]uint32{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := procfs.ReadStat(p); ok { // else exited meanwhile
			children[st.PPid] = append(children[st.PPid], uint32(p))
		}
	}
	var out []uint32
	for queue := children[pid]; len(queue) > 0; queue = queue[1:] {
		out = append(out, queue[0])
		queue = append(queue, children[queue[0]]...)
	}
	return out
}
