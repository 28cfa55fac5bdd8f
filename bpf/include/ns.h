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

static __always_inline __u32 task_pid_ns_inum(struct task_struct *task)
{
	struct pid *pid = BPF_CORE_READ(task, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid upid = {};
	bpf_core_read(&upid, sizeof(upid), &pid->numbers[level & 31]);
	return BPF_CORE_READ(upid.ns, ns.inum);
}

/* The namespaces an nsproxy holds. The pid and time slots are those the task's children get,
 * which is what unshare and setns change. */
static __always_inline void nsproxy_ns(struct nsproxy *nsp, __u32 ns[GW_NS_COUNT])
{
	ns[GW_NS_MNT] = BPF_CORE_READ(nsp, mnt_ns, ns.inum);
	ns[GW_NS_NET] = BPF_CORE_READ(nsp, net_ns, ns.inum);
	ns[GW_NS_PID] = BPF_CORE_READ(nsp, pid_ns_for_children, ns.inum);
	ns[GW_NS_UTS] = BPF_CORE_READ(nsp, uts_ns, ns.inum);
	ns[GW_NS_IPC] = BPF_CORE_READ(nsp, ipc_ns, ns.inum);
	ns[GW_NS_CGROUP] = BPF_CORE_READ(nsp, cgroup_ns, ns.inum);
	ns[GW_NS_TIME] = BPF_CORE_READ(nsp, time_ns_for_children, ns.inum);
}

/* The namespaces unshare or clone give a task: its nsproxy (pid and time: for its children, since
 * those are what a new pid or time namespace changes) and its user namespace. */
static __always_inline void task_new_ns(struct task_struct *task, __u32 ns[GW_NS_COUNT])
{
	nsproxy_ns(BPF_CORE_READ(task, nsproxy), ns);
	ns[GW_NS_USER] = BPF_CORE_READ(task, real_cred, user_ns, ns.inum);
}

/* The namespaces a task is in (its own pid and time namespaces, not its children's). */
static __always_inline void task_ns(struct task_struct *task, __u32 ns[GW_NS_COUNT])
{
	struct nsproxy *nsp = BPF_CORE_READ(task, nsproxy);
	if (nsp) /* NULL once the task is exiting */
		nsproxy_ns(nsp, ns);
	ns[GW_NS_PID] = task_pid_ns_inum(task);
	ns[GW_NS_TIME] = nsp ? BPF_CORE_READ(nsp, time_ns, ns.inum) : 0;
	ns[GW_NS_USER] = BPF_CORE_READ(task, real_cred, user_ns, ns.inum);
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
