//go:build ignore
/* SPDX-License-Identifier: GPL-2.0 */
/* seccomp: which syscalls each recorded container or process tree makes. A bit per syscall number
 * in a bitmap per recording; nothing is sent per syscall.
 *
 * The hot path is sys_enter, run for every syscall on the node. It is built for the processes
 * not being recorded: with no recording under way they leave after one load; otherwise after
 * direct loads of their mount namespace (tp_btf's typed task pointer, no helper per hop) and one
 * compare against a slot of a table indexed by that number, with no lookup call, and, while a
 * process tree is recorded, a load of their tgid and one compare against a slot of the members'
 * table indexed by it, with no lookup call either. Recordings the
 * kernel begins by itself (arming) start there too, at a filter install or an exec, so no other
 * program runs on syscalls: a syscall tracepoint would slow every syscall of the node. */
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

#define SYSCALL_WORDS 8 /* 512 numbers per table: every table has fewer today */
#define X32_SYSCALL_BIT 0x40000000
#define EEXIST 17

#define SLOTS 1024 /* a power of two: a recording's slot is its key's low bits */
#define SLOT_MASK (SLOTS - 1)
/* Slot keys that are no key: mount namespace inodes start at 0xF0000000 and tgids stay below
 * 2^22, so neither is ever one of these. */
#define SLOT_FREE 0
#define SLOT_BUSY 0xFFFFFFFF /* being claimed or released: matches no key */

/* The tables a syscall number belongs to. */
enum syscall_table {
	TABLE_NATIVE, /* x86-64, or arm64 */
	TABLE_COMPAT, /* i386 (int 0x80, sysenter, 32-bit syscall), or AArch32 */
	TABLE_X32,    /* x86-64 only */
	TABLE_COUNT,
};

/* The syscalls of one recording, a bitmap per table. Written by the kernel, read by user space. */
struct recording {
	__u64 words[TABLE_COUNT][SYSCALL_WORDS];
	__u64 out_of_range; /* calls with a number past the bitmaps: counted, so never silent */
	__u64 mntns_id;     /* of a recording the kernel began: the namespace to ignore once stopped */
};

/* A recording's place. Its key is a mount namespace inode (a container) or the tgid of a process
 * tree's root. A key whose slot is taken by another lives in the spill table, and the slot counts
 * it, so that a key whose slot counts none is known not recorded without a lookup. */
struct rec_slot {
	__u64 key;     /* SLOT_FREE, SLOT_BUSY, or the key recorded here (64 bits: compare-and-swap) */
	__u64 spilled; /* keys with this slot that live in spill */
	struct recording rec;
};

#define MEMBER_SLOTS 4096 /* a power of two: a member's slot is its tgid's low bits */
#define MEMBER_MASK (MEMBER_SLOTS - 1)

/* A process of a recorded tree, by tgid. A tgid whose slot holds another lives in the members
 * table, and the slot counts it, so that a process whose slot neither holds it nor counts any
 * is known to be in no tree without a lookup. */
struct member_slot {
	__u64 member;  /* 0 (free), or a member: its tgid in the low half, its tree's key in the high */
	__u64 spilled; /* tgids with this slot that live in members */
};

/* The one kind of event this gadget writes: a recording the kernel began by itself. */
enum seccomp_kind {
	SECCOMP_ARMED = 1,
};

