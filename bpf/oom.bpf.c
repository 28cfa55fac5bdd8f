//go:build ignore
/* SPDX-License-Identifier: GPL-2.0 */
/* oom: each OOM kill, with its victim (the event's actor), the task whose allocation ran out of
 * memory, the memory cgroup whose limit was hit (or the victim's, for a kill the whole machine
 * needed) with its usage and limit, and the victim's memory. OOM kills are rare: everything is
 * read with helpers, and nothing runs at any other time. */
#include "filter.h"
#include "cgroup.h"

char LICENSE[] SEC("license") = "GPL";

enum oom_kind {
	OOM_KILLED = 1,
};
const enum oom_kind *unused_kind __attribute__((unused)); /* its type reaches BTF, and Go */

/* Where the constraint of a kill was read. */
enum oom_seen {
	SEEN_OOM_CONTROL = 1, /* the kernel's own oom_control, at oom_kill_process */
	SEEN_MEMCG_LOCK,      /* the highest memcg above the victim holding the memcg OOM lock */
	SEEN_MEMCG_FULL,      /* the nearest memcg above the victim whose usage is at its limit */
	SEEN_NONE,            /* no memcg above the victim was at its limit or locked: the machine's */
};
const enum oom_seen *unused_seen __attribute__((unused));

/* The kernel's enum oom_constraint, plus one: 0 stays "not read". */
enum oom_constraint_kind {
	CONSTRAINT_KIND_GLOBAL = 1,
	CONSTRAINT_KIND_CPUSET,
	CONSTRAINT_KIND_MEMPOLICY,
	CONSTRAINT_KIND_MEMCG,
};
const enum oom_constraint_kind *unused_constraint __attribute__((unused));

/* Within this many pages of its limit a memcg counts as full: a charge that fails and is not
 * reclaimed asks for at most a batch (MEMCG_CHARGE_BATCH, 64 pages). */
#define FULL_MARGIN 64
#define MEMCG_DEPTH 8

struct oom_event {
	struct gw_header hdr;     /* the victim */
	struct gw_header trigger; /* the task whose allocation failed (the current task) */
	struct cgroup_path memcg; /* the memcg whose limit was hit; for another constraint, the victim's */
	__u64 usage;              /* its memory counter, in pages */
	__u64 limit;              /* its limit, in pages (PAGE_COUNTER_MAX: none) */
	__u64 memsw_usage;        /* cgroup v1 memory+swap (v2: swap) counter, in pages */
	__u64 memsw_limit;
	__u64 total_vm;           /* the victim's memory, in pages */
	__u64 anon_rss;
	__u64 file_rss;
	__u64 shmem_rss;
	__u64 swapents;
	__u64 pgtables_bytes;
	__u64 totalpages;         /* what the kill was constrained to, in pages (oom_control only) */
	__s64 points;             /* the victim's badness (oom_control only) */
	__u32 gfp_mask;           /* the failed allocation (oom_control only) */
	__s32 order;
	enum oom_constraint_kind constraint;
	enum oom_seen seen;
	__s16 oom_score_adj;
	__u8 memcg_at_limit;      /* the memcg's usage was within FULL_MARGIN pages of its limit */
	__u8 pad[5];
};
const struct oom_event *unused_event __attribute__((unused));

/* struct mm_struct before 6.2: rss counters were atomics. */
struct mm_struct___atomic {
	struct mm_rss_stat rss_stat;
} __attribute__((preserve_access_index));

/* Since 6.2: per-CPU counters, whose count is what the kernel itself reports on a kill. */
struct mm_struct___pcpu {
	struct percpu_counter rss_stat[4];
} __attribute__((preserve_access_index));

#define MM_COUNTER(mm, i)                                                                   \
	(bpf_core_type_exists(struct mm_rss_stat) ?                                         \
		 BPF_CORE_READ((struct mm_struct___atomic *)(mm), rss_stat.count[i].counter) : \
		 BPF_CORE_READ((struct mm_struct___pcpu *)(mm), rss_stat[i].count))

/* mem_cgroup.oom_lock exists while the kernel has cgroup v1 memory code. */
struct mem_cgroup___v1 {
	bool oom_lock;
} __attribute__((preserve_access_index));

static __always_inline struct mem_cgroup *task_memcg(struct task_struct *t)
{
	struct cgroup_subsys_state *css = NULL;
	struct css_set *cs = BPF_CORE_READ(t, cgroups);
	int id = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
	bpf_core_read(&css, sizeof(css), &cs->subsys[id & 15]);
	return (void *)css - bpf_core_field_offset(struct mem_cgroup, css);
}

static __always_inline struct mem_cgroup *memcg_parent(struct mem_cgroup *m)
{
	struct cgroup_subsys_state *css = BPF_CORE_READ(m, css.parent);
	if (!css)
		return NULL;
	return (void *)css - bpf_core_field_offset(struct mem_cgroup, css);
}

