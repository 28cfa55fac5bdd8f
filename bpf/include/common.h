/* SPDX-License-Identifier: GPL-2.0 */
/* What every gadget shares: the event header and the ring buffer with its drop counter. Each
 * gadget object includes this once, so each gets its own maps. Gadgets that filter by actor
 * include filter.h instead. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "header.h"
#include "compat.h"
#include "ns.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/* Events that could not be delivered, per CPU, by cause (enum gw_lost). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GW_LOST_CAUSES);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

static __always_inline void count_lost_as(__u32 cause)
{
	__u64 *n = bpf_map_lookup_elem(&lost, &cause);
	if (n)
		*n += 1; /* per-CPU slot: no atomics needed */
}

/* An event the ring buffer had no room for. */
static __always_inline void count_lost(void) { count_lost_as(GW_LOST_RING); }

/* A call in flight, or a process to follow, that its table had no room for: its events will not
 * be written. */
static __always_inline void count_table_full(void) { count_lost_as(GW_LOST_TABLE); }

/* err, if not 0, is a table refusing what the gadget remembers: later events are written without
 * what it would have held. */
static __always_inline void count_refused(long err)
{
	if (err)
		count_lost_as(GW_LOST_FORGOTTEN);
}

/* Fill the header of an event of the given kind (a value of the gadget's kind enum). Loads through
 * the current task's BTF pointer where the kernel has one, not helpers: this runs for every event. */
static __always_inline void fill_header(struct gw_header *h, __u32 kind)
{
	struct task_struct *task = gw_current();
	h->ts_boot_ns = bpf_ktime_get_boot_ns();
	h->pid = GW_TASK(task, tgid);
	h->tid = GW_TASK(task, pid);
	h->ppid = GW_TASK(task, real_parent, tgid);
	h->uid = GW_TASK(task, cred, uid.val);
	h->gid = GW_TASK(task, cred, gid.val);
	current_ns(h->ns);
	h->cgroup_id = GW_TASK(task, cgroups, dfl_cgrp, kn, id);
	if (gw_has(TASK_BTF))
		__builtin_memcpy(h->comm, task->comm, sizeof(h->comm));
	else
		bpf_get_current_comm(h->comm, sizeof(h->comm));
	h->kind = kind;
}

/* fill_header for a task other than the current one (a victim, a target), read with helpers: its
 * pointer may be one the verifier does not let programs load through. For rare events only. */
static __always_inline void fill_task_header(struct gw_header *h, struct task_struct *t, __u32 kind)
{
	h->ts_boot_ns = bpf_ktime_get_boot_ns();
	h->pid = BPF_CORE_READ(t, tgid);
	h->tid = BPF_CORE_READ(t, pid);
	h->ppid = BPF_CORE_READ(t, real_parent, tgid);
	h->uid = BPF_CORE_READ(t, cred, uid.val);
	h->gid = BPF_CORE_READ(t, cred, gid.val);
	task_ns(t, h->ns);
	h->cgroup_id = BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
	bpf_core_read(h->comm, sizeof(h->comm), &t->comm);
	h->kind = kind;
}
