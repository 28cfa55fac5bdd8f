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

/* Kernel features the programs use where the kernel has them and do without otherwise: a bit each
 * in gw_lacks (compat.h), set before load. The Go constants are generated; tracer/kernel probes
 * them and names what each costs. */
enum gw_lacks {
	GW_LACKS_TASK_BTF = 1 << 0,     /* bpf_get_current_task_btf, 5.11 */
	GW_LACKS_TASK_PT_REGS = 1 << 1, /* bpf_task_pt_regs, 5.15 */
	GW_LACKS_RDONLY_CAST = 1 << 2,  /* the bpf_rdonly_cast kfunc, 6.2 */
};

/* Why events were lost in the kernel: each cause's per-CPU count is at its index in the lost map
 * (common.h). The Go constants are generated. */
enum gw_lost {
	GW_LOST_RING,      /* the ring buffer had no room for an event */
	GW_LOST_TABLE,     /* a table had no room for a call in flight or a process to follow: its
			    * events are not written */
	GW_LOST_FORGOTTEN, /* a table had no room for what a gadget remembers: later events are
			    * written without it (a cause, a then, a namespace's count) */
	GW_LOST_CAUSES,
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