/* How a recording began, for the event user space is told. */
enum arm_reason {
	ARM_SECCOMP = 1, /* a process in the key installs the key's first seccomp filter */
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

/* Shared with user space, which maps this section (.bss) and claims and releases slots and
 * counts recordings with the same atomic operations as the kernel. */
struct rec_slot slots[SLOTS];
/* Claimed with compare-and-swap by the kernel at a fork and by user space at StartTree; before
 * 5.12 (no compare-and-swap in the kernel, which could not free a slot at an exit) members all
 * live in the members table. */
struct member_slot member_slots[MEMBER_SLOTS];
/* Recordings under way. 0: every syscall leaves after reading this. Counted before a recording is
 * added and uncounted after it is gone, so that it never counts fewer than there are. */
volatile __u32 live = 0;
/* Process trees recorded (among live). 0: no tgid lookup; all of live: no mount namespace is
 * recorded, so none is read. Counted after the tree's root is a member and uncounted before its
 * recording ends, so that it never counts more than there are. */
volatile __u32 trees = 0;
/* Recordings (or tree members) the kernel could not add because a table was full: reported. */
volatile __u32 not_recorded = 0;

/* Recordings whose slot was taken. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct recording);
} spill SEC(".maps");

/* Processes of recorded trees whose slot was taken: tgid to the tree's key. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u32);
} members SEC(".maps");

/* Mount namespaces never recorded on their own (those that existed at start, those whose recording
 * stopped), by id (mntns_id): inode numbers are reused as soon as a namespace is freed, and a new
 * container must not inherit an old namespace's place here. Ids are never reused either, so the
 * table only grows: when full, the least recently seen (most likely gone) make room. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} ignored SEC(".maps");

/* Mount namespaces to record from their first seccomp filter or exec (the OCI hook's container). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} expected SEC(".maps");

/* Set by user space: whether the kernel may begin recordings (--new, or namespaces expected). */
volatile __u32 arming = 0;
/* Set at load: record every new mount namespace from its first seccomp filter or exec (--new). */
const volatile bool arm_new = false;

/* t is gw_current(): direct loads where the kernel allows; a task past its namespaces reads 0. */
static __always_inline __u32 task_mntns(struct task_struct *t)
{
	return GW_TASK(t, nsproxy, mnt_ns, ns.inum);
}

/* Before 6.18 a mount namespace's id for the boot was its seq; since, its ns_common's ns_id. */
struct mnt_namespace___seq {
	__u64 seq;
} __attribute__((preserve_access_index));

struct ns_common___id {
	__u64 ns_id;
} __attribute__((preserve_access_index));

/* A mount namespace's id for the boot: never reused, unlike its inode number. */
static __always_inline __u64 mntns_id(struct mnt_namespace *ns)
{
	if (bpf_core_field_exists(((struct mnt_namespace___seq *)0)->seq))
		return BPF_CORE_READ((struct mnt_namespace___seq *)ns, seq);
	return BPF_CORE_READ((struct ns_common___id *)&ns->ns, ns_id);
}

/* The recording of a key, or NULL. */
static __always_inline struct recording *find(__u32 key)
{
	struct rec_slot *s = &slots[key & SLOT_MASK];
	if (s->key == key)
		return &s->rec;
	if (!s->spilled)
		return NULL;
	return bpf_map_lookup_elem(&spill, &key);
}

/* The key of the tree tgid is a member of; 0 if none (no key is 0). */
static __always_inline __u32 tree_of(__u32 tgid)
{
	struct member_slot *s = &member_slots[tgid & MEMBER_MASK];
	__u64 m = s->member;
	if ((__u32)m == tgid && m)
		return m >> 32;
	if (!s->spilled)
		return 0;
	__u32 *root = bpf_map_lookup_elem(&members, &tgid);
	return root ? *root : 0;
}

/* Make tgid a member of the tree root: in its slot if free (or its already), else in members.
 * Before 5.12 (!fetch) always in members. */
static __always_inline void add_member(__u32 tgid, __u32 root, const bool fetch)
{
	struct member_slot *s = &member_slots[tgid & MEMBER_MASK];
	__u64 m = (__u64)root << 32 | tgid;
	if (fetch) {
		__u64 old = __sync_val_compare_and_swap(&s->member, 0, m);
		if (!old || ((__u32)old == tgid && __sync_val_compare_and_swap(&s->member, old, m) == old))
			return;
	}
	/* Counted in its slot first, so that no syscall of it misses the members table. */
	__sync_fetch_and_add(&s->spilled, 1);
	long err = bpf_map_update_elem(&members, &tgid, &root, BPF_NOEXIST);
	if (!err)
		return;
	__sync_fetch_and_add(&s->spilled, -1); /* not added: counted once already, or not at all */
	if (err != -EEXIST || bpf_map_update_elem(&members, &tgid, &root, BPF_EXIST))
		__sync_fetch_and_add(&not_recorded, 1); /* a member not recorded: said, not silent */
}

/* tgid is gone: it is a member nowhere, in its slot or in members, so that a process given the
 * same tgid later is not taken for one. */
static __always_inline void drop_member(__u32 tgid, const bool fetch)
{
	struct member_slot *s = &member_slots[tgid & MEMBER_MASK];
	if (fetch) {
		/* User space may move the slot to another tree meanwhile (StartTree of a subtree): a
		 * few tries, each lost only to such a move. */
		for (int i = 0; i < 4; i++) {
			__u64 m = s->member;
			if ((__u32)m != tgid || !m || __sync_val_compare_and_swap(&s->member, m, 0) == m)
				break;
		}
	}
	if (s->spilled && !bpf_map_delete_elem(&members, &tgid))
		__sync_fetch_and_add(&s->spilled, -1);
}

/* Before 5.12 there is no atomic or: a bit is set with an atomic add, which must happen once, so
 * the CPUs that find it clear at the same time race for it here first (the map's lock orders
 * them), and the winner sets it if it is still clear. Entries live only while a bit is set. */
struct bit_claim {
	__u64 word; /* its address */
	__u64 bit;
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct bit_claim);
	__type(value, __u8);
} setting SEC(".maps");

