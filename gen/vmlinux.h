/* The kernel types of the architecture bpf2go compiles for (-target sets __TARGET_ARCH_*): each
 * file is written by tools/vmlinux-h.sh (make vmlinux) from the pinned Debian kernel's BTF. */
#if defined(__TARGET_ARCH_arm64)
#include "vmlinux_arm64.h"
#elif defined(__TARGET_ARCH_x86)
#include "vmlinux_x86.h"
#else
#error "ghostwatch builds for x86 and arm64: bpf2go -target amd64,arm64"
#endif
