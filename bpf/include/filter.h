/* SPDX-License-Identifier: GPL-2.0 */
/* The actor filter (--pid, --comm, --container, --host), for gadgets whose events have an actor
 * worth filtering. User space refuses a filter for an object without these variables. */
#pragma once

#include "common.h"

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

static __always_inline __u32 current_mntns(void)
{
	struct task_struct *task = gw_current();
	return GW_TASK(task, nsproxy, mnt_ns, ns.inum);
}

static __always_inline bool mntns_wanted(__u32 mntns)
{
	bool listed = bpf_map_lookup_elem(&filter_mntns, &mntns) != NULL;
	return listed == (filter_mntns_mode == FILTER_MNTNS_ONLY);
}

static __always_inline bool comm_wanted(const char *comm)
{
	for (int i = 0; i < TASK_COMM_LEN; i++) {
		if (comm[i] != filter_comm[i])
			return false;
		if (!comm[i])
			break;
	}
	return true;
}

/* True when the current task passes the actor filters set from user space. */
static __always_inline bool actor_wanted(void)
{
	if (filter_mntns_mode != FILTER_MNTNS_OFF && !mntns_wanted(current_mntns()))
		return false;
	if (filter_tgid && (bpf_get_current_pid_tgid() >> 32) != filter_tgid)
		return false;
	if (filter_comm[0]) {
		char copy[TASK_COMM_LEN];
		const char *comm = copy;
		if (gw_has(TASK_BTF))
			comm = bpf_get_current_task_btf()->comm;
		else
			bpf_get_current_comm(copy, sizeof(copy));
		if (!comm_wanted(comm))
			return false;
	}
	return true;
}

/* True when the task a filled header describes passes the actor filters: for gadgets whose actor
 * is not the current task (an OOM victim). */
static __always_inline bool header_wanted(const struct gw_header *h)
{
	if (filter_mntns_mode != FILTER_MNTNS_OFF && !mntns_wanted(h->ns[GW_NS_MNT]))
		return false;
	if (filter_tgid && h->pid != filter_tgid)
		return false;
	if (filter_comm[0] && !comm_wanted(h->comm))
		return false;
	return true;
}