static __always_inline void set_bit_once(__u64 *w, __u64 bit)
{
	struct bit_claim k = {.word = (__u64)w, .bit = bit};
	__u8 one = 1;
	long err = bpf_map_update_elem(&setting, &k, &one, BPF_NOEXIST);
	if (err) {
		if (err != -EEXIST) /* the table is full: one CPU per entry makes that impossible */
			__sync_fetch_and_add(&not_recorded, 1);
		return; /* another CPU sets it */
	}
	if (!(*w & bit))
		__sync_fetch_and_add(w, bit);
	bpf_map_delete_elem(&setting, &k);
}

static __always_inline void set_bit(struct recording *r, __u32 table, __u32 nr, const bool fetch)
{
	__u32 idx = table * SYSCALL_WORDS + (nr >> 6);
	/* The barrier keeps clang from folding this check into the caller's, which older verifiers
	 * (6.1) cannot follow across the branches: this one they can. */
	barrier_var(idx);
	if (nr >= SYSCALL_WORDS * 64 || idx >= TABLE_COUNT * SYSCALL_WORDS) {
		__sync_fetch_and_add(&r->out_of_range, 1);
		return;
	}
	__u64 *w = &r->words[0][0] + idx;
	__u64 bit = 1ULL << (nr & 63);
	if (*w & bit) /* set once; later calls only read */
		return;
	if (fetch)
		__sync_fetch_and_or(w, bit);
	else
		set_bit_once(w, bit);
}

static __always_inline void record(struct recording *r, struct task_struct *t, long id, const bool fetch)
{
	__u32 nr = (__u32)id, table = TABLE_NATIVE;
	if (id < 0) { /* syscall(-1): not a syscall, but counted */
		__sync_fetch_and_add(&r->out_of_range, 1);
		return;
	}
#if defined(__TARGET_ARCH_x86)
	if (nr & X32_SYSCALL_BIT) {
		table = TABLE_X32;
		nr &= ~X32_SYSCALL_BIT;
	} else
#endif
	if (gw_compat_syscall(t))
		table = TABLE_COMPAT;
	set_bit(r, table, nr, fetch);
}

/* Take a free slot for key, with an empty bitmap: busy while it is cleared, so that no syscall
 * lands in it before. */
