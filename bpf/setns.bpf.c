//go:build ignore
/* SPDX-License-Identifier: GPL-2.0 */
/* setns: who enters or creates namespaces. setns (nsfs fd or pidfd), unshare, clone and clone3
 * with CLONE_NEW* flags. The call is captured at syscall entry (actor, arguments, the target
 * namespaces resolved from the fd) and emitted at exit with its result. What user space needs to
 * tell how the actor came (a runtime, a CNI plugin, a host tool) is captured with it: its
 * ancestry, its executable's directory, and the tail of the argv of a runtime above it. */
#include "filter.h"

char LICENSE[] SEC("license") = "GPL";

/* The kinds of event this gadget writes. */
enum setns_kind {
	SETNS_CALL = 1,
	SETNS_THEN, /* the first exec after entering, or an exit without one */
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

#define ANCESTRY 4   /* processes above the actor */
#define RT_ARGS  320 /* bytes of a runtime's argv kept: its end, where the id and pid file are */

struct ancestor {
	__u32 pid;
	char comm[TASK_COMM_LEN];
};

/* The end of a runtime's argv (runc, crun as containerd's shim runs them: ... --pid-file
 * BUNDLE/EXEC_ID.pid CONTAINER_ID), NUL-separated. */
struct rt_args {
	__u64 start_time; /* the runtime's: a pid reused by another process is not it */
	__u32 len;        /* bytes in args; RT_ARGS: the argv was longer, its start is cut */
	char args[RT_ARGS];
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
	__u64 exe_dir_ino;    /* the directory of the actor's executable (a CNI bin dir?) */
	__u32 exe_dir_dev;    /* its device, as the kernel writes dev_t */
	__u32 runtime_pid;    /* the nearest ancestor that is a runtime (its argv is in runtimes), or 0 */
	__u64 runtime_start;  /* that runtime's start_time: user space reads its argv from runtimes,
	                       * and a pid since reused by another runtime is not it. Not copied here:
	                       * 336 bytes more in every record (592, not 264) would hold 2.2 times fewer
	                       * events in the ring buffer, for the few whose actor is a runtime's. */
	struct ancestor ancestry[ANCESTRY]; /* the actor's parent first; pid 0 past the top */
};

#define THEN_FILE 128
#define THEN_ARGS 6  /* arguments kept of the exec */
#define THEN_ARG  48 /* bytes kept of each */

/* What a process that entered namespaces with setns (or a child of it) did first: its first exec
 * that succeeded, else its last that failed, else its exit. */
struct then_event {
	struct gw_header hdr;  /* the process, after a successful exec: its new comm */
	__u64 session;         /* ts_boot_ns of the entering call: its event's time */
	__u32 entered_by;      /* the tid that made the entering call */
	__u32 exec;            /* 1: an exec (ret says how it went); 0: the process exited without one */
	__s64 ret;             /* the exec's return: 0 or -errno */
	__s32 exit_code;       /* no exec: the kernel's exit code (status << 8, or the signal) */
	__u32 argc;            /* arguments in args (up to THEN_ARGS) */
	char file[THEN_FILE];  /* the path as passed to execve */
	char args[THEN_ARGS][THEN_ARG];
};
const struct then_event *unused_then __attribute__((unused));

/* A process that entered, until its first exec or its exit. */
struct session {
	__u64 id;         /* as then_event.session */
	__u32 entered_by;
	__u32 forked;     /* it forked since: its exit without exec is not the end, its child goes on */
};

/* Not LRU: an LRU map pushes the oldest out unseen. A full one refuses the newest, which
 * count_refused counts. Entries leave at the process's first exec that succeeds or at its exit. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* tgid */
	__type(value, struct session);
} sessions SEC(".maps");

/* Execs in flight by sessions' processes, by tgid: an exec by a thread other than the leader
 * returns as the leader. Two threads exec'ing at once share the entry: the first to return takes
 * it. Not LRU, as sessions; entries leave when the exec returns, or with their session at its
 * exit. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct then_event);
} execs SEC(".maps");

/* The last exec that failed, by tgid. Not LRU, as sessions; entries leave with their session. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct then_event);
} failed SEC(".maps");

/* Runtimes' argv by tgid, taken when they exec: a runtime's child cannot read its parent's memory
 * from here when it enters a container. User space reads an event's runtime here: entries are
 * never deleted, only pushed out by newer runtimes. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct rt_args);
} runtimes SEC(".maps");

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

/* Who is above the actor, up to ANCESTRY processes, and the argv of the nearest runtime among
 * them. */
