/* Shared by the x0tta6bl4 eBPF programs: counter keys and packet classification.
 *
 * Counters live in per-CPU hash maps: each CPU updates its own slot without
 * atomics and user space sums the slots when it reads the map.
 */
#ifndef X0_COMMON_H
#define X0_COMMON_H

#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>

#ifndef X0_MAX_KEYS
#define X0_MAX_KEYS 4096
#endif

#define X0_HOOK_XDP 0
#define X0_HOOK_TC_INGRESS 1
#define X0_HOOK_TC_EGRESS 2

/* L4 protocol value when the IP header is not in the linear data. */
#define X0_L4_UNPARSED 255

struct x0_iface_key {
    u32 ifindex;
    u16 l3;   /* EtherType, host byte order (0x0800 IPv4, 0x86dd IPv6, 0x0806 ARP) */
    u8 l4;    /* IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6); 0 when not IP */
    u8 hook;  /* X0_HOOK_* */
};

struct x0_counter {
    u64 packets;
    u64 bytes;
};

/* Fill key->l3 and key->l4 from the Ethernet frame in [data, data_end). */
static __always_inline void x0_classify(void *data, void *data_end, struct x0_iface_key *key)
{
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end) {
        key->l4 = X0_L4_UNPARSED;
        return;
    }
    u16 proto = bpf_ntohs(eth->h_proto);
    void *l3 = (void *)(eth + 1);
    if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
        /* One VLAN tag: 2 bytes TCI, then the inner EtherType. */
        if (l3 + 4 > data_end) {
            key->l3 = proto;
            key->l4 = X0_L4_UNPARSED;
            return;
        }
        proto = bpf_ntohs(*(u16 *)(l3 + 2));
        l3 += 4;
    }
    key->l3 = proto;
    if (proto == ETH_P_IP) {
        /* struct iphdr: protocol at byte 9 */
        if (l3 + 10 > data_end) {
            key->l4 = X0_L4_UNPARSED;
            return;
        }
        key->l4 = *(u8 *)(l3 + 9);
    } else if (proto == ETH_P_IPV6) {
        /* struct ipv6hdr: nexthdr at byte 6 (extension headers are not walked) */
        if (l3 + 7 > data_end) {
            key->l4 = X0_L4_UNPARSED;
            return;
        }
        key->l4 = *(u8 *)(l3 + 6);
    }
}

/* Add one packet of len bytes to a counter slot that lookup() found. */
static __always_inline void x0_add(struct x0_counter *counter, u64 len)
{
    counter->packets += 1;
    counter->bytes += len;
}

#endif /* X0_COMMON_H */
