//go:build ignore
/* SPDX-License-Identifier: GPL-2.0 */
/* caps: capability checks with their verdict, capset, and the credentials an exec installed with
 * what user space needs to explain why a file's capabilities were or were not applied. Checks are
 * frequent: --denied and --unique are applied here, before anything is written. */
#include "filter.h"

char LICENSE[] SEC("license") = "GPL";

enum caps_kind {
	CAPS_CHECK = 1,
	CAPS_CAPSET,
	CAPS_EXEC,
};
const enum caps_kind *unused_kind __attribute__((unused)); /* its type reaches BTF, and Go */

/* Whether a check was audited: cap_capable's opts (CAP_OPT_NOAUDIT) are seen by fexit only. */
enum caps_audit {
	AUDIT_UNKNOWN,
	AUDIT_YES,
	AUDIT_NO,
};
const enum caps_audit *unused_audit __attribute__((unused));

#define CAP_OPT_NOAUDIT 0x2
#define MNT_NOSUID 0x01
#define PFA_NO_NEW_PRIVS 0
#define UID_NONE 0xffffffff
/* User namespaces followed from the actor's up to the initial one (the kernel allows 32). */
#define USERNS_LEVELS 8
#define UID_EXTENTS 5 /* a map of more extents is kept elsewhere: reported as not read */
#define PATH_LEN 256

struct check_event {
	struct gw_header hdr;
	__s32 cap;
	__s32 ret;        /* 0: allowed, -EPERM: denied */
	__u32 target_ns;  /* the user namespace checked against */
	__u32 own_ns;     /* the actor's user namespace */
	__s32 syscall;    /* the syscall in progress, or -1 */
	enum caps_audit audit;
};

struct cap_sets {
	__u64 effective;
	__u64 permitted;
	__u64 inheritable;
	__u64 ambient;
	__u64 bounding;
};

struct capset_event {
	struct gw_header hdr;
	__s64 ret;
	struct cap_sets old;
	struct cap_sets new;
};

struct uid_extent {
	__u32 first;
	__u32 lower_first;
	__u32 count;
};

struct exec_event {
	struct gw_header hdr;   /* the new program's actor: comm after exec, real uid */
	struct cap_sets caps;   /* the credentials the kernel installed */
	__u32 euid;
	__u32 suid;
	__u64 ino;              /* the file whose capabilities the kernel considered */
	__u32 dev;
	__u32 generation;
	__u32 fs_userns;        /* the user namespace of the file's superblock */
	__u8 mnt_nosuid;        /* the file's mount has MNT_NOSUID */
	__u8 no_new_privs;      /* set on the task at exec */
	__u8 userns_levels;     /* entries used in userns[] and root_kuid[] */
	__u8 extents_read;      /* 0: the actor's uid map has more extents than are copied */
	__u32 userns[USERNS_LEVELS];    /* the actor's user namespace, then its ancestors */
	__u32 root_kuid[USERNS_LEVELS]; /* the host uid that is root in each, or UID_NONE */
	__u32 nr_extents;
	struct uid_extent extents[UID_EXTENTS]; /* the actor's uid map */
	char filename[PATH_LEN];                /* as exec'd */
};

/* Records written with bpf_ringbuf_reserve are typed only by locals: their types reach BTF, and
 * Go, through these. */
const struct check_event *unused_check __attribute__((unused));
const struct capset_event *unused_capset __attribute__((unused));
const struct exec_event *unused_exec __attribute__((unused));

/* Options set from Go before load. */
const volatile bool denied_only = false;
const volatile bool unique = false;

/* --unique: a check is written once per mount namespace (container), capability, verdict and
 * syscall. An LRU map: when full, the oldest keys are forgotten and may be written again. */
struct unique_key {
	__u32 mntns;
	__s32 cap;
	__s32 ret;
	__s32 syscall;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct unique_key);
	__type(value, __u8);
} seen SEC(".maps");

/* --unique: the key each CPU dropped or wrote last, so that a run of one check (a loop) leaves
 * after an array load instead of the LRU map's hash lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct unique_key);
} last_key SEC(".maps");

/* capset calls between entry and exit, by thread id: the sets before the call. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct cap_sets);
} pending SEC(".maps");

/* An exec event is too big for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_event);
} scratch SEC(".maps");

/* kernel_cap_t is a u64 since 6.3 and two u32s before: the same 8 bytes either way. */
static __always_inline __u64 read_cap(const void *p)
{
	__u64 v = 0;
	bpf_probe_read_kernel(&v, sizeof(v), p);
	return v;
}