static __always_inline void read_ancestry(struct event *e)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct dentry *dir = BPF_CORE_READ(t, mm, exe_file, f_path.dentry, d_parent);
	e->exe_dir_ino = BPF_CORE_READ(dir, d_inode, i_ino);
	e->exe_dir_dev = BPF_CORE_READ(dir, d_sb, s_dev);
	for (int i = 0; i < ANCESTRY; i++) {
		t = BPF_CORE_READ(t, real_parent);
		if (!t)
			break;
		__u32 pid = BPF_CORE_READ(t, tgid);
		e->ancestry[i].pid = pid;
		BPF_CORE_READ_STR_INTO(&e->ancestry[i].comm, t, comm);
		if (!e->runtime_pid) {
			struct rt_args *a = bpf_map_lookup_elem(&runtimes, &pid);
			if (a && a->start_time == BPF_CORE_READ(t, group_leader, start_time)) {
				e->runtime_pid = pid;
				e->runtime_start = a->start_time;
			}
		}
		if (pid <= 1)
			break; /* init's parent is the idle task */
	}
}

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
	read_ancestry(e);
	return e;
}

static __always_inline void stash(struct event *e)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&pending, &tid, e, BPF_ANY))
		count_table_full();
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
	if (ret == 0 && e->syscall == SYSCALL_SETNS) {
		struct session s = { .id = e->hdr.ts_boot_ns, .entered_by = tid };
		__u32 tgid = e->hdr.pid;
		count_refused(bpf_map_update_elem(&sessions, &tgid, &s, BPF_ANY));
		bpf_map_delete_elem(&failed, &tgid); /* an earlier session's, now forgotten */
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
	/* A child of a process that entered carries its session: runc's child that joins the
	 * namespaces forks the process that execs. */
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, child_tgid = BPF_CORE_READ(child, tgid);
	struct session *s = bpf_map_lookup_elem(&sessions, &tgid);
	if (s && child_tgid != tgid) {
		struct session c = *s;
		c.forked = 0;
		s->forked = 1;
		count_refused(bpf_map_update_elem(&sessions, &child_tgid, &c, BPF_ANY));
	}

	__u32 tid = (__u32)id;
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

/* The runtimes' names as exec sets comm (the binary's name): runc, crun, and their names with a
 * suffix (runc.amd64). runc's own children rename themselves (runc:[1:CHILD]) and are not kept. */
static __always_inline bool is_runtime(const char *c)
{
	bool runc = c[0] == 'r' && c[1] == 'u' && c[2] == 'n' && c[3] == 'c';
	bool crun = c[0] == 'c' && c[1] == 'r' && c[2] == 'u' && c[3] == 'n';
	return (runc || crun) && (c[4] == 0 || c[4] == '.' || c[4] == '-');
}

/* Scratch for a runtime's argv: too big for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rt_args);
} rt_scratch SEC(".maps");

/* Scratch for a then_event: too big for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct then_event);
} then_scratch SEC(".maps");

static __always_inline void then_emit(struct then_event *t)
{
	if (bpf_ringbuf_output(&events, t, sizeof(*t), 0))
		count_lost();
}

/* An exec by a session's process: its file and first arguments, kept until it returns. */
static __always_inline void exec_start(const char *file, const char *const *argv)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32, zero = 0;
	struct session *s = bpf_map_lookup_elem(&sessions, &tgid);
	if (!s)
		return; /* most execs of a node leave here */
	struct then_event *t = bpf_map_lookup_elem(&then_scratch, &zero);
	if (!t)
		return;
	__builtin_memset(t, 0, sizeof(*t));
	t->session = s->id;
	t->entered_by = s->entered_by;
	t->exec = 1;
	bpf_probe_read_user_str(t->file, sizeof(t->file), file);
	for (int i = 0; i < THEN_ARGS; i++) {
		const char *arg = NULL;
		if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
			break;
		bpf_probe_read_user_str(t->args[i], THEN_ARG, arg);
		t->argc = i + 1;
	}
	count_refused(bpf_map_update_elem(&execs, &tgid, t, BPF_ANY));
}

