//go:build ignore
/* SPDX-License-Identifier: GPL-2.0 */
/* signals: signals a process sends across containers or to a container's init, and kill calls that
 * found no target (ESRCH) or were refused (EPERM). A node signals itself all the time (the Go
 * runtime preempts its threads with SIGURG, shells reap children, daemons reload), so the filter
 * runs first and in the kernel: a signal to the sender's own process, or within one mount
 * namespace, or between two tasks of the host's pid namespace, costs a few loads and nothing
 * more; a kill call that succeeded costs a comparison. */
#include "filter.h"

char LICENSE[] SEC("license") = "GPL";

enum signals_kind {
	SIGNALS_SENT = 1, /* the kernel generated the signal for its target (signal_generate) */
	SIGNALS_FAILED,   /* a kill call returned ESRCH or EPERM: no signal was generated */
};
const enum signals_kind *unused_kind __attribute__((unused)); /* its type reaches BTF, and Go */

/* Why a sent signal is reported: bits. */
enum signals_why {
	WHY_CROSS_CONTAINER = 1, /* sender and target are in different mount namespaces, one of them in a container's pid namespace */
	WHY_TO_INIT = 2,         /* the target is pid 1 of a pid namespace below the host's */
};
const enum signals_why *unused_why __attribute__((unused));

/* The call that failed. */
enum signals_call {
	CALL_KILL = 1,
	CALL_TKILL,
	CALL_TGKILL,
	CALL_PIDFD_SEND_SIGNAL,
};
const enum signals_call *unused_call __attribute__((unused));

struct signal_event {
	struct gw_header hdr;    /* the sender (the current task) */
	struct gw_header target; /* the target: always for sent; for failed, a pidfd's process where it lives */
	__s32 sig;
	__s32 code;          /* sent: the siginfo's si_code (SI_USER, SI_QUEUE, SI_TKILL) */
	__s32 result;        /* sent: the kernel's enum trace_signal_result; failed: -errno */
	__s32 pid;           /* failed: the pid asked for, as the sender's pid namespace numbers it (kill: also 0, -1, -pgid; tgkill: the tgid) */
	__s32 tid;           /* failed: tkill's and tgkill's thread */
	__s32 fd;            /* failed: pidfd_send_signal's fd */
	__u32 target_ns_pid; /* sent: the target's pid in its own pid namespace */
	enum signals_call call;
	__u8 why;            /* sent: enum signals_why bits */
	__u8 group;          /* sent: to the whole thread group */
	__u8 has_target;     /* target is filled */
	__u8 pad;
};
const struct signal_event *unused_event __attribute__((unused));

/* Set from Go (the probes option): report failed calls of signal 0 too, which only ask whether a
 * process exists and find no target routinely (pid files, liveness loops). */
const volatile bool probes = false;

#define ESRCH 3
#define EPERM 1

#define SIGNAL_UNKILLABLE 0x40 /* signal_struct.flags */

#define SI_USER  0
#define SI_QUEUE -1
#define SI_TKILL -6
#define SI_KERNEL 0x80

/* The siginfo pointers the kernel uses without a siginfo (include/linux/sched/signal.h). */
#define SEND_SIG_NOINFO ((struct kernel_siginfo *)0)
#define SEND_SIG_PRIV   ((struct kernel_siginfo *)1)

/* The filters pass the event when they pass its sender or its target (a signal into a container
 * is about that container). */
static __always_inline bool wanted(struct signal_event *e)
{
	return actor_wanted() || (e->has_target && header_wanted(&e->target));
}

/* A signal a process sent (kill, tkill, tgkill, sigqueue, pidfd_send_signal: the si_codes of
 * those), with its target task. The kernel's own signals (faults, timers, SIGCHLD, SIGPIPE, an OOM
 * kill's SIGKILL) are sent from whatever task was running and say nothing of a sender. */