static __always_inline bool memcg_full(struct mem_cgroup *m)
{
	__u64 usage = BPF_CORE_READ(m, memory.usage.counter);
	return usage + FULL_MARGIN >= BPF_CORE_READ(m, memory.max);
}

/* Which memcg's limit a kill was for, when the kernel's oom_control cannot be read: the memcg OOM
 * path locks the memcg it runs for and its descendants while it kills, so the highest locked one
 * above the victim is that memcg (cgroup v1, and v2 before 6.11); else the nearest one at its
 * limit; else none: the machine's memory. */
static __always_inline struct mem_cgroup *infer_memcg(struct mem_cgroup *m, struct oom_event *e)
{
	struct mem_cgroup *locked = NULL, *full = NULL;
	for (int i = 0; i < MEMCG_DEPTH && m; i++) {
		if (bpf_core_field_exists(((struct mem_cgroup___v1 *)0)->oom_lock) &&
		    BPF_CORE_READ((struct mem_cgroup___v1 *)m, oom_lock))
			locked = m;
		if (!full && memcg_full(m))
			full = m;
		m = memcg_parent(m);
	}
	if (locked) {
		e->seen = SEEN_MEMCG_LOCK;
		return locked;
	}
	if (full) {
		e->seen = SEEN_MEMCG_FULL;
		return full;
	}
	e->seen = SEEN_NONE;
	return NULL;
}

/* Writes the event of a kill of victim; oc is the kernel's oom_control where it can be read. */
static __always_inline void kill(struct task_struct *victim, struct oom_control *oc)
{
	struct oom_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return;
	}
	fill_task_header(&e->hdr, victim, OOM_KILLED);
	if (!header_wanted(&e->hdr)) {
		bpf_ringbuf_discard(e, 0);
		return;
	}
	fill_header(&e->trigger, OOM_KILLED);

	struct mem_cgroup *own = task_memcg(victim), *memcg;
	if (oc) {
		e->seen = SEEN_OOM_CONTROL;
		e->constraint = BPF_CORE_READ(oc, constraint) + 1;
		e->totalpages = BPF_CORE_READ(oc, totalpages);
		e->points = BPF_CORE_READ(oc, chosen_points);
		e->gfp_mask = BPF_CORE_READ(oc, gfp_mask);
		e->order = BPF_CORE_READ(oc, order);
		memcg = BPF_CORE_READ(oc, memcg);
	} else {
		e->order = -1;
		memcg = infer_memcg(own, e);
		e->constraint = memcg ? CONSTRAINT_KIND_MEMCG : CONSTRAINT_KIND_GLOBAL;
	}
	if (!memcg)
		memcg = own;
	read_cgroup_path(BPF_CORE_READ(memcg, css.cgroup, kn), &e->memcg);
	e->usage = BPF_CORE_READ(memcg, memory.usage.counter);
	e->limit = BPF_CORE_READ(memcg, memory.max);
	e->memsw_usage = BPF_CORE_READ(memcg, memsw.usage.counter);
	e->memsw_limit = BPF_CORE_READ(memcg, memsw.max);
	e->memcg_at_limit = e->usage + FULL_MARGIN >= e->limit;

	struct mm_struct *mm = BPF_CORE_READ(victim, mm);
	if (mm) { /* NULL once the victim is exiting */
		e->total_vm = BPF_CORE_READ(mm, total_vm);
		e->file_rss = MM_COUNTER(mm, 0);   /* MM_FILEPAGES */
		e->anon_rss = MM_COUNTER(mm, 1);   /* MM_ANONPAGES */
		e->swapents = MM_COUNTER(mm, 2);   /* MM_SWAPENTS */
		e->shmem_rss = MM_COUNTER(mm, 3);  /* MM_SHMEMPAGES */
		e->pgtables_bytes = BPF_CORE_READ(mm, pgtables_bytes.counter);
	}
	e->oom_score_adj = BPF_CORE_READ(victim, signal, oom_score_adj);
	bpf_ringbuf_submit(e, 0);
}

/* The kernel's decision, with its oom_control: the constraint, the memcg, the badness. */
SEC("fentry/oom_kill_process")
int BPF_PROG(kill_fentry, struct oom_control *oc, const char *message)
{
	kill(BPF_CORE_READ(oc, chosen), oc);
	return 0;
}

SEC("kprobe/oom_kill_process")
int BPF_KPROBE(kill_kprobe, struct oom_control *oc)
{
	kill(BPF_CORE_READ(oc, chosen), oc);
	return 0;
}

/* Each victim marked, after its SIGKILL: the constraint is inferred (infer_memcg). */
SEC("tp_btf/mark_victim")
int BPF_PROG(kill_mark_victim, struct task_struct *victim, uid_t uid)
{
	kill(victim, NULL);
	return 0;
}
