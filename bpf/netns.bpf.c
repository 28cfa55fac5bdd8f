//go:build ignore
/* SPDX-License-Identifier: GPL-2.0 */
/* netns: network namespace lifecycle, and who holds each namespace.
 * Tracing: creation, the last task leaving (counted per task: a census at start, then forks,
 * exits, setns and unshare), and the kernel dropping its last reference.
 * Snapshot: two iterators read once (tasks: the members; task files: nsfs fds of network
 * namespaces and sockets of another namespace than their holder's); bind mounts are read from
 * mountinfo in user space. */
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

#define S_IFMT     00170000
#define S_IFSOCK   0140000
#define PF_EXITING 0x00000004
#define PF_KTHREAD 0x00200000
#define EEXIST     17

enum netns_kind {
	NETNS_CREATED = 1,
	NETNS_EMPTY,
	NETNS_DESTROYED,
};
const enum netns_kind *unused_netns_kind __attribute__((unused));

/* What made a namespace, or made it empty. */
enum netns_how {
	HOW_CLONE = 1, /* created by clone/clone3 (the child is in it) */
	HOW_UNSHARE,   /* created by unshare, or left by unshare */
	HOW_SETNS,     /* left by setns */
	HOW_EXIT,      /* left by the exit of its last task */
	HOW_KERNEL,    /* created: copy_net_ns (whichever call); destroyed: the last reference went */
};
const enum netns_how *unused_how __attribute__((unused));

struct netns_event {
	struct gw_header hdr;
	__u32 netns;
	__u32 how;
	__u32 child; /* clone: the child's pid */
	__u32 tasks; /* empty: 0; created: 1 */
};
const struct netns_event *unused_event __attribute__((unused));

/* The initial namespace's fixed inode (PROC_NET_INIT_INO): it never empties, and its tasks are not
 * counted, so that most forks and exits of a node leave after one comparison. */
#define init_netns 0xEFFFFFF9U
/* ghostwatch itself (set before load): its threads enter namespaces to read them, which must not
 * count as moves. */
const volatile __u32 self_tgid = 0;

/* Tasks living in each namespace but the host's. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __s64);
} members SEC(".maps");

/* The namespace each counted task was counted in, by tid: counting is idempotent, so the census
 * and the hooks never count a task twice. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} counted SEC(".maps");

/* unshare calls between entry and exit: their flags, by tid. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u64);
} unsharing SEC(".maps");

/* A global function, so the verifier checks it once per program rather than on every path that
 * reaches it: on 6.18 each load through a pointer field of the header costs it about half a
 * millisecond. Namespace events are rare; the call costs nothing that matters. */
__noinline int emit(__u32 kind, __u32 netns, __u32 how, __u32 child)
{
	struct netns_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	fill_header(&e->hdr, kind);
	e->netns = netns;
	e->how = how;
	e->child = child;
	e->tasks = kind == NETNS_CREATED;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* Counts task tid in netns, once. */
static __always_inline void count_in(__u32 tid, __u32 netns)
{
	if (!netns || netns == init_netns)
		return;
	long err = bpf_map_update_elem(&counted, &tid, &netns, BPF_NOEXIST);
	if (err == -EEXIST)
		return; /* already counted: the census and a hook both saw it */
	if (err) {
		count_refused(err); /* this namespace may be reported empty too early */
		return;
	}
	__s64 one = 1, *n = bpf_map_lookup_elem(&members, &netns);
	if (!n && bpf_map_update_elem(&members, &netns, &one, BPF_NOEXIST) == 0)
		return;
	n = n ?: bpf_map_lookup_elem(&members, &netns); /* another CPU made it meanwhile */
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		count_lost_as(GW_LOST_FORGOTTEN);
}

/* Uncounts task tid; if it was its namespace's last, the namespace is empty. fetch: whether the
 * program may use fetching atomics (compat.h). */
static __always_inline void leave(__u32 tid, __u32 how, const bool fetch)
{
	__u32 *ns = bpf_map_lookup_elem(&counted, &tid);
	if (!ns)
		return;
	__u32 netns = *ns;
	bpf_map_delete_elem(&counted, &tid);
	__s64 *n = bpf_map_lookup_elem(&members, &netns);
	if (!n)
		return;
	if (fetch) {
		if (__sync_fetch_and_add(n, -1) != 1)
			return;
		bpf_map_delete_elem(&members, &netns);
	} else {
		/* Before 5.12: an atomic add that returns nothing, then a read. Two tasks leaving at once
		 * may both read 0: the one whose delete succeeds tells. */
		__sync_fetch_and_add(n, -1);
		if (*n != 0 || bpf_map_delete_elem(&members, &netns))
			return;
	}
	emit(NETNS_EMPTY, netns, how, 0);
}

static __always_inline __u32 current_netns(void)
{
	struct task_struct *task = gw_current();
	struct nsproxy *nsp = GW_TASK(task, nsproxy);
	if (!nsp)
		return 0;
	return gw_has(TASK_BTF) ? nsp->net_ns->ns.inum : BPF_CORE_READ(nsp, net_ns, ns.inum);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(member_fork, struct task_struct *parent, struct task_struct *child)
{
	struct nsproxy *nsp = child->nsproxy;
	__u32 netns = nsp ? nsp->net_ns->ns.inum : 0;
	if (netns == init_netns)
		return 0;
	count_in(child->pid, netns);
	if (netns != current_netns())
		emit(NETNS_CREATED, netns, HOW_CLONE, child->tgid);
	return 0;
}

static __always_inline int task_exited(struct task_struct *task, const bool fetch)
{
	/* Most exits of a node are in its own namespace, where no task is counted: one comparison
	 * instead of a lookup. (nsproxy is still set here: exit_task_namespaces comes later.) */
	struct nsproxy *nsp = task->nsproxy;
	if (!nsp || nsp->net_ns->ns.inum == init_netns)
		return 0;
	leave(task->pid, HOW_EXIT, fetch);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(member_exit, struct task_struct *task)
{
	return task_exited(task, true);
}

/* Before 5.12: atomic adds only (so are the other _nofetch programs). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(member_exit_nofetch, struct task_struct *task)
{
	return task_exited(task, false);
}

/* setns and unshare move the calling task: uncount it where it was, count it where it is. */
static __always_inline void moved(__u32 how, bool created, const bool fetch)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (pid_tgid >> 32 == self_tgid)
		return;
	__u32 tid = (__u32)pid_tgid;
	__u32 netns = current_netns();
	__u32 *was = bpf_map_lookup_elem(&counted, &tid);
	if (was ? *was == netns : netns == init_netns)
		return;
	leave(tid, how, fetch);
	count_in(tid, netns);
	if (created)
		emit(NETNS_CREATED, netns, HOW_UNSHARE, 0);
}

SEC("tracepoint/syscalls/sys_enter_unshare")
int unshare_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u64 flags = ctx->args[0];
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (flags & CLONE_NEWNET)
		bpf_map_update_elem(&unsharing, &tid, &flags, BPF_ANY);
	return 0;
}

static __always_inline int on_unshare_exit(struct trace_event_raw_sys_exit *ctx, const bool fetch)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (!bpf_map_lookup_elem(&unsharing, &tid))
		return 0;
	bpf_map_delete_elem(&unsharing, &tid);
	if (ctx->ret == 0)
		moved(HOW_UNSHARE, true, fetch);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_unshare")
int unshare_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_unshare_exit(ctx, true);
}

