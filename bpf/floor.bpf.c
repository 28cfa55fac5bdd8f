//go:build ignore
/* SPDX-License-Identifier: GPL-2.0 */
/* Floors for benchmarks (tools/bench): empty programs on the hooks gadgets use, each attached
 * alone, so that a gadget's cost is shown beside the cost of running any program there. Not part
 * of any gadget. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter_btf, struct pt_regs *regs, long id)
{
	return 0;
}

/* The least a program on sys_enter that tells processes apart by their mount namespace can do:
 * reach the current task (a helper call) and load its namespace's inode (three loads). */
const volatile __u32 no_mntns = 0;

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter_mntns, struct pt_regs *regs, long id)
{
	struct task_struct *t = bpf_get_current_task_btf();
	return t->nsproxy->mnt_ns->ns.inum == no_mntns;
}

SEC("tp_btf/cap_capable")
int BPF_PROG(cap_capable_btf, const struct cred *cred, struct user_namespace *target_ns,
	     const struct user_namespace *capable_ns, int cap, int ret)
{
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit_btf, struct pt_regs *regs, long ret)
{
	return 0;
}

/* Attached (by the bench) to each syscall tracepoint a gadget uses: any tracepoint takes it. */
SEC("tracepoint/syscalls/sys_enter_write")
int syscall_tp(void *ctx)
{
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(floor_fork, struct task_struct *parent, struct task_struct *child)
{
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(floor_exit, struct task_struct *task)
{
	return 0;
}

SEC("tp_btf/mark_victim")
int BPF_PROG(floor_mark_victim, struct task_struct *task, uid_t uid)
{
	return 0;
}

SEC("tp_btf/signal_generate")
int BPF_PROG(floor_signal, int sig, struct kernel_siginfo *info, struct task_struct *task, int group, int result)
{
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(floor_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return 0;
}

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(floor_datagram, const struct sk_buff *skb, int len)
{
	return 0;
}

SEC("tp_btf/netlink_extack")
int BPF_PROG(floor_extack, const char *msg)
{
	return 0;
}
