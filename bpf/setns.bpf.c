//go:build ignore
/* SPDX-License-Identifier: GPL-2.0 */
/* setns: who enters or creates namespaces. setns (nsfs fd or pidfd), unshare, clone and clone3
 * with CLONE_NEW* flags. The call is captured at syscall entry (actor, arguments, the target
 * namespaces resolved from the fd) and emitted at exit with its result. */
#include "filter.h"

char LICENSE[] SEC("license") = "GPL";

/* The one kind of event this gadget writes. */
enum setns_kind {
	SETNS_CALL = 1,
};
const enum setns_kind *unused_kind __attribute__((unused)); /* its type reaches BTF, and Go */

enum setns_syscall {
	SYSCALL_SETNS = 1,
	SYSCALL_UNSHARE,
	SYSCALL_CLONE,
	SYSCALL_CLONE3,
};

/* What the fd passed to setns turned out to be. */
enum setns_fd_kind {
	FD_NONE,  /* not a setns call */
	FD_NSFS,  /* a file of /proc/PID/ns, or a bind mount of one */
	FD_PIDFD, /* pidfd_open or CLONE_PIDFD */
	FD_OTHER, /* open, but neither: the kernel answers EINVAL */
	FD_BAD,   /* not open: the kernel answers EBADF */
};

struct event {
	struct gw_header hdr; /* the actor, as it was before the call */
	__s64 ret;            /* 0 or the child pid on success, -errno on failure */
	__u64 flags;          /* setns: nstype; unshare/clone/clone3: clone flags */
	__s32 fd;             /* setns only */
	enum setns_fd_kind fd_kind;
	enum setns_syscall syscall;
	__u32 target_pid;     /* pidfd target, or the clone child */
	__u32 ns_mask;        /* CLONE_NEW* bits of the namespace types involved */
	__u32 target[GW_NS_COUNT]; /* namespace inode entered or created, per type */
};

/* Calls between syscall entry and exit, by thread id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct event);
} pending SEC(".maps");

/* Too big for the BPF stack: a per-CPU scratch slot to build an entry in. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} scratch SEC(".maps");

static __always_inline struct event *begin(__u32 syscall, __u64 flags)
{
	__u32 zero = 0;
	struct event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return NULL;
	__builtin_memset(e, 0, sizeof(*e));
	fill_header(&e->hdr, SETNS_CALL);
	e->syscall = syscall;
	e->flags = flags;
	e->ns_mask = flags & CLONE_NEW_ANY;
	return e;
}

static __always_inline void stash(struct event *e)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&pending, &tid, e, BPF_ANY))
		count_lost();
}

/* Copy the per-type inodes selected by mask from all[] into e->target. */
static __always_inline void set_targets(struct event *e, __u32 mask, __u32 all[GW_NS_COUNT])
{
	for (int i = 0; i < GW_NS_COUNT; i++)
		if (mask & ns_flag(i))
			e->target[i] = all[i];
}

static __always_inline void finish(long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct event *e = bpf_map_lookup_elem(&pending, &tid);
	if (!e)
		return; /* not ours, or a clone child returning 0 */
	e->ret = ret;
	if (ret == 0 && e->syscall == SYSCALL_UNSHARE) {
		/* The new namespaces are now the caller's own (pid and time: its children's). */
		__u32 now[GW_NS_COUNT] = {};
		current_new_ns(now);
		set_targets(e, e->ns_mask, now);
	}
	struct event *out = bpf_ringbuf_reserve(&events, sizeof(*out), 0);
	if (out) {
		__builtin_memcpy(out, e, sizeof(*out));
		bpf_ringbuf_submit(out, 0);
	} else {
		count_lost();
	}
	bpf_map_delete_elem(&pending, &tid);
}

