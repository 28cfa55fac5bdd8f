//go:build ignore
/* SPDX-License-Identifier: GPL-2.0 */
/* cni: CNI plugin invocations. A plugin is found at exec: a binary whose directory is one of the
 * CNI bin dirs (a hash lookup by the directory's inode), or a script or, with env_match, any file
 * exec'd with CNI_COMMAND in its environment. From then on its process tree is followed (forks,
 * execs: IPAM and chained plugins, iptables...), what each process writes to fd 1 and 2 is copied
 * (the result or the CNI error) while they are the files it was given, and each one's exit is
 * reported with its code. User space joins these records into invocations. */
#include "filter.h"

char LICENSE[] SEC("license") = "GPL";

enum cni_kind {
	CNI_EXEC = 1,
	CNI_OUTPUT,
	CNI_EXIT,
};
const enum cni_kind *unused_kind __attribute__((unused)); /* its type reaches BTF, and Go */

/* How an exec was found to belong to an invocation. */
enum cni_found {
	FOUND_BIN_DIR = 1, /* the binary's directory is a CNI bin dir */
	FOUND_ENV,         /* CNI_COMMAND is in its environment */
	FOUND_TREE,        /* a process of an invocation exec'd it */
};
const enum cni_found *unused_found __attribute__((unused));

#define ENV_MAX  8192 /* environment bytes copied for an invocation's first exec */
#define ARGS_MAX 512
#define FILE_MAX 256
#define OUT_MAX  4096  /* bytes of one write copied */
#define OUT_KEEP 16384 /* bytes of output copied per process, in all */

struct exec_event {
	struct gw_header hdr;
	__u32 root;      /* the invocation: the tgid of the process the runtime exec'd */
	__u32 found;     /* enum cni_found */
	__u32 env_len;   /* bytes in env: the root's first exec only */
	__u32 args_len;  /* bytes in args */
	__u8 env_truncated;
	__u8 args_truncated;
	__u8 in_bin_dir; /* the binary's directory is a CNI bin dir */
	__u8 pad;
	__u32 pad2;
	char file[FILE_MAX]; /* the path as exec'd (a script's, not its interpreter's) */
	char args[ARGS_MAX]; /* argv, NUL-separated */
	char env[ENV_MAX];   /* the environment, NUL-separated */
};

struct output_event {
	struct gw_header hdr;
	__u32 root;
	__u32 fd;     /* 1: its stdout, 2: its stderr: the file written to, through either fd */
	__u32 len;    /* bytes in data */
	__u32 count;  /* bytes the write asked to write */
	char data[OUT_MAX];
};

struct exit_event {
	struct gw_header hdr;
	__u32 root;
	__s32 code;    /* the kernel's exit code: status << 8, or the signal */
	__u32 dropped; /* bytes of output not copied (over OUT_KEEP) */
	__u32 pad;
};

const struct output_event *unused_output __attribute__((unused));
const struct exit_event *unused_exit __attribute__((unused));

/* An inode: a bin dir's, or the file behind a process's fd 1 or 2. */
struct inode_key {
	__u64 ino;
	__u32 dev; /* the kernel's dev_t: major << 20 | minor */
	__u32 pad;
};

/* A process of an invocation, by tgid. */
struct cni_proc {
	__u32 root;
	__u32 copied;  /* bytes of output copied */
	__u32 dropped; /* bytes of output over OUT_KEEP */
	__u32 pad;
	/* Its stdout and stderr: the files fd 1 and 2 were when it exec'd (its parent's pipes; the
	 * runtime's for the root, kept through its later execs), or its parent's at a fork. A write
	 * through fd 1 or 2 counts as what it printed to the one of them that the fd is now: a
	 * shell's `echo x >&2` writes to stderr through fd 1, and `echo x > file` to neither (the
	 * shell points fd 1 at the file for the builtin). ino 0: the fd was closed. */
	struct inode_key out[2];
};

/* The processes of invocations in flight (the runtime's plugins and what they run). User space
 * adds those already running at start. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct cni_proc);
} tree SEC(".maps");

/* The CNI bin dirs, by inode: user space fills it (and adds the dirs of an invocation's
 * CNI_PATH). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct inode_key);
	__type(value, __u8);
} bin_dirs SEC(".maps");

/* Too big for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_event);
} scratch SEC(".maps");

/* Set before load: also look for CNI_COMMAND in the environment of every exec that is not in a
 * bin dir (scripts are always looked at: their binary is the interpreter's). */