static __always_inline struct recording *claim(struct rec_slot *s, __u32 key, __u64 id)
{
	if (__sync_val_compare_and_swap(&s->key, SLOT_FREE, SLOT_BUSY) != SLOT_FREE)
		return NULL;
	__builtin_memset(&s->rec, 0, sizeof(s->rec));
	s->rec.mntns_id = id;
	__sync_lock_test_and_set(&s->key, key);
	return &s->rec;
}

/* Tell user space that the kernel began recording mntns. A global function, so the verifier checks
 * it once: inlined, its header's loads were checked again on each of sys_enter's many paths to it,
 * and on 6.18 a load through a pointer field costs the verifier about half a millisecond. */
__noinline int tell_armed(__u32 mntns, enum arm_reason reason)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	fill_header(&e->hdr, SECCOMP_ARMED);
	e->mntns = mntns;
	e->reason = reason;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* Start recording the mount namespace of task t (gw_current), unless it is ignored or already recorded, and
 * tell user space. */
static __always_inline struct recording *arm(struct task_struct *t, enum arm_reason reason, const bool fetch)
{
	__u32 mntns = task_mntns(t);
	if (!mntns || find(mntns))
		return NULL;
	__u64 id = mntns_id(GW_TASK(t, nsproxy, mnt_ns));
	if (bpf_map_lookup_elem(&ignored, &id))
		return NULL;
	if (!arm_new && !bpf_map_lookup_elem(&expected, &mntns))
		return NULL;
	struct rec_slot *s = &slots[mntns & SLOT_MASK];
	__sync_fetch_and_add(&live, 1); /* first: while trees are all that live counts, no namespace is looked up */
	/* Before 5.12 (no compare-and-swap) the kernel's recordings all live in spill. */
	struct recording *r = fetch ? claim(s, mntns, id) : NULL;
	if (!r) {
		/* Counted in its slot first, so that no syscall of it misses the spill table. */
		struct recording empty = {.mntns_id = id};
		__sync_fetch_and_add(&s->spilled, 1);
		if (bpf_map_update_elem(&spill, &mntns, &empty, BPF_NOEXIST)) {
			__sync_fetch_and_add(&s->spilled, -1);
			if (!bpf_map_lookup_elem(&spill, &mntns)) /* not there already: the table is full */
				__sync_fetch_and_add(&not_recorded, 1);
			__sync_fetch_and_add(&live, -1);
			return NULL;
		}
		r = bpf_map_lookup_elem(&spill, &mntns);
		if (!r) {
			__sync_fetch_and_add(&live, -1);
			return NULL;
		}
	}
	tell_armed(mntns, reason);
	return r;
}

#define SECCOMP_SET_MODE_FILTER 1
#define PR_SET_SECCOMP 22
#define SECCOMP_MODE_FILTER 2

/* Whether a syscall (number id, arguments in regs) begins the recording of an armable namespace:
 * a seccomp filter install (from then on the profile will be enforced), or, with no filter
 * installed, an exec. The call is recorded. An install names its filter (the third argument):
 * libseccomp and runc probe which flags the kernel knows with a NULL filter, early in a runtime's
 * set-up, and those must not begin the recording. Every other syscall is told by its number
 * alone, with no load; the 32-bit numbers are native ones too (munmap, iopl on x86-64), so those
 * read the task's state to see whether it is in a 32-bit syscall. */
