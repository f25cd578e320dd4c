/* TC clsact, direct action: count packets per interface and direction, by L3 and L4.
 *
 * The programs return TC_ACT_UNSPEC so any filter after ours still runs and
 * decides; counting never changes what happens to a packet.
 *
 * TC sees socket buffers, not frames: on egress before GSO splits them, on
 * ingress after GRO merged them.  A GSO/GRO buffer of n segments is counted as
 * the n frames it is on the wire (its headers repeated in each), so the counts
 * compare with the interface's own statistics.
 */
#include <uapi/linux/pkt_cls.h>
#include "x0_common.h"

BPF_PERCPU_HASH(x0_tc_counters, struct x0_iface_key, struct x0_counter, X0_MAX_KEYS);

static __always_inline int x0_tc_count(struct __sk_buff *skb, u8 hook)
{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    struct x0_iface_key key = {};
    key.ifindex = skb->ifindex;
    key.hook = hook;
    u32 headers = x0_classify(data, data_end, &key);
    u64 segs = skb->gso_segs > 1 ? skb->gso_segs : 1;
    u64 len = skb->len;
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
