//go:build ignore
/* SPDX-License-Identifier: GPL-2.0 */
/* devices: writes of cgroup v1 device rules with the kernel's rule lists before and after, attach
 * and detach of cgroup v2 device programs, and device accesses refused with EPERM. Rule writes
 * and program changes are rare; the hooks that see them run on every write (or bpf) syscall and
 * must drop the others after as few loads as possible. */
#include "common.h"
#include "cgroup.h"

char LICENSE[] SEC("license") = "GPL";

enum devices_kind {
	DEVICES_RULE = 1,
	DEVICES_PROGRAM,
	DEVICES_DENIED,
};
const enum devices_kind *unused_kind __attribute__((unused)); /* its type reaches BTF, and Go */

/* How a denial is known to come from the device cgroup. */
enum denied_by {
	DENIED_BY_KERNEL = 1, /* devcgroup_check_permission returned an error: the device is in the event */
	DENIED_BY_SYSCALL,    /* open or mknod returned -EPERM: user space finds the device and decides */
};
const enum denied_by *unused_by __attribute__((unused));

/* What the kernel found at the path of an open refused with -EPERM (DENIED_BY_SYSCALL). */
enum denied_node {
	NODE_UNKNOWN = 0, /* not looked up in the kernel, or not found there: user space tries */
	NODE_DEVICE,      /* a device node: type, major and minor are in the event */
};
const enum denied_node *unused_node __attribute__((unused));

#define EPERM 1
#define CGROUP_SUPER_MAGIC 0x27e0eb
#define CGROUP2_SUPER_MAGIC 0x63677270
#define S_IFMT 00170000
#define S_IFCHR 0020000
#define S_IFBLK 0060000
#define S_IFDIR 0040000
#define S_IFLNK 0120000
#define DEVCG_DEV_BLOCK 1
#define DEVCG_DEV_CHAR 2
#define CAP_MKNOD 27
#define BPF_F_REPLACE_FLAG (1U << 2)

/* A no-op at run time (the verifier turns it into a move), 6.2+: loads through its result are
 * direct, where a probe read would be a helper call each. Weak: called only where gw_has(RDONLY_CAST). */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

#define MAX_EXCEPTIONS 32
#define RULE_LEN 64
#define PATH_LEN 256

/* One entry of a cgroup's exception list (struct dev_exception_item). */
struct devcg_exception {
	__u32 major; /* ~0: any */
	__u32 minor;
	__u16 type;   /* DEVCG_DEV_BLOCK 1, CHAR 2, ALL 4 */
	__u16 access; /* DEVCG_ACC_MKNOD 1, READ 2, WRITE 4 */
};

/* A v1 device cgroup's rules as the kernel holds them: the default, and the exceptions to it. */
struct devcg_state {
	__u32 behavior; /* enum devcg_behavior: 1 allow by default, 2 deny by default, 0 not read */
	__u32 count;    /* entries in ex[]; MAX_EXCEPTIONS + 1: the list is longer than ex[] */
	struct devcg_exception ex[MAX_EXCEPTIONS];
};

struct rule_event {
	struct gw_header hdr;
	struct cgroup_path cgroup;
	__s64 ret;
	__u32 len;   /* bytes written */
	__u32 allow; /* devices.allow (1) or devices.deny (0) */
	char rule[RULE_LEN];
	struct devcg_state before;
	struct devcg_state after;
};

struct program_event {
	struct gw_header hdr;
	struct cgroup_path cgroup;
	__s64 ret;
	__u32 cmd;        /* BPF_PROG_ATTACH, BPF_PROG_DETACH or BPF_LINK_CREATE */
	__u32 flags;      /* attach flags */
	__u32 prog_id;    /* the program attached or detached; 0 when none was named */
	__u32 replace_id; /* with BPF_F_REPLACE: the program replaced */
};