static __always_inline enum arm_reason arm_call(long id, struct pt_regs *regs)
{
#define A(n) GW_SYSCALL_ARG(LOAD, regs, n)
	switch (id) {
	case GW_NR_execve: case GW_NR_execveat:
#if defined(__TARGET_ARCH_x86)
	case X32_SYSCALL_BIT | 520: case X32_SYSCALL_BIT | 545:
#endif
		return ARM_EXEC;
	case GW_NR_seccomp:
#if defined(__TARGET_ARCH_x86)
	case X32_SYSCALL_BIT | GW_NR_seccomp:
#endif
		return A(0) == SECCOMP_SET_MODE_FILTER && A(2) ? ARM_SECCOMP : 0;
	case GW_NR_prctl:
#if defined(__TARGET_ARCH_x86)
	case X32_SYSCALL_BIT | GW_NR_prctl:
#endif
		return A(0) == PR_SET_SECCOMP && A(1) == SECCOMP_MODE_FILTER && A(2) ? ARM_SECCOMP : 0;
	case GW_NR32_execve: case GW_NR32_execveat: case GW_NR32_seccomp: case GW_NR32_prctl:
		break;
	default:
		return 0;
	}
	if (!gw_compat_syscall(gw_current()))
		return 0;
#if defined(__TARGET_ARCH_x86)
#undef A
	/* i386 passes its arguments in bx, cx, dx: the entry code saved them there. */
#define A(n) (n == 0 ? regs->bx : n == 1 ? regs->cx : regs->dx)
#endif
	switch (id) {
	case GW_NR32_execve: case GW_NR32_execveat:
		return ARM_EXEC;
	case GW_NR32_seccomp:
		return A(0) == SECCOMP_SET_MODE_FILTER && A(2) ? ARM_SECCOMP : 0;
	case GW_NR32_prctl:
		return A(0) == PR_SET_SECCOMP && A(1) == SECCOMP_MODE_FILTER && A(2) ? ARM_SECCOMP : 0;
	}
	return 0;
#undef A
}

/* fetch: whether this variant may use fetching atomics (compat.h). */
static __always_inline int on_sys_enter(struct pt_regs *regs, long id, const bool fetch)
{
	struct task_struct *t = NULL;
	struct recording *r = NULL;
	__u32 n = live;
	if (n) {
		t = gw_current();
		__u32 tr = trees;
		if (n != tr) { /* a mount namespace is recorded */
			__u32 key = task_mntns(t);
			if (key)
				r = find(key);
		}
		if (!r && tr) {
			__u32 root = tree_of(GW_TASK(t, tgid));
			if (root)
				r = find(root);
		}
	}
	if (!r) {
		if (!arming)
			return 0;
		enum arm_reason why = arm_call(id, regs);
		if (!why)
			return 0;
		t = gw_current();
		if (!(r = arm(t, why, fetch)))
			return 0;
	}
	record(r, t, id, fetch);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long id)
{
	return on_sys_enter(regs, id, true);
}

/* Before 5.12: atomic adds only. */
SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter_nofetch, struct pt_regs *regs, long id)
{
	return on_sys_enter(regs, id, false);
}

/* A process forked by a member of a recorded tree joins the tree. */
static __always_inline int on_fork(struct task_struct *parent, struct task_struct *child, const bool fetch)
{
	if (!trees || child->pid != child->tgid) /* a thread is in its process's tree already */
		return 0;
	__u32 root = tree_of(parent->tgid);
	if (root)
		add_member(child->tgid, root, fetch);
	return 0;
}

/* A process ended (its last thread): its tgid may be reused by another. Whatever the count of
 * trees: a member added as that count fell to 0 must still leave (user space removes a stopped
 * tree's members after uncounting it). */
static __always_inline int on_exit(struct task_struct *p, const bool fetch)
{
	if (p->signal->live.counter)
		return 0;
	drop_member(p->tgid, fetch);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(tree_fork, struct task_struct *parent, struct task_struct *child)
{
	return on_fork(parent, child, true);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(tree_exit, struct task_struct *p)
{
	return on_exit(p, true);
}

/* Before 5.12: members all in the members table. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(tree_fork_nofetch, struct task_struct *parent, struct task_struct *child)
{
	return on_fork(parent, child, false);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(tree_exit_nofetch, struct task_struct *p)
{
	return on_exit(p, false);
}

/* Run once by user space at load with --new: the mount namespaces tasks are in now are not new. */
SEC("iter/task")
int ignore_running(struct bpf_iter__task *ctx)
{
	struct task_struct *t = ctx->task;
	if (!t || !t->nsproxy)
		return 0;
	__u64 id = mntns_id(t->nsproxy->mnt_ns);
	__u8 one = 1;
	bpf_map_update_elem(&ignored, &id, &one, BPF_ANY);
	return 0;
}
