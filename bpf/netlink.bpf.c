//go:build ignore
/* SPDX-License-Identifier: GPL-2.0 */
/* netlink: every netlink request the kernel answers with an extended-ack message. The
 * netlink:netlink_extack tracepoint fires where the kernel sets the message, in the requester's
 * context, with the message only (before it, netlink_ack's kprobe): it is written at once, with
 * the actor. The errno is in the ack the kernel then queues on the requester's socket, which
 * echoes the request's header (and, unless the socket asked for NETLINK_CAP_ACK, its payload):
 * skb:skb_copy_datagram_iovec sees the ack when the requester reads it, and it is copied for a
 * process with a message pending only (a hash lookup for every other datagram read on the node).
 * User space joins the two records. */
#include "filter.h"

char LICENSE[] SEC("license") = "GPL";

enum netlink_kind {
	NETLINK_EXTACK = 1,
	NETLINK_ACK,
};
const enum netlink_kind *unused_kind __attribute__((unused)); /* its type reaches BTF, and Go */

#define MSG_MAX 128 /* the kernel's messages are literals or formatted into 80 bytes */
#define REQ_MAX 256 /* bytes of the echoed request copied: its header and first attributes */

#define GW_AF_NETLINK 16
#define GW_NLMSG_ERROR 2
#define GW_NLMSG_DONE 3

struct extack_event {
	struct gw_header hdr;
	char msg[MSG_MAX];
};

struct ack_event {
	struct gw_header hdr;
	__u64 extack_ns;  /* the pending message's hdr.ts_boot_ns: which extack_event this answers */
	__s32 error;      /* nlmsgerr.error: 0 or -errno; for NLMSG_DONE, the dump's error */
	__u32 protocol;   /* the socket's netlink family: NETLINK_ROUTE, NETLINK_GENERIC... */
	__u32 sock_netns; /* the socket's network namespace inode: the one the request acted in */
	__u16 type;       /* NLMSG_ERROR or NLMSG_DONE */
	__u16 pad;
	__u32 req_len;    /* bytes of the echoed request in req (its header first) */
	__u8 req[REQ_MAX];
};
const struct extack_event *unused_extack __attribute__((unused));
const struct ack_event *unused_ack __attribute__((unused));

/* Processes with a message whose ack has not been read, by tgid: the boot time of the message. By
 * process, not thread: a Go runtime may read the ack on another thread than the one that sent. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} pending SEC(".maps");

static __noinline int extack(const char *msg)
{
	if (!actor_wanted())
		return 0;
	struct extack_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	fill_header(&e->hdr, NETLINK_EXTACK);
	bpf_probe_read_kernel_str(e->msg, sizeof(e->msg), msg);
	__u32 tgid = e->hdr.pid;
	__u64 ts = e->hdr.ts_boot_ns;
	bpf_ringbuf_submit(e, 0);
	bpf_map_update_elem(&pending, &tgid, &ts, BPF_ANY);
	return 0;
}

static __noinline int copied(const struct sk_buff *skb)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 *ts = bpf_map_lookup_elem(&pending, &tgid);
	if (!ts)
		return 0;
	struct sock *sk = BPF_CORE_READ(skb, sk);
	if (!sk || BPF_CORE_READ(sk, __sk_common.skc_family) != GW_AF_NETLINK)
		return 0;
	unsigned char *data = BPF_CORE_READ(skb, data);
	struct nlmsghdr nlh;
	if (bpf_probe_read_kernel(&nlh, sizeof(nlh), data))
		return 0;
	if (nlh.nlmsg_type != GW_NLMSG_ERROR && nlh.nlmsg_type != GW_NLMSG_DONE)
		return 0; /* a reply or a notification: the ack is still to come */
	struct ack_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	fill_header(&e->hdr, NETLINK_ACK);
	e->extack_ns = *ts;
	e->type = nlh.nlmsg_type;
	e->protocol = BPF_CORE_READ(sk, sk_protocol);
	e->sock_netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	bpf_probe_read_kernel(&e->error, sizeof(e->error), data + sizeof(nlh));
	e->req_len = 0;
	__u32 len = BPF_CORE_READ(skb, len);
	__u32 off = sizeof(nlh) + sizeof(int);
	/* A fixed size, which the verifier takes: what lies past the ack in its buffer is cut by
	 * req_len. */
	if (nlh.nlmsg_type == GW_NLMSG_ERROR && len > off && !bpf_probe_read_kernel(e->req, REQ_MAX, data + off))
		e->req_len = len - off < REQ_MAX ? len - off : REQ_MAX;
	bpf_ringbuf_submit(e, 0);
	bpf_map_delete_elem(&pending, &tgid);
	return 0;
}

SEC("tp_btf/netlink_extack")
int BPF_PROG(extack_btf, const char *msg)
{
	return extack(msg);
}

SEC("raw_tp/netlink_extack")
int BPF_PROG(extack_raw, const char *msg)
{
	return extack(msg);
}

/* Kernels before the tracepoint (5.10 has none): the message netlink_ack sends in the ack. A
 * message on a request that gets no ack (a warning on success without NLM_F_ACK) is missed. */
SEC("kprobe/netlink_ack")
int BPF_KPROBE(extack_kprobe, struct sk_buff *in_skb, struct nlmsghdr *nlh, int err, const struct netlink_ext_ack *ea)
{
	const char *msg = ea ? BPF_CORE_READ(ea, _msg) : NULL;
	return msg ? extack(msg) : 0;
}

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(ack_btf, const struct sk_buff *skb, int len)
{
	return copied(skb);
}

SEC("raw_tp/skb_copy_datagram_iovec")
int BPF_PROG(ack_raw, const struct sk_buff *skb, int len)
{
	return copied(skb);
}
