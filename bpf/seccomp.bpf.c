//go:build ignore
/* SPDX-License-Identifier: GPL-2.0 */
/* seccomp: which syscalls each recorded container makes. A bit per syscall number in a bitmap per
 * recording key (mount namespace); nothing is sent per syscall. Processes not being recorded leave
 * after one global load, or, while recording, one hash lookup. */
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

#define SYSCALL_WORDS 8 /* 512 numbers per table: every table has fewer today */
#define X32_SYSCALL_BIT 0x40000000
#define TS_COMPAT 0x0002 /* thread_info.status: a 32-bit syscall on x86-64 */

/* The tables a syscall number belongs to. */
enum syscall_table {
	TABLE_NATIVE, /* x86-64 */
	TABLE_COMPAT, /* i386, through int 0x80 / sysenter / 32-bit syscall */
	TABLE_X32,
	TABLE_COUNT,
};

/* The syscalls of one recording key, a bitmap per table. Written by the kernel, read by user space. */
struct recording {
	__u64 words[TABLE_COUNT][SYSCALL_WORDS];
	__u64 out_of_range; /* calls with a number past the bitmaps: counted, so never silent */
};

/* The one kind of event this gadget writes: a recording the kernel began by itself. */
enum seccomp_kind {
	SECCOMP_ARMED = 1,
};

/* How a recording began, for the event user space is told. */
enum arm_reason {
	ARM_SECCOMP = 1, /* the key's first seccomp filter was installed */
	ARM_EXEC,        /* a process in the key exec'd before any filter was installed */
};

struct event {
	struct gw_header hdr;
	__u32 mntns;
	enum arm_reason reason;
};

/* Named here so that their types reach BTF, and Go: the event is only read through the ring buffer,
 * the enums are only used as values. */
const struct event *unused_event __attribute__((unused));
const enum syscall_table *unused_table __attribute__((unused));
const enum seccomp_kind *unused_kind __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct recording);
} recordings SEC(".maps");

/* Mount namespaces never recorded on their own (the host's, those that existed at start). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} ignored SEC(".maps");

/* Mount namespaces to record from their first seccomp filter or exec (the OCI hook's container). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} expected SEC(".maps");

/* Set by user space: 0 when nothing is recorded or expected, so that every syscall leaves at once. */
volatile __u32 active = 0;
/* Set by user space: whether the slow path (arming) is needed at all. */
volatile __u32 arming = 0;
/* Set at load: record every new mount namespace from its first seccomp filter or exec (--new). */
const volatile bool arm_new = false;

static __always_inline __u32 task_mntns(struct task_struct *t)
{
	return BPF_CORE_READ(t, nsproxy, mnt_ns, ns.inum);
}

static __always_inline void set_bit(struct recording *r, struct task_struct *t, long id)
{
	__u32 nr = (__u32)id, table = TABLE_NATIVE;
	if (id < 0) { /* syscall(-1): not a syscall, but counted */
		__sync_fetch_and_add(&r->out_of_range, 1);
		return;
	}
	if (nr & X32_SYSCALL_BIT) {
		table = TABLE_X32;
		nr &= ~X32_SYSCALL_BIT;
	} else if (BPF_CORE_READ(t, thread_info.status) & TS_COMPAT) {
		table = TABLE_COMPAT;
	}
	__u32 idx = table * SYSCALL_WORDS + (nr >> 6);
	/* The barrier keeps clang from folding this check into the ones above, which older
	 * verifiers (6.1) cannot follow across the branches: this one they can. */
	barrier_var(idx);
	if (nr >= SYSCALL_WORDS * 64 || idx >= TABLE_COUNT * SYSCALL_WORDS) {
		__sync_fetch_and_add(&r->out_of_range, 1);
		return;
	}
	__u64 *w = &r->words[0][0] + idx;
	__u64 bit = 1ULL << (nr & 63);
	if (!(*w & bit)) /* set once; later calls only read */
		__sync_fetch_and_or(w, bit);
}

/* Start recording key mntns, unless it is ignored or already recorded, and tell user space. */
static __always_inline struct recording *arm(__u32 mntns, enum arm_reason reason)
{
	static const struct recording empty = {};
	if (!mntns || bpf_map_lookup_elem(&ignored, &mntns))
		return NULL;
	if (!arm_new && !bpf_map_lookup_elem(&expected, &mntns))
		return NULL;
	if (bpf_map_update_elem(&recordings, &mntns, &empty, BPF_NOEXIST))
		return NULL; /* recorded already, or the table is full */
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		fill_header(&e->hdr, SECCOMP_ARMED);
		e->mntns = mntns;
		e->reason = reason;
		bpf_ringbuf_submit(e, 0);
	} else {
		count_lost();
	}
	return bpf_map_lookup_elem(&recordings, &mntns);
}

static __always_inline bool is_exec(long id, struct task_struct *t)
{
	if (BPF_CORE_READ(t, thread_info.status) & TS_COMPAT)
		return id == 11 || id == 358; /* i386 execve, execveat */
	id &= ~X32_SYSCALL_BIT;
	return id == 59 || id == 322 || id == 520 || id == 545; /* execve, execveat; x32 variants */
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long id)
{
	if (!active)
		return 0;
	struct task_struct *t = bpf_get_current_task_btf();
	__u32 mntns = task_mntns(t);
	struct recording *r = bpf_map_lookup_elem(&recordings, &mntns);
	if (!r) {
		if (!arming || !is_exec(id, t))
			return 0;
		r = arm(mntns, ARM_EXEC);
		if (!r)
			return 0;
	}
	set_bit(r, t, id);
	return 0;
}

/* A seccomp filter was installed: from here on, what the key does must be in its profile. */
static __always_inline void filter_installed(long ret)
{
	struct task_struct *t = bpf_get_current_task_btf();
	if (ret == 0 && BPF_CORE_READ(t, seccomp.mode) == 2 /* SECCOMP_MODE_FILTER */)
		arm(task_mntns(t), ARM_SECCOMP);
}

SEC("tracepoint/syscalls/sys_exit_seccomp")
int seccomp_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (arming)
		filter_installed(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_prctl")
int prctl_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (arming)
		filter_installed(ctx->ret);
	return 0;
}