static __always_inline void read_sets(const struct cred *c, struct cap_sets *s)
{
	s->effective = read_cap(&c->cap_effective);
	s->permitted = read_cap(&c->cap_permitted);
	s->inheritable = read_cap(&c->cap_inheritable);
	s->ambient = read_cap(&c->cap_ambient);
	s->bounding = read_cap(&c->cap_bset);
}

static __always_inline void check(const struct cred *cred, struct user_namespace *target_ns, int cap, int ret,
				  enum caps_audit audit)
{
	if (denied_only && ret == 0)
		return;
	if (!actor_wanted())
		return;
	struct task_struct *task = gw_current();
	struct pt_regs *regs = gw_syscall_regs(task);
	/* Loads, not probe reads, where the kernel allows (bpf_task_pt_regs gives a pointer the
	 * verifier knows): --unique drops most checks right after them. */
	__s32 syscall = !regs			 ? -1
			: gw_has(TASK_PT_REGS) ? (__s32)GW_SYSCALL_NR(LOAD, regs)
					       : (__s32)GW_SYSCALL_NR(BPF_CORE_READ, regs);
	if (unique) {
		struct unique_key k = {.mntns = GW_TASK(task, nsproxy, mnt_ns, ns.inum), .cap = cap, .ret = ret,
				       .syscall = syscall};
		__u32 zero = 0;
		struct unique_key *last = bpf_map_lookup_elem(&last_key, &zero);
		if (last) {
			/* A key of mount namespace 0 (a task past its namespaces) is never cached: the
			 * array starts zeroed. */
			if (k.mntns && last->mntns == k.mntns && last->cap == k.cap && last->ret == k.ret &&
			    last->syscall == k.syscall)
				return;
			*last = k;
		}
		/* A lookup first: an LRU map's update takes a free node under its locks before it looks
		 * for the key, then gives it back. BPF_NOEXIST: of two CPUs racing on a new key, one writes. */
		__u8 one = 1;
		if (bpf_map_lookup_elem(&seen, &k) || bpf_map_update_elem(&seen, &k, &one, BPF_NOEXIST))
			return;
	}
	struct check_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return;
	}
	fill_header(&e->hdr, CAPS_CHECK);
	e->cap = cap;
	e->ret = ret;
	e->target_ns = BPF_CORE_READ(target_ns, ns.inum);
	e->own_ns = BPF_CORE_READ(cred, user_ns, ns.inum);
	e->syscall = syscall;
	e->audit = audit;
	bpf_ringbuf_submit(e, 0);
}

/* 6.1 and 6.12: the function itself, with its options. */
SEC("fexit/cap_capable")
int BPF_PROG(check_fexit, const struct cred *cred, struct user_namespace *ns, int cap, unsigned int opts, int ret)
{
	check(cred, ns, cap, ret, (opts & CAP_OPT_NOAUDIT) ? AUDIT_NO : AUDIT_YES);
	return 0;
}

/* 6.14 and later: the capability:cap_capable tracepoint, which does not carry the options. */
SEC("tp_btf/cap_capable")
int BPF_PROG(check_btf, const struct cred *cred, struct user_namespace *target_ns,
	     const struct user_namespace *capable_ns, int cap, int ret)
{
	check(cred, target_ns, cap, ret, AUDIT_UNKNOWN);
	return 0;
}

/* Where neither attaches (arm64 before 6.12 has no fexit, and no kernel before 6.14 the tracepoint):
 * a kprobe keeps the arguments by thread until the kretprobe has the verdict. */
struct check_args {
	__u64 cred; /* const struct cred *: a map's value cannot hold a typed pointer */
	__u64 ns;   /* struct user_namespace * */
	int cap;
	unsigned int opts;
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct check_args);
} checking SEC(".maps");

SEC("kprobe/cap_capable")
int BPF_KPROBE(check_kprobe, const struct cred *cred, struct user_namespace *ns, int cap, unsigned int opts)
{
	struct check_args a = {.cred = (__u64)cred, .ns = (__u64)ns, .cap = cap, .opts = opts};
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&checking, &tid, &a, BPF_ANY))
		count_table_full();
	return 0;
}

SEC("kretprobe/cap_capable")
int BPF_KRETPROBE(check_kretprobe, int ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct check_args *a = bpf_map_lookup_elem(&checking, &tid);
	if (!a)
		return 0;
	check((const struct cred *)a->cred, (struct user_namespace *)a->ns, a->cap, ret, (a->opts & CAP_OPT_NOAUDIT) ? AUDIT_NO : AUDIT_YES);
	bpf_map_delete_elem(&checking, &tid);
	return 0;
}