struct denied_event {
	struct gw_header hdr;
	struct cgroup_path devcg; /* the actor's v1 device cgroup; id 0 without one */
	enum denied_by by;
	__s32 syscall;
	__s32 dirfd;   /* openat's, or AT_FDCWD */
	__u32 flags;   /* open's flags, or mknod's mode */
	__u32 dev;     /* mknod's device, as the syscall took it */
	__u32 type;    /* DENIED_BY_KERNEL: what devcgroup_check_permission was asked */
	__u32 major;
	__u32 minor;
	__u32 access;
	__u32 cap_mknod; /* the actor had CAP_MKNOD in the initial user namespace (mknod checks it first) */
	enum denied_node node;
	char path[PATH_LEN];
};

const struct rule_event *unused_rule __attribute__((unused));
const struct program_event *unused_program __attribute__((unused));
const struct denied_event *unused_denied __attribute__((unused));

/* Events being built between a syscall's (or function's) entry and its exit, by thread id. */
struct pending_rule {
	struct rule_event ev;
	__u64 devcg; /* the struct dev_cgroup, to read the rules after: a cgroup outlives writes to its files */
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct pending_rule);
} pending_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct program_event);
} pending_programs SEC(".maps");

/* Rule writes between entry and exit on the whole node: the exit hook of every write looks in
 * pending_rules only when this is not 0. */
__u32 rules_in_flight = 0;

/* Events too big for the BPF stack are built here. They are not zeroed (too big for memset):
 * every member is set, and arrays are read up to the lengths set beside them. */
union scratch {
	struct pending_rule rule;
	struct program_event program;
	struct denied_event denied;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, union scratch);
} scratch SEC(".maps");

static __always_inline void *scratch_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch, &zero);
}

/* The device cgroup of a v1 cgroup directory (its kernfs node's priv is the struct cgroup). */
static __always_inline struct dev_cgroup *dir_devcg(struct kernfs_node *dir)
{
	if (!bpf_core_enum_value_exists(enum cgroup_subsys_id, devices_cgrp_id))
		return NULL;
	struct cgroup *cg = BPF_CORE_READ(dir, priv);
	struct cgroup_subsys_state *css = NULL;
	bpf_core_read(&css, sizeof(css), &cg->subsys[bpf_core_enum_value(enum cgroup_subsys_id, devices_cgrp_id)]);
	return (struct dev_cgroup *)css; /* css is its first member */
}

/* A device cgroup's behaviour and exception list, walked as the kernel keeps it. */
static __always_inline void read_state(struct dev_cgroup *devcg, struct devcg_state *s)
{
	s->behavior = 0;
	s->count = 0;
	if (!devcg)
		return;
	s->behavior = BPF_CORE_READ(devcg, behavior);
	struct list_head *head = &devcg->exceptions;
	struct list_head *pos = BPF_CORE_READ(devcg, exceptions.next);
	__u32 off = bpf_core_field_offset(struct dev_exception_item, list);
	for (int i = 0; i < MAX_EXCEPTIONS; i++) {
		if (pos == head)
			return;
		struct dev_exception_item *item = (void *)pos - off;
		s->ex[i].major = BPF_CORE_READ(item, major);
		s->ex[i].minor = BPF_CORE_READ(item, minor);
		s->ex[i].type = BPF_CORE_READ(item, type);
		s->ex[i].access = BPF_CORE_READ(item, access);
		s->count = i + 1;
		pos = BPF_CORE_READ(pos, next);
	}
	if (pos != head)
		s->count = MAX_EXCEPTIONS + 1;
}

/* The start of a write to a devices.allow or devices.deny file, whose kernfs node is kn: the rule
 * and the rules before, kept until the write returns. buf is user memory on the syscall path. */
