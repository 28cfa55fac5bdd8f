package event

import "strings"

// CgroupNameLen is the room for one name of a cgroup path read in the kernel (CG_NAME in
// bpf/include/cgroup.h).
const CgroupNameLen = 96

// CgroupPath joins the names of a cgroup path the kernel read leaf first (struct cgroup_path in
// bpf/include/cgroup.h) into a path below its hierarchy's root: "/k8s.io/ID", "/" for the root, and
// "/.../..." when the kernel stopped before the root.
func CgroupPath(names [][CgroupNameLen]int8, depth uint32, truncated bool) string {
	if depth == 0 && !truncated {
		return "/" // without the builder, which escapes to the heap
	}
	var b strings.Builder
	if truncated {
		b.WriteString("/...")
	}
	for i := min(int(depth), len(names)) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(CString(names[i][:]))
	}
	return b.String()
}
