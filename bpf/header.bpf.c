//go:build ignore
/* SPDX-License-Identifier: GPL-2.0 */
/* No programs: this object exists so that bpf2go emits the shared types of header.h into gen/header. */
#include "vmlinux.h"
#include "header.h"

struct gw_header unused_header;
enum gw_ns unused_ns;
enum mntns_filter unused_filter;
enum gw_lacks unused_lacks;
enum gw_lost unused_lost;
