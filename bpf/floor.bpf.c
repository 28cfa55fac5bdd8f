//go:build ignore
/* SPDX-License-Identifier: GPL-2.0 */
/* The floor for benchmarks (tools/bench): an empty program on the hook the seccomp recorder uses,
 * attached alone, so that a gadget's cost is shown beside the cost of running any program there.
 * Not part of any gadget. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter_btf, struct pt_regs *regs, long id)
{
	return 0;
}