static __always_inline void rule_begin(struct kernfs_node *kn, const char *buf, __u64 len, bool user_buf)
{
	char name[16] = {};
	bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(kn, name));
	/* "devices.allow" or "devices.deny" */
	if (name[0] != 'd' || name[1] != 'e' || name[2] != 'v' || name[7] != '.')
		return;
	bool allow = name[8] == 'a' && name[13] == 0;
	bool deny = name[8] == 'd' && name[12] == 0;
	if (!allow && !deny)
		return;
	struct pending_rule *p = scratch_get();
	if (!p)
		return;
	struct rule_event *e = &p->ev;
	fill_header(&e->hdr, DEVICES_RULE);
	struct kernfs_node *dir = kn_parent(kn);
	read_cgroup_path(dir, &e->cgroup);
	e->allow = allow;
	e->len = len;
	e->ret = 0;
	__u64 n = len < RULE_LEN - 1 ? len : RULE_LEN - 1;
	if (user_buf)
		bpf_probe_read_user(e->rule, n & (RULE_LEN - 1), buf);
	else
		bpf_probe_read_kernel(e->rule, n & (RULE_LEN - 1), buf);
	struct dev_cgroup *devcg = dir_devcg(dir);
	p->devcg = (__u64)devcg;
	read_state(devcg, &e->before);
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&pending_rules, &tid, p, BPF_ANY)) {
		count_table_full();
		return;
	}
	__sync_fetch_and_add(&rules_in_flight, 1);
}

/* The end of a rule write: the result and the rules after, then the event. */
static __always_inline void rule_end(__s64 ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct pending_rule *p = bpf_map_lookup_elem(&pending_rules, &tid);
	if (!p)
		return;
	p->ev.ret = ret;
	read_state((struct dev_cgroup *)p->devcg, &p->ev.after);
	if (bpf_ringbuf_output(&events, &p->ev, sizeof(p->ev), 0))
		count_lost();
	bpf_map_delete_elem(&pending_rules, &tid);
	__sync_fetch_and_add(&rules_in_flight, -1);
}

/* 6.1 and 6.12: the kernel's own parser of rule writes, with its copy of the rule. */
SEC("fentry/devcgroup_access_write")
int BPF_PROG(rule_fentry, struct kernfs_open_file *of, char *buf, size_t nbytes, loff_t off)
{
	rule_begin(BPF_CORE_READ(of, kn), buf, nbytes, false);
	return 0;
}

SEC("fexit/devcgroup_access_write")
int BPF_PROG(rule_fexit, struct kernfs_open_file *of, char *buf, size_t nbytes, loff_t off, ssize_t ret)
{
	rule_end(ret);
	return 0;
}

/* Elsewhere: every write(2), dropped unless its file is a cgroup v1 file. */
SEC("tracepoint/syscalls/sys_enter_write")
int rule_enter(struct trace_event_raw_sys_enter *ctx)
{
	/* Every write of the node comes here: direct loads through the task's BTF pointer, one probe
	 * read (the fd array is indexed at run time), then a read-only cast of the file so that the
	 * loads down to the file system's magic are direct too. Kernels without those read it all
	 * with CO-RE probe reads. */
	int fd = ctx->args[0];
	struct inode *inode;
	if (gw_has(TASK_BTF) && gw_has(RDONLY_CAST)) {
		struct fdtable *fdt = bpf_get_current_task_btf()->files->fdt;
		if (fd < 0 || (unsigned int)fd >= fdt->max_fds)
			return 0;
		struct file *f = NULL;
		bpf_probe_read_kernel(&f, sizeof(f), &fdt->fd[fd]);
		if (!f)
			return 0;
		inode = ((struct file *)bpf_rdonly_cast(f, bpf_core_type_id_kernel(struct file)))->f_inode;
		if (inode->i_sb->s_magic != CGROUP_SUPER_MAGIC)
			return 0;
	} else {
		struct file *f = current_fd_file(fd);
		if (!f)
			return 0;
		inode = BPF_CORE_READ(f, f_inode);
		if (BPF_CORE_READ(inode, i_sb, s_magic) != CGROUP_SUPER_MAGIC)
			return 0;
	}
	rule_begin(BPF_CORE_READ(inode, i_private), (const char *)ctx->args[1], ctx->args[2], true);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_write")
int rule_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (rules_in_flight)
		rule_end(ctx->ret);
	return 0;
}

