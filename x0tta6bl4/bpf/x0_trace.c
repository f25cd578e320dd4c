/* Tracepoints: packet drops by reason, interface and namespace; TCP retransmissions.
 *
 * Kernel structs are followed by byte offsets read from the running kernel's
 * BTF (the installed headers may belong to another kernel version):
 *   X0_SKB_DEV      offsetof(struct sk_buff, dev)
 *   X0_DEV_IFINDEX  offsetof(struct net_device, ifindex)
 *   X0_DEV_NET      offsetof(struct net_device, nd_net.net)
 *   X0_NET_INUM     offsetof(struct net, ns.inum)
 *   X0_SK_NET       offsetof(struct sock, __sk_common.skc_net.net)
 * The tracepoint argument layouts come from tracefs, so they always match.
 */
#include <net/dropreason.h>
#include "x0_common.h"

struct x0_drop_key {
    u32 netns;    /* inode number of the network namespace; 0 when unknown */
    u32 ifindex;  /* 0 when the skb had no device */
    u32 reason;   /* enum skb_drop_reason of the running kernel */
};

struct x0_retrans_key {
    u32 netns;
    u16 family;   /* AF_INET or AF_INET6 */
    u16 dport;
    u8 daddr[16]; /* IPv4 in the first 4 bytes */
};

BPF_PERCPU_HASH(x0_drops, struct x0_drop_key, u64, X0_MAX_KEYS);
BPF_TABLE("lru_percpu_hash", struct x0_retrans_key, u64, x0_retrans, X0_MAX_KEYS);

static __always_inline u32 x0_netns_of(u64 net)
{
    u32 inum = 0;
    if (net)
        bpf_probe_read_kernel(&inum, sizeof(inum), (void *)(net + X0_NET_INUM));
    return inum;
}

TRACEPOINT_PROBE(skb, kfree_skb)
{
    struct x0_drop_key key = {};
    u64 dev = 0;
    u64 net = 0;
    bpf_probe_read_kernel(&dev, sizeof(dev), (void *)((u64)args->skbaddr + X0_SKB_DEV));
    if (dev) {
        bpf_probe_read_kernel(&key.ifindex, sizeof(key.ifindex), (void *)(dev + X0_DEV_IFINDEX));
        bpf_probe_read_kernel(&net, sizeof(net), (void *)(dev + X0_DEV_NET));
        key.netns = x0_netns_of(net);
    }
    key.reason = (u32)args->reason;
    u64 one = 1;
    u64 *count = x0_drops.lookup(&key);
    if (count)
        *count += 1;
    else
        x0_drops.update(&key, &one);
    return 0;
}

TRACEPOINT_PROBE(tcp, tcp_retransmit_skb)
{
    struct x0_retrans_key key = {};
    u64 net = 0;
    bpf_probe_read_kernel(&net, sizeof(net), (void *)((u64)args->skaddr + X0_SK_NET));
    key.netns = x0_netns_of(net);
    key.family = args->family;
    key.dport = args->dport;
    if (key.family == 10)
        bpf_probe_read_kernel(&key.daddr, 16, (void *)args->daddr_v6);
    else
        bpf_probe_read_kernel(&key.daddr, 4, (void *)args->daddr);
    u64 one = 1;
    u64 *count = x0_retrans.lookup(&key);
    if (count)
        *count += 1;
    else
        x0_retrans.update(&key, &one);
    return 0;
}