SEC("tracepoint/syscalls/sys_enter_execve")
int execve_enter(struct trace_event_raw_sys_enter *ctx)
{
	exec_start((const char *)ctx->args[0], (const char *const *)ctx->args[1]);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int execveat_enter(struct trace_event_raw_sys_enter *ctx)
{
	exec_start((const char *)ctx->args[1], (const char *const *)ctx->args[2]);
	return 0;
}

/* The exec returned: a success ends the session with a then event; a failure is kept, and told
 * at exit if no exec succeeds (execvp tries each directory of PATH in turn). */
static __always_inline void exec_result(long ret)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct then_event *t = bpf_map_lookup_elem(&execs, &tgid);
	if (!t)
		return;
	t->ret = ret;
	if (ret == 0) {
		fill_header(&t->hdr, SETNS_THEN);
		then_emit(t);
		bpf_map_delete_elem(&sessions, &tgid);
		bpf_map_delete_elem(&failed, &tgid);
	} else {
		count_refused(bpf_map_update_elem(&failed, &tgid, t, BPF_ANY));
	}
	bpf_map_delete_elem(&execs, &tgid);
}

static __always_inline void exec_done(long ret)
{
	exec_result(ret);
	char comm[TASK_COMM_LEN];
	if (ret != 0 || bpf_get_current_comm(comm, sizeof(comm)) || !is_runtime(comm))
		return;
	__u32 zero = 0;
	struct rt_args *a = bpf_map_lookup_elem(&rt_scratch, &zero);
	if (!a)
		return;
	struct task_struct *t = gw_current();
	unsigned long start = GW_TASK(t, mm, arg_start);
	unsigned long end = GW_TASK(t, mm, arg_end);
	__u64 len = end - start;
	if (len > RT_ARGS) {
		start = end - RT_ARGS;
		len = RT_ARGS;
	}
	a->start_time = GW_TASK(t, start_time);
	a->len = 0;
	if (bpf_probe_read_user(a->args, len, (void *)start) == 0)
		a->len = len;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	bpf_map_update_elem(&runtimes, &tgid, a, BPF_ANY);
}

SEC("tracepoint/syscalls/sys_exit_execve")
int execve_exit(struct trace_event_raw_sys_exit *ctx)
{
	exec_done(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_execveat")
int execveat_exit(struct trace_event_raw_sys_exit *ctx)
{
	exec_done(ctx->ret);
	return 0;
}

/* A session's process exited: it tells its last failed exec, or that it exited without exec
 * unless a child of it carries the session on. */
static __always_inline void session_exit(struct task_struct *task)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32, zero = 0;
	struct session *s = bpf_map_lookup_elem(&sessions, &tgid);
	if (!s)
		return; /* most exits of a node leave here */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return; /* other threads live on */
	struct session copy = *s;
	/* Threads exiting together may all see live at 0: the one that deletes tells. */
	if (bpf_map_delete_elem(&sessions, &tgid))
		return;
	bpf_map_delete_elem(&execs, &tgid); /* an exec whose return was not seen */
	struct then_event *t = bpf_map_lookup_elem(&failed, &tgid);
	if (t) {
		fill_header(&t->hdr, SETNS_THEN);
		then_emit(t);
		bpf_map_delete_elem(&failed, &tgid);
		return;
	}
	if (copy.forked)
		return;
	t = bpf_map_lookup_elem(&then_scratch, &zero);
	if (!t)
		return;
	__builtin_memset(t, 0, sizeof(*t));
	fill_header(&t->hdr, SETNS_THEN);
	t->session = copy.id;
	t->entered_by = copy.entered_by;
	t->exit_code = BPF_CORE_READ(task, exit_code);
	then_emit(t);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(exit_btf, struct task_struct *task)
{
	session_exit(task);
	return 0;
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(exit_raw, struct task_struct *task)
{
	session_exit(task);
	return 0;
}