/* bpf() commands and the attach type that change cgroup device programs. */
#define CMD_PROG_ATTACH 8
#define CMD_PROG_DETACH 9
#define CMD_LINK_CREATE 28
#define ATTACH_CGROUP_DEVICE 6

/* The id of the BPF program behind fd, or 0 when fd is not a program. */
static __always_inline __u32 prog_id(int fd)
{
	struct file *f = current_fd_file(fd);
	if (!f)
		return 0;
	char name[9] = {};
	bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(f, f_path.dentry, d_name.name));
	const char want[9] = "bpf-prog";
	for (int i = 0; i < sizeof(want); i++)
		if (name[i] != want[i])
			return 0; /* an anonymous inode of another kind */
	struct bpf_prog *prog = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(prog, aux, id);
}

/* The first members of the bpf_attr of BPF_PROG_ATTACH/DETACH (target, program, attach type,
 * flags, replaced program) and of BPF_LINK_CREATE (program, target, attach type, flags). */
struct attach_attr {
	__u32 a;
	__u32 b;
	__u32 attach_type;
	__u32 flags;
	__u32 replace_fd;
};

/* bpf() is rare: every call is looked at, and those on device programs kept until they return. */
SEC("tracepoint/syscalls/sys_enter_bpf")
int program_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 cmd = ctx->args[0];
	if (cmd != CMD_PROG_ATTACH && cmd != CMD_PROG_DETACH && cmd != CMD_LINK_CREATE)
		return 0;
	struct attach_attr attr = {};
	if (bpf_probe_read_user(&attr, sizeof(attr), (void *)ctx->args[1]) ||
	    attr.attach_type != ATTACH_CGROUP_DEVICE)
		return 0;
	struct program_event *e = scratch_get();
	if (!e)
		return 0;
	fill_header(&e->hdr, DEVICES_PROGRAM);
	e->cgroup.id = 0;
	e->cgroup.depth = 0;
	e->ret = 0;
	e->flags = 0;
	e->replace_id = 0;
	e->cmd = cmd;
	int target = cmd == CMD_LINK_CREATE ? attr.b : attr.a;
	e->prog_id = prog_id(cmd == CMD_LINK_CREATE ? attr.a : attr.b);
	if (cmd != CMD_LINK_CREATE)
		e->flags = attr.flags;
	if (cmd == CMD_PROG_ATTACH && (attr.flags & BPF_F_REPLACE_FLAG))
		e->replace_id = prog_id(attr.replace_fd);
	struct file *f = current_fd_file(target);
	struct inode *inode = BPF_CORE_READ(f, f_inode);
	/* Only a cgroup2 directory's inode holds its kernfs node (a probe may pass another fd). */
	if (f && BPF_CORE_READ(inode, i_sb, s_magic) == CGROUP2_SUPER_MAGIC)
		read_cgroup_path(BPF_CORE_READ(inode, i_private), &e->cgroup);
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&pending_programs, &tid, e, BPF_ANY))
		count_table_full();
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_bpf")
int program_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct program_event *e = bpf_map_lookup_elem(&pending_programs, &tid);
	if (!e)
		return 0;
	e->ret = ctx->ret;
	if (bpf_ringbuf_output(&events, e, sizeof(*e), 0))
		count_lost();
	bpf_map_delete_elem(&pending_programs, &tid);
	return 0;
}

#define AT_FDCWD -100

#define ARG(n) GW_SYSCALL_ARG(BPF_CORE_READ, regs, n)

/* The path and flags of the syscall in progress, from its registers. arm64 has only the *at
 * calls. */