const volatile bool env_match = false;

/* Horspool's shift for "CNI_COMMAND=", as PAT_LEN less this: how far the byte under the
 * pattern's last position lets the pattern move (12 for a byte not in it). */
#define PAT_LEN 12
static const __u8 unshift[256] = {
	['C'] = 5, ['N'] = 10, ['I'] = 3, ['_'] = 4, ['O'] = 6, ['M'] = 8, ['A'] = 9, ['D'] = 11,
};

/* Scans env[p, end) of the scratch event for "CNI_COMMAND=" at the start of a string, with p the
 * pattern's last position. Returns -1 on a match, else where to go on. A global function: the
 * verifier checks its loop once, not at every call. */
#define SCAN_CHUNK 512
__noinline int scan_env(__u32 p, __u32 end)
{
	static const char pat[PAT_LEN] = "CNI_COMMAND=";
	__u32 zero = 0;
	struct exec_event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return end;
	for (int i = 0; i < SCAN_CHUNK; i++) {
		if (p >= end)
			return p;
		__u8 c = e->env[p & (ENV_MAX - 1)];
		if (c == '=') {
			__u32 s = p - (PAT_LEN - 1);
			bool ok = s == 0 || e->env[(s - 1) & (ENV_MAX - 1)] == 0;
			for (int j = 0; j < PAT_LEN - 1 && ok; j++)
				ok = e->env[(s + j) & (ENV_MAX - 1)] == pat[j];
			if (ok)
				return -1;
		}
		p += PAT_LEN - unshift[c];
	}
	return p;
}

static __always_inline bool env_has_cni_command(__u32 len)
{
	__u32 p = PAT_LEN - 1;
	for (int k = 0; k < ENV_MAX / SCAN_CHUNK; k++) {
		if (p >= len)
			return false;
		__u32 end = (k + 1) * SCAN_CHUNK;
		int next = scan_env(p, end < len ? end : len);
		if (next < 0)
			return true;
		p = next;
	}
	return false;
}

/* Copies the task's environment into the scratch event; returns its length. */
static __always_inline __u32 read_env(struct exec_event *e, struct mm_struct *mm)
{
	unsigned long start = mm->env_start, end = mm->env_end;
	__u64 len = end - start;
	e->env_truncated = len > ENV_MAX;
	if (len > ENV_MAX)
		len = ENV_MAX;
	if (bpf_probe_read_user(e->env, len, (void *)start))
		return 0;
	return len;
}

static __always_inline void read_args(struct exec_event *e, struct mm_struct *mm)
{
	unsigned long start = mm->arg_start, end = mm->arg_end;
	__u64 len = end - start;
	e->args_truncated = len > ARGS_MAX;
	if (len > ARGS_MAX)
		len = ARGS_MAX;
	if (bpf_probe_read_user(e->args, len, (void *)start) == 0)
		e->args_len = len;
}

/* The inode of the current task's file at fd (1 or 2, always below the table's max_fds). */
static __always_inline struct inode_key fd_inode(int fd)
{
	struct inode_key k = {};
	struct file *f = current_fd_file(fd);
	if (!f)
		return k;
	struct inode *inode = BPF_CORE_READ(f, f_inode);
	k.ino = BPF_CORE_READ(inode, i_ino);
	k.dev = BPF_CORE_READ(inode, i_sb, s_dev);
	return k;
}