/* 6.1 and 6.12: the LSM's capset, with both credentials, without enabling syscall tracepoints
 * (which put every syscall of the node on the slow path). A capset refused before the LSM is
 * asked (bad header, bad pointer) is not seen. */
SEC("fexit/cap_capset")
int BPF_PROG(capset_fexit, struct cred *new, const struct cred *old, const kernel_cap_t *effective,
	     const kernel_cap_t *inheritable, const kernel_cap_t *permitted, int ret)
{
	if (!actor_wanted())
		return 0;
	struct capset_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	fill_header(&e->hdr, CAPS_CAPSET);
	e->ret = ret;
	read_sets(old, &e->old);
	read_sets(new, &e->new);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* Elsewhere: the syscall's tracepoints, with the credentials read at both ends. */
SEC("tracepoint/syscalls/sys_enter_capset")
int capset_enter(void *ctx)
{
	if (!actor_wanted())
		return 0;
	struct task_struct *task = gw_current();
	struct cap_sets old = {};
	read_sets(GW_TASK(task, cred), &old);
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&pending, &tid, &old, BPF_ANY))
		count_table_full();
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_capset")
int capset_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct cap_sets *old = bpf_map_lookup_elem(&pending, &tid);
	if (!old)
		return 0;
	struct capset_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		fill_header(&e->hdr, CAPS_CAPSET);
		e->ret = ctx->ret;
		e->old = *old;
		struct task_struct *task = gw_current();
		read_sets(GW_TASK(task, cred), &e->new);
		bpf_ringbuf_submit(e, 0);
	} else {
		count_lost();
	}
	bpf_map_delete_elem(&pending, &tid);
	return 0;
}

/* The host uid that is root in a user namespace: the lower end of the extent that starts at 0. */
static __always_inline __u32 root_kuid(struct user_namespace *ns)
{
	__u32 n = BPF_CORE_READ(ns, uid_map.nr_extents);
	if (n > UID_EXTENTS)
		return UID_NONE; /* not read: see extents_read */
	for (int i = 0; i < UID_EXTENTS; i++) {
		if (i >= n)
			break;
		if (BPF_CORE_READ(ns, uid_map.extent[i].first) == 0)
			return BPF_CORE_READ(ns, uid_map.extent[i].lower_first);
	}
	return UID_NONE;
}

static __always_inline void exec(struct linux_binprm *bprm)
{
	if (!actor_wanted())
		return;
	__u32 zero = 0;
	struct exec_event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return;
	__builtin_memset(e, 0, sizeof(*e));
	fill_header(&e->hdr, CAPS_EXEC);
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	const struct cred *cred = BPF_CORE_READ(task, cred);
	read_sets(cred, &e->caps);
	e->euid = BPF_CORE_READ(cred, euid.val);
	e->suid = BPF_CORE_READ(cred, suid.val);
	e->no_new_privs = (BPF_CORE_READ(task, atomic_flags) >> PFA_NO_NEW_PRIVS) & 1;

	struct file *file = BPF_CORE_READ(bprm, file);
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	e->ino = BPF_CORE_READ(inode, i_ino);
	e->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	e->generation = BPF_CORE_READ(inode, i_generation);
	e->fs_userns = BPF_CORE_READ(inode, i_sb, s_user_ns, ns.inum);
	e->mnt_nosuid = (BPF_CORE_READ(file, f_path.mnt, mnt_flags) & MNT_NOSUID) != 0;
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));

	struct user_namespace *ns = BPF_CORE_READ(cred, user_ns);
	__u32 n = BPF_CORE_READ(ns, uid_map.nr_extents);
	e->nr_extents = n;
	e->extents_read = n <= UID_EXTENTS;
	if (n <= UID_EXTENTS)
		bpf_probe_read_kernel(e->extents, sizeof(e->extents), &ns->uid_map.extent);
	for (int i = 0; i < USERNS_LEVELS; i++) {
		if (!ns)
			break;
		e->userns[i] = BPF_CORE_READ(ns, ns.inum);
		e->root_kuid[i] = root_kuid(ns);
		e->userns_levels = i + 1;
		ns = BPF_CORE_READ(ns, parent);
	}
	if (bpf_ringbuf_output(&events, e, sizeof(*e), 0))
		count_lost();
}

/* After the new credentials are installed (begin_new_exec), with the binprm. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_btf, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	exec(bprm);
	return 0;
}
