/* SPDX-License-Identifier: GPL-2.0 */
/* A cgroup's id and path, read in the kernel from its kernfs node, in any hierarchy (v1 or v2). */
#pragma once

#define CG_DEPTH 8
#define CG_NAME 96

/* A cgroup: its kernfs node id (the cgroup id on v2) and its path, leaf first. */
struct cgroup_path {
	__u64 id;
	__u32 depth;     /* names used */
	__u32 truncated; /* the path is deeper than CG_DEPTH */
	char name[CG_DEPTH][CG_NAME];
};

/* kernfs_node.parent became __parent in 6.15. */
struct kernfs_node___new {
	struct kernfs_node *__parent;
} __attribute__((preserve_access_index));

struct kernfs_node___old {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

static __always_inline struct kernfs_node *kn_parent(struct kernfs_node *kn)
{
	if (bpf_core_field_exists(((struct kernfs_node___new *)0)->__parent))
		return BPF_CORE_READ((struct kernfs_node___new *)kn, __parent);
	return BPF_CORE_READ((struct kernfs_node___old *)kn, parent);
}

/* A cgroup directory's id and path below its hierarchy's root. */
static __always_inline void read_cgroup_path(struct kernfs_node *kn, struct cgroup_path *p)
{
	p->id = BPF_CORE_READ(kn, id);
	p->depth = 0;
	p->truncated = 0;
	for (int i = 0; i < CG_DEPTH; i++) {
		struct kernfs_node *parent = kn_parent(kn);
		if (!parent)
			return; /* kn is the root, whose name is not part of paths */
		bpf_probe_read_kernel_str(p->name[i], CG_NAME, BPF_CORE_READ(kn, name));
		p->depth = i + 1;
		kn = parent;
	}
	p->truncated = kn_parent(kn) != NULL;
}
