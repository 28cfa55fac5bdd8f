/* SPDX-License-Identifier: GPL-2.0 */
/* Reading namespace inode numbers from tasks, nsproxies and file descriptors, with CO-RE. */
#pragma once

#define CLONE_NEWTIME   0x00000080
#define CLONE_NEWNS     0x00020000
#define CLONE_NEWCGROUP 0x02000000
#define CLONE_NEWUTS    0x04000000
#define CLONE_NEWIPC    0x08000000
#define CLONE_NEWUSER   0x10000000
#define CLONE_NEWPID    0x20000000
#define CLONE_NEWNET    0x40000000
#define CLONE_NEW_ANY                                                                      \
	(CLONE_NEWTIME | CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |      \
	 CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

#define NSFS_MAGIC  0x6e736673
#define PIDFS_MAGIC 0x50494446

/* Since 6.18 the type lives in ns_common itself; before, only in its proc_ns_operations. */
struct ns_common___new {
	__u32 ns_type;
} __attribute__((preserve_access_index));

struct proc_ns_operations___old {
	int type;
} __attribute__((preserve_access_index));

static __always_inline __u32 ns_common_type(struct ns_common *ns)
{
	if (bpf_core_field_exists(((struct ns_common___new *)0)->ns_type))
		return BPF_CORE_READ((struct ns_common___new *)ns, ns_type);
	const struct proc_ns_operations___old *ops = (void *)BPF_CORE_READ(ns, ops);
	return BPF_CORE_READ(ops, type);
}

static __always_inline int ns_index(__u32 clone_flag)
{
	switch (clone_flag) {
	case CLONE_NEWNS: return GW_NS_MNT;
	case CLONE_NEWNET: return GW_NS_NET;
	case CLONE_NEWPID: return GW_NS_PID;
	case CLONE_NEWUSER: return GW_NS_USER;
	case CLONE_NEWUTS: return GW_NS_UTS;
	case CLONE_NEWIPC: return GW_NS_IPC;
	case CLONE_NEWCGROUP: return GW_NS_CGROUP;
	case CLONE_NEWTIME: return GW_NS_TIME;
	}
	return -1;
}

static __always_inline __u32 ns_flag(int index)
{
	switch (index) {
	case GW_NS_MNT: return CLONE_NEWNS;
	case GW_NS_NET: return CLONE_NEWNET;
	case GW_NS_PID: return CLONE_NEWPID;
	case GW_NS_USER: return CLONE_NEWUSER;
	case GW_NS_UTS: return CLONE_NEWUTS;
	case GW_NS_IPC: return CLONE_NEWIPC;
	case GW_NS_CGROUP: return CLONE_NEWCGROUP;
	case GW_NS_TIME: return CLONE_NEWTIME;
	}
	return 0;
}

/* The inode of the pid namespace a struct pid of that level was allocated in: the deepest, which
 * is its task's own. Read with helpers whatever pid is: the verifier lets no load index numbers[]
 * by a variable. */
static __always_inline __u32 pid_ns_inum(struct pid *pid, unsigned int level)
{
	struct upid upid = {};
	bpf_core_read(&upid, sizeof(upid), &pid->numbers[level & 31]);
	return BPF_CORE_READ(upid.ns, ns.inum);
}

/* NSPROXY_NS reads the namespaces an nsproxy holds into out, each with R(nsp, X_ns, ns.inum): a
 * plain load (LOAD, compat.h) through a pointer whose type the verifier knows (the current task
 * where the kernel has bpf_get_current_task_btf, a BTF-typed hook argument), else BPF_CORE_READ, a helper call per step, which costs far more (a
 * call and a return, each paying for the CPU's speculation mitigations). A load through NULL reads
 * 0. The pid and time slots are those the task's children get, which is what unshare and setns
 * change. */
#define NSPROXY_NS(R, nsp, out)                                          \
	do {                                                             \
		out[GW_NS_MNT] = R(nsp, mnt_ns, ns.inum);                \
		out[GW_NS_NET] = R(nsp, net_ns, ns.inum);                \
		out[GW_NS_PID] = R(nsp, pid_ns_for_children, ns.inum);   \
		out[GW_NS_UTS] = R(nsp, uts_ns, ns.inum);                \
		out[GW_NS_IPC] = R(nsp, ipc_ns, ns.inum);                \
		out[GW_NS_CGROUP] = R(nsp, cgroup_ns, ns.inum);          \
		out[GW_NS_TIME] = R(nsp, time_ns_for_children, ns.inum); \
	} while (0)

static __always_inline void nsproxy_ns(struct nsproxy *nsp, __u32 ns[GW_NS_COUNT])
{
	NSPROXY_NS(BPF_CORE_READ, nsp, ns);
}

/* The namespaces unshare or clone give a task: its nsproxy (pid and time: for its children, since
 * those are what a new pid or time namespace changes) and its user namespace. */
static __always_inline void task_new_ns(struct task_struct *task, __u32 ns[GW_NS_COUNT])
{
	struct nsproxy *nsp = BPF_CORE_READ(task, nsproxy);
	if (nsp) /* NULL once the task is exiting */
		nsproxy_ns(nsp, ns);
	ns[GW_NS_USER] = BPF_CORE_READ(task, real_cred, user_ns, ns.inum);
}

/* The namespaces a task is in: its own pid and time namespaces, not its children's. */
static __always_inline void task_ns(struct task_struct *task, __u32 ns[GW_NS_COUNT])
{
	task_new_ns(task, ns);
	ns[GW_NS_PID] = pid_ns_inum(BPF_CORE_READ(task, thread_pid), BPF_CORE_READ(task, thread_pid, level));
	ns[GW_NS_TIME] = BPF_CORE_READ(task, nsproxy, time_ns, ns.inum);
}

/* task_new_ns of the current task, with loads where the kernel allows them. */
static __always_inline void current_new_ns(__u32 ns[GW_NS_COUNT])
{
	struct task_struct *task = gw_current();
	if (!gw_has(TASK_BTF)) {
		task_new_ns(task, ns);
		return;
	}
	NSPROXY_NS(LOAD, task->nsproxy, ns);
	ns[GW_NS_USER] = task->real_cred->user_ns->ns.inum;
}

/* task_ns of the current task, with loads where the kernel allows them. */
static __always_inline void current_ns(__u32 ns[GW_NS_COUNT])
{
	struct task_struct *task = gw_current();
	if (!gw_has(TASK_BTF)) {
		task_ns(task, ns);
		return;
	}
	current_new_ns(ns);
	ns[GW_NS_PID] = pid_ns_inum(task->thread_pid, task->thread_pid->level);
	ns[GW_NS_TIME] = task->nsproxy->time_ns->ns.inum;
}

/* The struct file behind fd in the current task's table, or NULL. */
static __always_inline struct file *current_fd_file(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	bpf_core_read(&f, sizeof(f), &fds[fd]);
	return f;
}

/* The task a pidfd refers to: pidfs keeps the struct pid in the inode (6.9+), the older anon inode
 * "[pidfd]" in private_data. */
static __always_inline struct task_struct *pidfd_task(struct file *f, bool pidfs)
{
	struct pid *pid;
	if (pidfs)
		pid = BPF_CORE_READ(f, f_inode, i_private);
	else
		pid = BPF_CORE_READ(f, private_data);
	struct hlist_node *first = BPF_CORE_READ(pid, tasks[PIDTYPE_PID].first);
	if (!first)
		return NULL; /* the process has exited */
	return (void *)first - bpf_core_field_offset(struct task_struct, pid_links);
}

static __always_inline bool is_anon_pidfd(struct file *f)
{
	char name[8] = {};
	const unsigned char *p = BPF_CORE_READ(f, f_path.dentry, d_name.name);
	bpf_probe_read_kernel_str(name, sizeof(name), p);
	return name[0] == '[' && name[1] == 'p' && name[2] == 'i' && name[3] == 'd' &&
	       name[4] == 'f' && name[5] == 'd' && name[6] == ']';
}
