/* SPDX-License-Identifier: GPL-2.0 */
/* Types every gadget's events share. Their Go types are generated once, into gen/header; each
 * gadget's generated copy of struct gw_header is read as that type, which the shared gadget tests
 * check field by field (names, offsets, sizes) for every registered gadget. */
#pragma once

/* Index of a namespace type in the per-type arrays of events. The Go constants are generated. */
enum gw_ns {
	GW_NS_MNT,
	GW_NS_NET,
	GW_NS_PID,
	GW_NS_USER,
	GW_NS_UTS,
	GW_NS_IPC,
	GW_NS_CGROUP,
	GW_NS_TIME,
	GW_NS_COUNT,
};

/* How filter_mntns is applied (see common.h). */
enum mntns_filter {
	FILTER_MNTNS_OFF,
	FILTER_MNTNS_ONLY,
	FILTER_MNTNS_EXCEPT,
};

#define TASK_COMM_LEN 16

/* Filled in the kernel for every event; its Go type is generated into gen/header. */
struct gw_header {
	__u64 ts_boot_ns; /* bpf_ktime_get_boot_ns(): converted to wall-clock time in Go */
	__u64 cgroup_id;  /* cgroup v2 id of the actor */
	__u32 pid;        /* tgid, as seen from the host */
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	__u32 ns[GW_NS_COUNT]; /* the actor's namespace inodes, indexed by enum gw_ns */
	char comm[TASK_COMM_LEN];
	__u32 kind; /* which event follows the header: a value of the gadget's own kind enum, from 1 */
};