static __always_inline bool same_inode(const struct inode_key *a, const struct inode_key *b)
{
	return a->ino == b->ino && a->dev == b->dev;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_btf, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = p->tgid;
	struct cni_proc *n = bpf_map_lookup_elem(&tree, &tgid);
	struct dentry *dir = bprm->file->f_path.dentry->d_parent;
	struct inode_key k = { .ino = dir->d_inode->i_ino, .dev = dir->d_sb->s_dev };
	bool in_bin_dir = bpf_map_lookup_elem(&bin_dirs, &k) != NULL;
	/* A script's binary is its interpreter, whose directory tells nothing. */
	bool script = bprm->interp != bprm->filename;
	if (!n && !in_bin_dir && !script && !env_match)
		return 0; /* most execs of a node leave here */

	__u32 zero = 0;
	struct exec_event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	struct mm_struct *mm = p->mm;
	__u32 found = FOUND_TREE;
	e->env_len = 0;
	e->env_truncated = 0;
	if (!n) {
		__u32 len = read_env(e, mm);
		if (in_bin_dir && !script)
			found = FOUND_BIN_DIR;
		else if (env_has_cni_command(len))
			found = FOUND_ENV;
		else
			return 0;
		if (!actor_wanted())
			return 0;
		struct cni_proc root = { .root = tgid, .out = { fd_inode(1), fd_inode(2) } };
		if (bpf_map_update_elem(&tree, &tgid, &root, BPF_NOEXIST)) {
			count_table_full(); /* this invocation is not followed */
			return 0;
		}
		e->env_len = len;
	} else if (n->root != tgid) {
		/* IPAM and chained plugins write their result to the pipe their parent gave them. */
		n->out[0] = fd_inode(1);
		n->out[1] = fd_inode(2);
	}
	fill_header(&e->hdr, CNI_EXEC);
	e->root = n ? n->root : tgid;
	e->found = found;
	e->in_bin_dir = in_bin_dir;
	e->args_len = 0;
	read_args(e, mm);
	bpf_probe_read_kernel_str(e->file, sizeof(e->file), bprm->filename);
	e->pad = 0;
	e->pad2 = 0;
	if (bpf_ringbuf_output(&events, e, sizeof(*e), 0))
		count_lost();
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(fork_btf, struct task_struct *parent, struct task_struct *child)
{
	if (child->pid != child->tgid)
		return 0; /* a thread: its process is followed already, or not */
	__u32 ptgid = parent->tgid;
	struct cni_proc *n = bpf_map_lookup_elem(&tree, &ptgid);
	if (!n)
		return 0;
	/* The child has a copy of the parent's files: its stdout is the parent's until it execs. */
	struct cni_proc c = { .root = n->root, .out = { n->out[0], n->out[1] } };
	__u32 tgid = child->tgid;
	if (bpf_map_update_elem(&tree, &tgid, &c, BPF_ANY))
		count_table_full();
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(exit_btf, struct task_struct *task)
{
	__u32 tgid = task->tgid;
	struct cni_proc *n = bpf_map_lookup_elem(&tree, &tgid);
	if (!n)
		return 0;
	if (task->signal->live.counter != 0)
		return 0; /* other threads live on: the process has not exited */
	struct cni_proc copy = *n;
	/* Threads exiting together may all see live at 0: the one that deletes reports. */
	if (bpf_map_delete_elem(&tree, &tgid))
		return 0;
	struct exit_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	fill_header(&e->hdr, CNI_EXIT);
	e->root = copy.root;
	e->code = task->exit_code;
	e->dropped = copy.dropped;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_write")
int output_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u64 fd = ctx->args[0];
	if (fd != 1 && fd != 2)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct cni_proc *n = bpf_map_lookup_elem(&tree, &tgid);
	if (!n)
		return 0;
	/* Which of its stdout and stderr the file is: a shell's `echo x >&2` writes to its stderr
	 * through fd 1. */
	struct inode_key k = fd_inode(fd);
	if (!k.ino)
		return 0;
	/* Constant indexes: 5.10's and 6.12's verifiers refuse a map value's address plus fd. */
	bool out = same_inode(&k, &n->out[0]), err = same_inode(&k, &n->out[1]);
	if (fd == 1 ? !out : !err) {
		if (!out && !err)
			return 0; /* redirected elsewhere: not its output, and not lost */
		fd = 3 - fd;
	}
	__u64 count = ctx->args[2];
	__u32 room = n->copied < OUT_KEEP ? OUT_KEEP - n->copied : 0;
	__u64 len = count < room ? count : room;
	if (len > OUT_MAX)
		len = OUT_MAX;
	/* Not atomic: threads of a process may race here, and these only bound and tell. */
	if (count - len > 0xffffffff - n->dropped)
		n->dropped = 0xffffffff;
	else
		n->dropped += count - len;
	if (!len)
		return 0;
	struct output_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	fill_header(&e->hdr, CNI_OUTPUT);
	e->root = n->root;
	e->fd = fd;
	e->count = count;
	e->len = 0;
	if (bpf_probe_read_user(e->data, len, (void *)ctx->args[1]) == 0)
		e->len = len;
	n->copied += len;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