SEC("tp_btf/signal_generate")
int BPF_PROG(signal_generate, int sig, struct kernel_siginfo *info, struct task_struct *task, int group, int result)
{
	struct task_struct *cur = gw_current();
	if (GW_TASK(cur, tgid) == task->tgid)
		return 0; /* to its own process */
	unsigned int t_level = task->thread_pid->level;
	unsigned int s_level = GW_TASK(cur, thread_pid, level);
	if (t_level == 0 && s_level == 0)
		return 0; /* host to host: neither is in a container's pid namespace */
	int code;
	if (info == SEND_SIG_NOINFO)
		code = SI_USER;
	else if (info == SEND_SIG_PRIV)
		code = SI_KERNEL;
	else /* read with a helper: the verifier loses the pointer's type in these comparisons */
		code = BPF_CORE_READ(info, si_code);
	if (code != SI_USER && code != SI_QUEUE && code != SI_TKILL)
		return 0;
	__u8 why = 0;
	/* The kernel marks the init of each pid namespace unkillable (copy_process). */
	if (t_level > 0 && (task->signal->flags & SIGNAL_UNKILLABLE))
		why |= WHY_TO_INIT;
	/* A target exiting has no nsproxy left: its mount namespace reads 0, which differs. */
	if (GW_TASK(cur, nsproxy, mnt_ns, ns.inum) != task->nsproxy->mnt_ns->ns.inum)
		why |= WHY_CROSS_CONTAINER;
	if (!why)
		return 0;

	struct signal_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	fill_task_header(&e->target, task, SIGNALS_SENT);
	e->has_target = 1;
	if (!wanted(e)) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	fill_header(&e->hdr, SIGNALS_SENT);
	e->sig = sig;
	e->code = code;
	e->result = result;
	e->pid = 0;
	e->tid = 0;
	e->fd = -1;
	struct upid upid = {};
	bpf_core_read(&upid, sizeof(upid), &task->thread_pid->numbers[t_level & 31]);
	e->target_ns_pid = upid.nr;
	e->call = 0;
	e->why = why;
	e->group = group != 0;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

#define ARG(n) GW_SYSCALL_ARG(BPF_CORE_READ, regs, n)

/* A kill call that returned ESRCH or EPERM, with its arguments from the syscall's registers. */
static __always_inline int failed(long ret, enum signals_call call)
{
	if (ret != -ESRCH && ret != -EPERM)
		return 0;
	struct task_struct *cur = gw_current();
	/* A 32-bit call's arguments are not where these registers say; and on arm64 its number
	 * is another call's. */
	if (gw_compat_syscall(cur))
		return 0;
	struct pt_regs *regs = gw_syscall_regs(cur);
	if (!regs)
		return 0;
	__s32 pid = 0, tid = 0, fd = -1, sig = 0;
	switch (call) {
	case CALL_KILL:
		pid = ARG(0);
		sig = ARG(1);
		break;
	case CALL_TKILL:
		tid = ARG(0);
		sig = ARG(1);
		break;
	case CALL_TGKILL:
		pid = ARG(0);
		tid = ARG(1);
		sig = ARG(2);
		break;
	case CALL_PIDFD_SEND_SIGNAL:
		fd = ARG(0);
		sig = ARG(1);
		break;
	}
	if (sig == 0 && !probes)
		return 0;

	struct signal_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	e->has_target = 0;
	if (call == CALL_PIDFD_SEND_SIGNAL) {
		/* The fd is still open: a refused signal's target lives, and the pidfd names it. */
		struct file *f = current_fd_file(fd);
		unsigned long magic = BPF_CORE_READ(f, f_inode, i_sb, s_magic);
		struct task_struct *t = NULL;
		if (f && (magic == PIDFS_MAGIC || is_anon_pidfd(f)))
			t = pidfd_task(f, magic == PIDFS_MAGIC);
		if (t) {
			fill_task_header(&e->target, t, SIGNALS_FAILED);
			e->has_target = 1;
		}
	}
	if (!wanted(e)) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	if (!e->has_target)
		__builtin_memset(&e->target, 0, sizeof(e->target));
	fill_header(&e->hdr, SIGNALS_FAILED);
	e->sig = sig;
	e->code = 0;
	e->result = ret;
	e->pid = pid;
	e->tid = tid;
	e->fd = fd;
	e->target_ns_pid = 0;
	e->call = call;
	e->why = 0;
	e->group = 0;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_kill")
int kill_exit(struct trace_event_raw_sys_exit *ctx)
{
	return failed(ctx->ret, CALL_KILL);
}

SEC("tracepoint/syscalls/sys_exit_tkill")
int tkill_exit(struct trace_event_raw_sys_exit *ctx)
{
	return failed(ctx->ret, CALL_TKILL);
}

SEC("tracepoint/syscalls/sys_exit_tgkill")
int tgkill_exit(struct trace_event_raw_sys_exit *ctx)
{
	return failed(ctx->ret, CALL_TGKILL);
}

SEC("tracepoint/syscalls/sys_exit_pidfd_send_signal")
int pidfd_send_signal_exit(struct trace_event_raw_sys_exit *ctx)
{
	return failed(ctx->ret, CALL_PIDFD_SEND_SIGNAL);
}