static __always_inline bool syscall_args(struct pt_regs *regs, struct denied_event *e)
{
	long nr = GW_SYSCALL_NR(BPF_CORE_READ, regs);
	const char *path;
	e->syscall = nr;
	e->dirfd = AT_FDCWD;
	e->dev = 0;
	switch (nr) {
#if defined(GW_NR_open)
	case GW_NR_open:
		path = (const char *)ARG(0);
		e->flags = ARG(1);
		break;
	case GW_NR_mknod:
		path = (const char *)ARG(0);
		e->flags = ARG(1);
		e->dev = ARG(2);
		break;
#endif
	case GW_NR_openat:
		e->dirfd = ARG(0);
		path = (const char *)ARG(1);
		e->flags = ARG(2);
		break;
	case GW_NR_openat2: {
		e->dirfd = ARG(0);
		path = (const char *)ARG(1);
		__u64 flags = 0;
		bpf_probe_read_user(&flags, sizeof(flags), (void *)ARG(2)); /* open_how.flags */
		e->flags = flags;
		break;
	}
	case GW_NR_mknodat:
		e->dirfd = ARG(0);
		path = (const char *)ARG(1);
		e->flags = ARG(2);
		e->dev = ARG(3);
		break;
	default:
		return false;
	}
	bpf_probe_read_user_str(e->path, sizeof(e->path), path);
	return true;
}

static __always_inline bool is_mknod(long nr)
{
#if defined(GW_NR_mknod)
	if (nr == GW_NR_mknod)
		return true;
#endif
	return nr == GW_NR_mknodat;
}

/* kernel_cap_t is a u64 since 6.3 and two u32s before: the same 8 bytes either way. */
static __always_inline __u64 read_cap_effective(const struct cred *c)
{
	__u64 v = 0;
	bpf_probe_read_kernel(&v, sizeof(v), &c->cap_effective);
	return v;
}

static __always_inline void denied_output(struct denied_event *e)
{
	struct task_struct *task = gw_current();
	const struct cred *cred = GW_TASK(task, cred);
	e->devcg.id = 0;
	e->devcg.depth = 0;
	e->cap_mknod = (read_cap_effective(cred) >> CAP_MKNOD) & 1 && BPF_CORE_READ(cred, user_ns, level) == 0;
	if (bpf_core_enum_value_exists(enum cgroup_subsys_id, devices_cgrp_id)) {
		struct cgroup_subsys_state *css = NULL;
		struct css_set *cgroups = GW_TASK(task, cgroups);
		bpf_core_read(&css, sizeof(css),
			      &cgroups->subsys[bpf_core_enum_value(enum cgroup_subsys_id, devices_cgrp_id)]);
		struct kernfs_node *kn = BPF_CORE_READ(css, cgroup, kn);
		if (kn)
			read_cgroup_path(kn, &e->devcg);
	}
	if (bpf_ringbuf_output(&events, e, sizeof(*e), 0))
		count_lost();
}

/* 6.1 and 6.12: the device cgroup's own verdict (the v2 programs, then the v1 rules), with the
 * device; the path comes from the syscall's registers. */
SEC("fexit/devcgroup_check_permission")
int BPF_PROG(denied_fexit, short type, __u32 major, __u32 minor, short access, int ret)
{
	if (ret == 0)
		return 0;
	struct denied_event *e = scratch_get();
	if (!e)
		return 0;
	fill_header(&e->hdr, DEVICES_DENIED);
	e->by = DENIED_BY_KERNEL;
	e->node = NODE_DEVICE;
	e->type = type;
	e->major = major;
	e->minor = minor;
	e->access = access;
	struct pt_regs *regs = gw_syscall_regs(gw_current());
	if (!regs || !syscall_args(regs, e)) {
		e->syscall = regs ? GW_SYSCALL_NR(BPF_CORE_READ, regs) : -1;
		e->dirfd = AT_FDCWD;
		e->flags = 0;
		e->dev = 0;
		e->path[0] = 0;
	}
	denied_output(e);
	return 0;
}

