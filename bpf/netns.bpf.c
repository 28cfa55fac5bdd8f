//go:build ignore
/* SPDX-License-Identifier: GPL-2.0 */
/* netns: who holds each network namespace. Two iterators read once per snapshot: tasks (the
 * members of each namespace) and task files (nsfs fds of network namespaces, and sockets whose
 * namespace is not their holder's own). Bind mounts are read from mountinfo in user space. */
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

enum holder_kind {
	HOLDER_MEMBER = 1, /* a task living in the namespace */
	HOLDER_NSFS_FD,    /* an open nsfs file of the namespace (/proc/PID/ns/net, a bind mount) */
	HOLDER_SOCKET,     /* a socket created in it, held by a task of another namespace */
};
const enum holder_kind *unused_kind __attribute__((unused)); /* its type reaches BTF, and Go */

struct holder_record {
	__u32 kind;
	__u32 netns;     /* the namespace held */
	__u32 pid;       /* the holder's thread group */
	__u32 tid;
	__s32 fd;        /* -1 for a member */
	__u32 own_netns; /* the holder's own network namespace */
	__u32 mntns;     /* the holder's mount namespace, where its paths mean something */
	__u16 family;    /* sockets: AF_* */
	__u16 type;      /* sockets: SOCK_* */
	__u16 protocol;  /* sockets: IPPROTO_*, NETLINK_* */
	__u16 pad;
	char comm[16];
};

const struct holder_record *unused_record __attribute__((unused));

#define S_IFMT   00170000
#define S_IFSOCK 0140000
#define PF_KTHREAD 0x00200000

static __always_inline __u32 net_inum(struct task_struct *task)
{
	struct nsproxy *nsp = task->nsproxy;
	return nsp ? nsp->net_ns->ns.inum : 0; /* NULL once the task is exiting */
}

static __always_inline void fill(struct holder_record *r, struct task_struct *task, __u32 kind)
{
	__builtin_memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->pid = task->tgid;
	r->tid = task->pid;
	r->fd = -1;
	r->own_netns = net_inum(task);
	struct nsproxy *nsp = task->nsproxy;
	r->mntns = nsp ? nsp->mnt_ns->ns.inum : 0;
	bpf_probe_read_kernel_str(r->comm, sizeof(r->comm), task->comm);
}

/* Every task but kernel threads (all in the initial namespace, and not what anyone asks about):
 * the leader of each thread group, and any thread in another namespace than its leader's (a
 * thread may setns alone). */
SEC("iter/task")
int holders_tasks(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	if (!task)
		return 0;
	__u32 netns = net_inum(task);
	if (!netns || (task->flags & PF_KTHREAD) ||
	    (task->pid != task->tgid && netns == net_inum(task->group_leader)))
		return 0;
	struct holder_record r;
	fill(&r, task, HOLDER_MEMBER);
	r.netns = netns;
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

/* Every open file of every process (threads sharing a table are visited once): nsfs files of
 * network namespaces, and sockets of a namespace that is not the holder's. */
SEC("iter/task_file")
int holders_files(struct bpf_iter__task_file *ctx)
{
	struct file *file = ctx->file;
	struct task_struct *task = ctx->task;
	if (!file || !task)
		return 0;
	struct inode *inode = file->f_inode;
	struct holder_record r;
	if (inode->i_sb->s_magic == NSFS_MAGIC) {
		struct ns_common *ns = BPF_CORE_READ(inode, i_private);
		if (ns_common_type(ns) != CLONE_NEWNET)
			return 0;
		fill(&r, task, HOLDER_NSFS_FD);
		r.netns = BPF_CORE_READ(ns, inum);
	} else if ((inode->i_mode & S_IFMT) == S_IFSOCK) {
		struct socket *sock = BPF_CORE_READ(file, private_data);
		struct sock *sk = BPF_CORE_READ(sock, sk);
		if (!sk)
			return 0;
		__u32 netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
		if (netns == net_inum(task))
			return 0; /* a member's own socket: the membership already holds the namespace */
		fill(&r, task, HOLDER_SOCKET);
		r.netns = netns;
		r.family = BPF_CORE_READ(sk, __sk_common.skc_family);
		r.type = BPF_CORE_READ(sk, sk_type);
		r.protocol = BPF_CORE_READ(sk, sk_protocol);
	} else {
		return 0;
	}
	r.fd = ctx->fd;
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}
