/* SPDX-License-Identifier: GPL-2.0 */
/* What every gadget shares: the event header, the ring buffer with its drop counter, and the
 * actor filter. Each gadget object includes this once, so each gets its own maps. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "header.h"
#include "ns.h"

/* Set from Go before load (spec.Variables); zero means "no filter". */
const volatile __u32 filter_tgid = 0;
const volatile char filter_comm[TASK_COMM_LEN] = {};

/* Container filter: mount namespaces listed in filter_mntns are the only ones wanted
 * (FILTER_MNTNS_ONLY, for --container/--pod) or the ones not wanted (FILTER_MNTNS_EXCEPT, for
 * --host). User space keeps the map current as containers come and go. */
const volatile enum mntns_filter filter_mntns_mode = FILTER_MNTNS_OFF;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} filter_mntns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/* Events that could not be delivered (ring buffer full, pending table full), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost, &zero);
	if (n)
		*n += 1; /* per-CPU slot: no atomics needed */
}

static __always_inline __u32 current_mntns(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	return BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
}

/* True when the current task passes the actor filters set from user space. */
static __always_inline bool actor_wanted(void)
{
	if (filter_mntns_mode != FILTER_MNTNS_OFF) {
		__u32 mntns = current_mntns();
		bool listed = bpf_map_lookup_elem(&filter_mntns, &mntns) != NULL;
		if (listed != (filter_mntns_mode == FILTER_MNTNS_ONLY))
			return false;
	}
	if (filter_tgid && (bpf_get_current_pid_tgid() >> 32) != filter_tgid)
		return false;
	if (filter_comm[0]) {
		char comm[TASK_COMM_LEN];
		bpf_get_current_comm(comm, sizeof(comm));
		for (int i = 0; i < TASK_COMM_LEN; i++) {
			if (comm[i] != filter_comm[i])
				return false;
			if (!comm[i])
				break;
		}
	}
	return true;
}

static __always_inline void fill_header(struct gw_header *h)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();

	h->ts_boot_ns = bpf_ktime_get_boot_ns();
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->ppid = BPF_CORE_READ(task, real_parent, tgid);
	h->uid = (__u32)uid_gid;
	h->gid = uid_gid >> 32;
	task_ns(task, h->ns);
	h->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}