/* Looking a refused open's path up in the dentry cache, where the failed lookup left it, as
 * the open's own task at its exit: the process often exits right after (a failed open ends
 * it), and its files with it, before user space could look. Components of up to WALK_NAME - 1
 * bytes, WALK_DEPTH of them; "." and "..", a mount point or a symbolic link on the way, or a
 * dentry not in the first WALK_CHILDREN of its parent leave it to user space. */
#define WALK_DEPTH 8
#define WALK_NAME 32
#define WALK_CHILDREN 64

/* The state of a walk, in a map so that the verifier keeps no per-byte constants in registers
 * (it would otherwise follow every length of every component as a path of its own). */
struct walk {
	__u32 pos;  /* of the component in the path */
	__u32 len;  /* of the component */
	char term;  /* the byte after it: '/' or 0 */
	union {
		char c[WALK_NAME];
		__u64 w[WALK_NAME / 8];
	} comp, name;
	char tail[WALK_NAME + 1]; /* the path from pos */
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct walk);
} walks SEC(".maps");

/* The children of a dentry are a list up to 6.7 and an hlist since 6.8. */
struct dentry___hlist {
	struct hlist_node d_sib;
	struct hlist_head d_children;
};
struct dentry___list {
	struct list_head d_child;
	struct list_head d_subdirs;
};
/* d_flags' DCACHE_MOUNTED: an enumerator since 6.15 (bit 15), a macro before (bit 16). */
enum dentry_flags___gw {
	DCACHE_MOUNTED___gw = 1,
};

static __always_inline struct dentry *first_child(struct dentry *d)
{
	if (bpf_core_field_exists(((struct dentry___hlist *)0)->d_children)) {
		struct hlist_node *n = BPF_CORE_READ((struct dentry___hlist *)d, d_children.first);
		return n ? (void *)n - bpf_core_field_offset(struct dentry___hlist, d_sib) : NULL;
	}
	struct list_head *n = BPF_CORE_READ((struct dentry___list *)d, d_subdirs.next);
	if (n == (void *)d + bpf_core_field_offset(struct dentry___list, d_subdirs))
		return NULL;
	return (void *)n - bpf_core_field_offset(struct dentry___list, d_child);
}

static __always_inline struct dentry *next_child(struct dentry *parent, struct dentry *d)
{
	if (bpf_core_field_exists(((struct dentry___hlist *)0)->d_sib)) {
		struct hlist_node *n = BPF_CORE_READ((struct dentry___hlist *)d, d_sib.next);
		return n ? (void *)n - bpf_core_field_offset(struct dentry___hlist, d_sib) : NULL;
	}
	struct list_head *n = BPF_CORE_READ((struct dentry___list *)d, d_child.next);
	if (n == (void *)parent + bpf_core_field_offset(struct dentry___list, d_subdirs))
		return NULL;
	return (void *)n - bpf_core_field_offset(struct dentry___list, d_child);
}

/* The component at w->pos of e->path, into w->comp (zero-padded), w->len and w->term; false when
 * it is empty or too long. */
static __always_inline bool walk_component(struct walk *w, struct denied_event *e)
{
	__builtin_memset(&w->comp, 0, sizeof(w->comp));
	__builtin_memset(w->tail, 0, sizeof(w->tail));
	if (w->pos >= PATH_LEN)
		return false;
	bpf_probe_read_kernel_str(w->tail, sizeof(w->tail), &e->path[w->pos & (PATH_LEN - 1)]);
	w->term = 1; /* none found: too long */
	for (int i = 0; i < WALK_NAME; i++) {
		char c = w->tail[i];
		if (c == '/' || c == 0) {
			w->term = c;
			w->len = i;
			break;
		}
		w->comp.c[i] = c;
	}
	if (w->term == 1 || w->len == 0)
		return false;
	if (w->comp.c[0] == '.' && (w->len == 1 || (w->len == 2 && w->comp.c[1] == '.')))
		return false;
	return true;
}

