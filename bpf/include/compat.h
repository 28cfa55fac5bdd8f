/* SPDX-License-Identifier: GPL-2.0 */
/* What differs between the kernels and architectures ghostwatch runs on, behind one API. Gadgets
 * read the current task, a syscall's number and arguments, and syscall numbers through these,
 * never through the helpers or the registers directly, and test gw_has() before the helpers and
 * kfuncs that not every kernel has:
 *
 *   gw_current()              the current task
 *   GW_TASK(t, a, b, ...)     t->a->b... for t from gw_current(): direct loads where the kernel
 *                             has bpf_get_current_task_btf (5.11), CO-RE probe reads before
 *   gw_syscall_regs(t)        the user registers of t's syscall in progress: bpf_task_pt_regs
 *                             (5.15), else the top of t's kernel stack, where the entry code
 *                             saved them
 *   GW_SYSCALL_NR(R, regs), GW_SYSCALL_ARG(R, regs, n)
 *                             the syscall number and argument n (0-5) in a struct pt_regs, read
 *                             with R: LOAD for a BTF pointer (a tp_btf sys_enter/sys_exit
 *                             argument), BPF_CORE_READ for any other
 *   gw_compat_syscall(t)      t is in a 32-bit syscall (i386 on x86-64, AArch32 on arm64)
 *   GW_NR_*                   syscall numbers of the architecture compiled for
 *   gw_has(F)                 the kernel has feature F (enum gw_lacks in header.h)
 *
 * Which path a kernel takes is decided before load: gw_lacks holds a bit for each feature this
 * kernel lacks, set by user space (tracer/kernel probes them), and the verifier drops the branch
 * not taken, so a kernel that has everything runs the best path; the fallbacks cost it a load and
 * a test of this constant where they branch. A test can force any fallback on any kernel.
 *
 * Fetching atomics (an atomic whose result is used; or, and, xor, cmpxchg, xchg: 5.12) cannot be
 * behind gw_has: 5.10's verifier checks every instruction's fields before it follows any path,
 * so it refuses a program that has one even where the constant prunes it. A program that uses them
 * is compiled twice, from an __always_inline body with a constant `fetch` argument: NAME, and
 * NAME_nofetch with atomic adds only. Both are candidates of the hook, best first, and the
 * descriptor's Needs names the first's feature, so that it is skipped (not even tried) where the
 * kernel lacks it or a test forces the fallback. */
#pragma once

/* Set before load (tracer/gadget, from tracer/kernel's probes). */
const volatile __u32 gw_lacks = 0;

#define gw_has(feature) (!(gw_lacks & GW_LACKS_##feature))

/* p->a->b->...: a plain load per step, for pointers the verifier knows the type of. */
#define LOAD(p, ...) ___arrow(p, __VA_ARGS__)

static __always_inline struct task_struct *gw_current(void)
{
	if (gw_has(TASK_BTF))
		return bpf_get_current_task_btf();
	return (struct task_struct *)bpf_get_current_task();
}

#define GW_TASK(t, ...) (gw_has(TASK_BTF) ? LOAD(t, __VA_ARGS__) : BPF_CORE_READ(t, __VA_ARGS__))

/* Registers of a syscall, per architecture: the number, then the arguments in order. On arm64 the
 * first argument's register is overwritten by the return value: orig_x0 keeps it. */
#if defined(__TARGET_ARCH_arm64)
#define GW_REG_NR syscallno
#define GW_REG_0  orig_x0
#define GW_REG_1  regs[1]
#define GW_REG_2  regs[2]
#define GW_REG_3  regs[3]
#define GW_REG_4  regs[4]
#define GW_REG_5  regs[5]
#elif defined(__TARGET_ARCH_x86)
#define GW_REG_NR orig_ax
#define GW_REG_0  di
#define GW_REG_1  si
#define GW_REG_2  dx
#define GW_REG_3  r10
#define GW_REG_4  r8
#define GW_REG_5  r9
#else
#error "ghostwatch builds for x86 and arm64: set __TARGET_ARCH_x86 or __TARGET_ARCH_arm64 (bpf2go -target)"
#endif

#define GW_SYSCALL_NR(R, regs) ((long)R(regs, GW_REG_NR))
#define GW_SYSCALL_ARG(R, regs, n) ((unsigned long)R(regs, GW_REG_##n))

/* Both architectures' kernels keep a task's kernel stack in THREAD_SIZE bytes (16 KiB without
 * KASAN, as Debian, Ubuntu, RHEL and Amazon Linux build them), its syscall registers at the top
 * (x86-64 pads nothing there unless FRED is on, 6.9+, where bpf_task_pt_regs exists anyway). */
#define GW_THREAD_SIZE 16384

static __always_inline struct pt_regs *gw_syscall_regs(struct task_struct *t)
{
	if (gw_has(TASK_PT_REGS))
		return (struct pt_regs *)bpf_task_pt_regs(t);
	void *stack = BPF_CORE_READ(t, stack);
	if (!stack)
		return NULL;
	return (struct pt_regs *)(stack + GW_THREAD_SIZE) - 1;
}

/* Syscall numbers, native and 32-bit compat, of the architecture compiled for. */
#if defined(__TARGET_ARCH_arm64)
#define GW_NR_openat     56
#define GW_NR_mknodat    33
#define GW_NR_openat2    437
#define GW_NR_execve     221
#define GW_NR_execveat   281
#define GW_NR_seccomp    277
#define GW_NR_prctl      167
/* AArch32 (arm EABI) */
#define GW_NR32_execve   11
#define GW_NR32_execveat 387
#define GW_NR32_seccomp  383
#define GW_NR32_prctl    172
#define GW_TIF_32BIT     (1UL << 22) /* thread_info.flags: an AArch32 task */
#else
#define GW_NR_open       2
#define GW_NR_mknod      133
#define GW_NR_openat     257
#define GW_NR_mknodat    259
#define GW_NR_openat2    437
#define GW_NR_execve     59
#define GW_NR_execveat   322
#define GW_NR_seccomp    317
#define GW_NR_prctl      157
/* i386 */
#define GW_NR32_execve   11
#define GW_NR32_execveat 358
#define GW_NR32_seccomp  354
#define GW_NR32_prctl    172
#define GW_TS_COMPAT     0x0002 /* thread_info.status: a 32-bit syscall on x86-64 */
#endif

/* Whether t (the current task, from gw_current) is in a 32-bit syscall. */
static __always_inline bool gw_compat_syscall(struct task_struct *t)
{
#if defined(__TARGET_ARCH_arm64)
	return GW_TASK(t, thread_info.flags) & GW_TIF_32BIT;
#else
	return GW_TASK(t, thread_info.status) & GW_TS_COMPAT;
#endif
}
