/* TC clsact, direct action: count packets per interface and direction, by L3 and L4.
 *
 * The programs return TC_ACT_UNSPEC so any filter after ours still runs and
 * decides; counting never changes what happens to a packet.
 *
 * TC sees socket buffers, not frames: on egress before GSO splits them, on
 * ingress after GRO merged them.  A GSO/GRO buffer of n segments is counted as
 * the n frames it is on the wire (its headers repeated in each), so the counts
 * compare with the interface's own statistics.
 *
 * At ingress a buffer normally starts at its Ethernet header.  After generic
 * (skb-mode) XDP on the same device, the 6.18 kernel hands TC buffers that
 * start at the network header (their mac_len was reset), so the L2 header is
 * found missing (x0_l2_missing) and added back: counts do not depend on which
 * XDP mode runs beside TC.
 */
#include <uapi/linux/pkt_cls.h>
#include "x0_common.h"

BPF_PERCPU_HASH(x0_tc_counters, struct x0_iface_key, struct x0_counter, X0_MAX_KEYS);

/* ETH_HLEN when the buffer starts at its network header instead of its Ethernet
 * header, else 0: the 8 bytes at the network header are found at data + ETH_HLEN
 * (Ethernet first) or at data itself (network header first).  Where those bytes
 * are in the linear data they are compared in place: one helper call per packet
 * instead of three. */
static __always_inline u32 x0_l2_missing(struct __sk_buff *skb, void *data, void *data_end)
{
    u64 net = 0, after_eth = 0, at_data = 0;
    if (bpf_skb_load_bytes_relative(skb, 0, &net, sizeof(net), BPF_HDR_START_NET))
        return 0;
    if (data + ETH_HLEN + sizeof(net) <= data_end) {
        if (*(u64 *)(data + ETH_HLEN) == net)
            return 0;
        return *(u64 *)data == net ? ETH_HLEN : 0;
    }
    if (!bpf_skb_load_bytes(skb, ETH_HLEN, &after_eth, sizeof(after_eth)) && after_eth == net)
        return 0;
    if (!bpf_skb_load_bytes(skb, 0, &at_data, sizeof(at_data)) && at_data == net)
        return ETH_HLEN;
    return 0;
}

static __always_inline int x0_tc_count(struct __sk_buff *skb, u8 hook)
{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    struct x0_iface_key key = {};
    key.ifindex = skb->ifindex;
    key.hook = hook;
    u32 missing = hook == X0_HOOK_TC_INGRESS ? x0_l2_missing(skb, data, data_end) : 0;
    u32 headers;
    if (missing) {
        headers = x0_classify_l3(bpf_ntohs(skb->protocol), data, data, data_end, &key);
        headers = headers ? headers + missing : 0;
    } else {
        headers = x0_classify(data, data_end, &key);
    }
    u64 segs = skb->gso_segs > 1 ? skb->gso_segs : 1;
    u64 len = skb->len + missing;
    if (segs > 1 && headers)
        len += (segs - 1) * headers;
    struct x0_counter *counter = x0_tc_counters.lookup(&key);
    if (counter) {
        x0_add(counter, segs, len);
    } else {
        struct x0_counter first = {.packets = segs, .bytes = len};
        x0_tc_counters.update(&key, &first);
    }
    return TC_ACT_UNSPEC;
}

int x0_tc_ingress(struct __sk_buff *skb)
{
    return x0_tc_count(skb, X0_HOOK_TC_INGRESS);
}

int x0_tc_egress(struct __sk_buff *skb)
{
    return x0_tc_count(skb, X0_HOOK_TC_EGRESS);
}