/* The child of dir named w->comp, or NULL. */
static __always_inline struct dentry *walk_child(struct walk *w, struct dentry *dir)
{
	struct dentry *d = first_child(dir);
	for (int i = 0; i < WALK_CHILDREN && d; i++) {
		if (BPF_CORE_READ(d, d_name.len) == w->len) {
			__builtin_memset(&w->name, 0, sizeof(w->name));
			bpf_probe_read_kernel_str(w->name.c, sizeof(w->name.c), BPF_CORE_READ(d, d_name.name));
			if (w->name.w[0] == w->comp.w[0] && w->name.w[1] == w->comp.w[1] &&
			    w->name.w[2] == w->comp.w[2] && w->name.w[3] == w->comp.w[3])
				return d;
		}
		d = next_child(dir, d);
	}
	return NULL;
}

/* Finds the node an open named; false: it is in the cache and no device node (no denial of the
 * device cgroup's, nothing to send). */
static __always_inline bool walk_path(struct denied_event *e)
{
	__u32 zero = 0;
	struct walk *w = bpf_map_lookup_elem(&walks, &zero);
	if (!w)
		return true;
	struct task_struct *task = gw_current();
	struct dentry *d;
	w->pos = 0;
	if (e->path[0] == '/') {
		d = BPF_CORE_READ(task, fs, root.dentry);
		w->pos = 1;
	} else if (e->dirfd == AT_FDCWD) {
		d = BPF_CORE_READ(task, fs, pwd.dentry);
	} else {
		struct file *f = current_fd_file(e->dirfd);
		if (!f)
			return true;
		d = BPF_CORE_READ(f, f_path.dentry);
	}
	__u32 mounted = 0x10000;
	if (bpf_core_enum_value_exists(enum dentry_flags___gw, DCACHE_MOUNTED___gw))
		mounted = bpf_core_enum_value(enum dentry_flags___gw, DCACHE_MOUNTED___gw);
	for (int depth = 0; depth < WALK_DEPTH && d; depth++) {
		if (!walk_component(w, e))
			return true;
		d = walk_child(w, d);
		if (!d || BPF_CORE_READ(d, d_flags) & mounted)
			return true;
		struct inode *inode = BPF_CORE_READ(d, d_inode);
		if (!inode)
			return true;
		__u32 type = BPF_CORE_READ(inode, i_mode) & S_IFMT;
		if (w->term == 0) {
			if (type != S_IFCHR && type != S_IFBLK)
				return type == S_IFLNK; /* a link is followed by the open: left to user space */
			__u32 rdev = BPF_CORE_READ(inode, i_rdev);
			e->node = NODE_DEVICE;
			e->type = type == S_IFBLK ? DEVCG_DEV_BLOCK : DEVCG_DEV_CHAR;
			e->major = rdev >> 20; /* the kernel's dev_t: MINORBITS 20 */
			e->minor = rdev & ((1U << 20) - 1);
			return true;
		}
		if (type != S_IFDIR)
			return true;
		w->pos += w->len + 1;
	}
	return true;
}

/* Elsewhere: every syscall's exit, dropped unless it is an open or mknod that returned -EPERM. */
SEC("tp_btf/sys_exit")
int BPF_PROG(denied_exit, struct pt_regs *regs, long ret)
{
	if (ret != -EPERM)
		return 0;
	struct denied_event *e = scratch_get();
	if (!e)
		return 0;
	if (!syscall_args(regs, e))
		return 0;
	__u32 type = e->flags & S_IFMT;
	if (is_mknod(e->syscall) && type != S_IFCHR && type != S_IFBLK)
		return 0; /* not a device node */
	e->by = DENIED_BY_SYSCALL;
	e->type = e->major = e->minor = e->access = 0;
	e->node = NODE_UNKNOWN;
	if (!is_mknod(e->syscall) && !walk_path(e))
		return 0;
	fill_header(&e->hdr, DEVICES_DENIED);
	denied_output(e);
	return 0;
}