SEC("tracepoint/syscalls/sys_exit_unshare")
int unshare_exit_nofetch(struct trace_event_raw_sys_exit *ctx)
{
	return on_unshare_exit(ctx, false);
}

SEC("tracepoint/syscalls/sys_exit_setns")
int setns_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret == 0)
		moved(HOW_SETNS, false, true);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_setns")
int setns_exit_nofetch(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret == 0)
		moved(HOW_SETNS, false, false);
	return 0;
}

/* 6.1, 6.12: the kernel's own creation of a namespace, whoever asked for it. */
SEC("fexit/copy_net_ns")
int BPF_PROG(created_fexit, unsigned long flags, struct user_namespace *user_ns, struct net *old_net, struct net *ret)
{
	if (!(flags & CLONE_NEWNET) || (unsigned long)ret >= (unsigned long)-4095 || ret == old_net)
		return 0;
	emit(NETNS_CREATED, BPF_CORE_READ(ret, ns.inum), HOW_KERNEL, 0);
	return 0;
}

/* Where fexit is missing (arm64's 6.1): the return alone tells a new namespace, because the old
 * one copy_net_ns was given is the caller's (a clone's child still shares its parent's nsproxy
 * here, an unshare has not switched yet), and it returns that one when there is nothing to do. */
SEC("kretprobe/copy_net_ns")
int BPF_KRETPROBE(created_kretprobe, struct net *ret)
{
	if ((unsigned long)ret >= (unsigned long)-4095 || !ret)
		return 0;
	struct task_struct *task = gw_current();
	if (ret == GW_TASK(task, nsproxy, net_ns))
		return 0;
	emit(NETNS_CREATED, BPF_CORE_READ(ret, ns.inum), HOW_KERNEL, 0);
	return 0;
}

static __always_inline void destroyed(struct net *net)
{
	emit(NETNS_DESTROYED, BPF_CORE_READ(net, ns.inum), HOW_KERNEL, 0);
}

/* 6.1, 6.12: the last reference went; the namespace is queued for teardown. */
SEC("fentry/__put_net")
int BPF_PROG(destroyed_fentry, struct net *net)
{
	destroyed(net);
	return 0;
}

/* Where fentry is missing (arm64's 6.1). */
SEC("kprobe/__put_net")
int BPF_KPROBE(destroyed_kprobe, struct net *net)
{
	destroyed(net);
	return 0;
}

/* At start: counts every task already living in a namespace but the host's. */
SEC("iter/task")
int census(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	/* An exiting task may already be past the exit hook: counting it would never be undone. */
	if (!task || (task->flags & (PF_KTHREAD | PF_EXITING)))
		return 0;
	struct nsproxy *nsp = task->nsproxy;
	if (nsp)
		count_in(task->pid, nsp->net_ns->ns.inum);
	return 0;
}

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