SEC("tracepoint/syscalls/sys_enter_setns")
int setns_enter(struct trace_event_raw_sys_enter *ctx)
{
	if (!actor_wanted())
		return 0;
	int fd = (int)ctx->args[0];
	__u32 nstype = (__u32)ctx->args[1];
	struct event *e = begin(SYSCALL_SETNS, nstype);
	if (!e)
		return 0;
	e->fd = fd;

	struct file *f = current_fd_file(fd);
	if (!f) {
		e->fd_kind = FD_BAD;
		stash(e);
		return 0;
	}
	unsigned long magic = BPF_CORE_READ(f, f_inode, i_sb, s_magic);
	if (magic == NSFS_MAGIC) {
		/* One namespace: its type comes from the file, nstype only checks it. */
		struct ns_common *ns = BPF_CORE_READ(f, f_inode, i_private);
		__u32 type = ns_common_type(ns);
		int i = ns_index(type);
		e->fd_kind = FD_NSFS;
		e->ns_mask = type;
		if (i >= 0 && i < GW_NS_COUNT)
			e->target[i] = BPF_CORE_READ(f, f_inode, i_ino);
	} else if (magic == PIDFS_MAGIC || is_anon_pidfd(f)) {
		/* The namespaces of the pidfd's process, for each type in nstype. */
		struct task_struct *t = pidfd_task(f, magic == PIDFS_MAGIC);
		e->fd_kind = FD_PIDFD;
		if (t) {
			__u32 all[GW_NS_COUNT] = {};
			task_ns(t, all);
			e->target_pid = BPF_CORE_READ(t, tgid);
			set_targets(e, e->ns_mask, all);
		}
	} else {
		e->fd_kind = FD_OTHER;
	}
	stash(e);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_setns")
int setns_exit(struct trace_event_raw_sys_exit *ctx)
{
	finish(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_unshare")
int unshare_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u64 flags = ctx->args[0];
	if (!(flags & CLONE_NEW_ANY) || !actor_wanted())
		return 0;
	struct event *e = begin(SYSCALL_UNSHARE, flags);
	if (e)
		stash(e);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_unshare")
int unshare_exit(struct trace_event_raw_sys_exit *ctx)
{
	finish(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_clone")
int clone_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u64 flags = ctx->args[0];
	if (!(flags & CLONE_NEW_ANY) || !actor_wanted())
		return 0;
	struct event *e = begin(SYSCALL_CLONE, flags);
	if (e)
		stash(e);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_clone")
int clone_exit(struct trace_event_raw_sys_exit *ctx)
{
	finish(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_clone3")
int clone3_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct clone_args *uargs = (void *)ctx->args[0];
	__u64 flags = 0;
	if (bpf_probe_read_user(&flags, sizeof(flags), &uargs->flags))
		return 0; /* the kernel will answer EFAULT */
	if (!(flags & CLONE_NEW_ANY) || !actor_wanted())
		return 0;
	struct event *e = begin(SYSCALL_CLONE3, flags);
	if (e)
		stash(e);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_clone3")
int clone3_exit(struct trace_event_raw_sys_exit *ctx)
{
	finish(ctx->ret);
	return 0;
}

/* A clone's new namespaces are the child's: read them when the child exists, in the parent. */
static __always_inline void record_child(struct task_struct *child)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct event *e = bpf_map_lookup_elem(&pending, &tid);
	if (!e || (e->syscall != SYSCALL_CLONE && e->syscall != SYSCALL_CLONE3))
		return;
	__u32 all[GW_NS_COUNT] = {};
	/* Not the child's own time namespace: with CLONE_VM it switches only at exec. */
	task_new_ns(child, all);
	e->target_pid = BPF_CORE_READ(child, tgid);
	set_targets(e, e->ns_mask, all);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(fork_btf, struct task_struct *parent, struct task_struct *child)
{
	record_child(child);
	return 0;
}

SEC("raw_tp/sched_process_fork")
int BPF_PROG(fork_raw, struct task_struct *parent, struct task_struct *child)
{
	record_child(child);
	return 0;
}

/* The nsproxy the kernel installs for setns and unshare: what was really committed. Where these
 * cannot attach, the exit tracepoint reads the caller's namespaces instead. */
static __always_inline void record_commit(struct task_struct *p, struct nsproxy *nsp)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct event *e = bpf_map_lookup_elem(&pending, &tid);
	if (!e || !nsp || p != (struct task_struct *)bpf_get_current_task())
		return;
	if (e->syscall != SYSCALL_SETNS && e->syscall != SYSCALL_UNSHARE)
		return;
	__u32 all[GW_NS_COUNT] = {};
	nsproxy_ns(nsp, all);
	set_targets(e, e->ns_mask & ~CLONE_NEWUSER, all);
}

SEC("fentry/switch_task_namespaces")
int BPF_PROG(commit_fentry, struct task_struct *p, struct nsproxy *nsp)
{
	record_commit(p, nsp);
	return 0;
}

SEC("kprobe/switch_task_namespaces")
int BPF_KPROBE(commit_kprobe, struct task_struct *p, struct nsproxy *nsp)
{
	record_commit(p, nsp);
	return 0;
}
