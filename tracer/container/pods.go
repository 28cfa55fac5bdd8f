package container

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"syscall"
)

// PodNamespaces are the namespace types ps --pods compares, in its column order.
var PodNamespaces = []string{"net", "ipc", "uts", "pid", "mnt", "user", "cgroup"}

// Where a pod member's namespace of one type is (PodMember.Shares): the sandbox's, the host's, its
// own, or ContainerShare+name for another container of the pod.
const (
	ShareSandbox   = "sandbox"
	ShareHost      = "host"
	ShareOwn       = "own"
	ContainerShare = "container:"
)

// Flags of ps --pods, on a member and, gathered, on its pod.
const (
	// FlagPIDNotShared: the member's spec asks to join a PID namespace (a path) and the member
	// is not in it.
	FlagPIDNotShared = "pid_not_shared"
	// FlagPIDJoined: the member is in another container's PID namespace, not the sandbox's
	// (PID namespace mode TARGET, as kubectl debug --target asks).
	FlagPIDJoined = "pid_joined"
	// FlagHost is the prefix of host_net, host_pid, host_ipc: the member is in the host's.
	FlagHost = "host_"
)

// hostFlagged are the types whose host namespace a member is flagged for.
var hostFlagged = []string{"net", "pid", "ipc"}

// Pod is one pod's containers and the namespaces they share.
type Pod struct {
	Pod          string `json:"pod"`
	K8sNamespace string `json:"k8s_namespace"`
	PodUID       string `json:"pod_uid,omitempty"`
	// PIDShared: every member whose PID namespace is known is in one.
	PIDShared bool        `json:"pid_shared"`
	Flags     []string    `json:"flags,omitempty"` // every flag of its members, once
	Members   []PodMember `json:"containers"`
}

// PodMember is a container of a pod (its sandbox too).
type PodMember struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	Sandbox bool   `json:"sandbox,omitempty"`
	Pid     uint32 `json:"pid,omitempty"`
	// Shares says, per type of PodNamespaces whose inode is known, whose namespace it is in:
	// ShareSandbox, ShareHost, ShareOwn, or ContainerShare+name.
	Shares map[string]string `json:"shares"`
	// Joins is what its runtime spec asks to join: type to path (absent when the spec is not
	// known or asks for no path).
	Joins map[string]string `json:"joins,omitempty"`
	Flags []string          `json:"flags,omitempty"`
}

// Pods groups the containers known and not removed into their pods (by the CRI's pod labels) and
// says which namespaces each shares with the sandbox, another container, or the host.
func (c *Collection) Pods() []Pod {
	return pods(c.List(), c.host, statNS)
}

// statNS is the inode of the namespace a path (/proc/PID/ns/TYPE, or a bind mount of one) is.
func statNS(path string) (uint32, bool) {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return 0, false
	}
	return uint32(st.Ino), true
}

func pods(list []*Container, host map[string]uint32, stat func(string) (uint32, bool)) []Pod {
	type key struct{ ns, name, uid string }
	groups := map[key][]*Container{}
	for _, ct := range list {
		if ct.Pod != "" {
			k := key{ct.K8sNamespace, ct.Pod, ct.PodUID}
			groups[k] = append(groups[k], ct)
		}
	}
	var out []Pod
	for k, members := range groups {
		// The sandbox first, then by pid: the lowest pid stands for a namespace that containers
		// share without the sandbox, unless a spec's path names another.
		slices.SortFunc(members, func(a, b *Container) int {
			if a.Sandbox != b.Sandbox {
				if a.Sandbox {
					return -1
				}
				return 1
			}
			return cmp.Or(cmp.Compare(a.Pid, b.Pid), cmp.Compare(a.ID, b.ID))
		})
		p := Pod{Pod: k.name, K8sNamespace: k.ns, PodUID: k.uid, PIDShared: true}
		var pidNS uint32
		for _, ct := range members {
			m := member(ct, members, host, stat)
			p.Members = append(p.Members, m)
			p.Flags = append(p.Flags, m.Flags...)
			if pid := ct.NS["pid"]; pid != 0 {
				if pidNS != 0 && pid != pidNS {
					p.PIDShared = false
				}
				pidNS = pid
			}
		}
		slices.Sort(p.Flags)
		p.Flags = slices.Compact(p.Flags)
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Pod) int {
		return cmp.Or(cmp.Compare(a.K8sNamespace, b.K8sNamespace), cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.PodUID, b.PodUID))
	})
	return out
}

func member(ct *Container, members []*Container, host map[string]uint32, stat func(string) (uint32, bool)) PodMember {
	m := PodMember{ID: ct.ID, Name: ct.Name, Sandbox: ct.Sandbox, Pid: ct.Pid, Shares: map[string]string{}}
	for _, ty := range PodNamespaces {
		inode := ct.NS[ty]
		if inode == 0 {
			continue
		}
		path := ct.SpecNS[ty]
		if path != "" {
			if m.Joins == nil {
				m.Joins = map[string]string{}
			}
			m.Joins[ty] = path
		}
		m.Shares[ty] = share(ct, ty, inode, path, members, host)
		if ty == "pid" && path != "" {
			if want, ok := joined(path, ty, members, stat); ok && want != inode {
				m.Flags = append(m.Flags, FlagPIDNotShared)
			}
		}
	}
	if s := m.Shares["pid"]; strings.HasPrefix(s, ContainerShare) {
		m.Flags = append(m.Flags, FlagPIDJoined)
	}
	for _, ty := range hostFlagged {
		if m.Shares[ty] == ShareHost {
			m.Flags = append(m.Flags, FlagHost+ty)
		}
	}
	return m
}

// share says whose namespace of type ty (inode, which ct's spec asks to join by path) ct is in.
func share(ct *Container, ty string, inode uint32, path string, members []*Container, host map[string]uint32) string {
	if inode == host[ty] {
		return ShareHost
	}
	var others []*Container
	for _, o := range members {
		if o != ct && o.NS[ty] == inode {
			if o.Sandbox {
				return ShareSandbox
			}
			others = append(others, o)
		}
	}
	if len(others) == 0 {
		return ShareOwn
	}
	for _, o := range others {
		if o.Pid != 0 && path == procNSPath(o.Pid, ty) {
			return ContainerShare + o.Name
		}
	}
	// Without a path naming one, the member with the lowest pid stands for the namespace: ct
	// itself, when its pid is lower than the others'.
	if ct.Pid != 0 && ct.Pid < others[0].Pid {
		return ShareOwn
	}
	return ContainerShare + others[0].Name
}

func procNSPath(pid uint32, ty string) string { return fmt.Sprintf("/proc/%d/ns/%s", pid, ty) }

// joined is the inode of the namespace at path: what it is now, else that of the member whose
// process the path names (a /proc path whose process has gone).
func joined(path, ty string, members []*Container, stat func(string) (uint32, bool)) (uint32, bool) {
	if inode, ok := stat(path); ok {
		return inode, true
	}
	for _, o := range members {
		if o.Pid != 0 && path == procNSPath(o.Pid, ty) && o.NS[ty] != 0 {
			return o.NS[ty], true
		}
	}
	return 0, false
}
