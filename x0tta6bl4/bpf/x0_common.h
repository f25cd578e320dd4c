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

/* Fill key->l4 from the IP header at l3 (EtherType proto) in [base, data_end).
 *
 * Returns the length of the headers from base to the end of the TCP/UDP
 * header when they could all be read, else 0.
 */
static __always_inline u32 x0_classify_l3(u16 proto, void *l3, void *base, void *data_end,
                                          struct x0_iface_key *key)
{
    key->l3 = proto;
    void *l4;
    if (proto == ETH_P_IP) {
        /* struct iphdr: IHL in the low nibble of byte 0, protocol at byte 9 */
        if (l3 + 20 > data_end) {
            key->l4 = X0_L4_UNPARSED;
            return 0;
        }
        key->l4 = *(u8 *)(l3 + 9);
        l4 = l3 + (*(u8 *)l3 & 0x0f) * 4;
    } else if (proto == ETH_P_IPV6) {
        /* struct ipv6hdr: 40 bytes, nexthdr at byte 6 (extension headers are not walked) */
        if (l3 + 40 > data_end) {
            key->l4 = X0_L4_UNPARSED;
            return 0;
        }
        key->l4 = *(u8 *)(l3 + 6);
        l4 = l3 + 40;
    } else {
        return 0;
    }
    if (key->l4 == IPPROTO_TCP) {
        /* struct tcphdr: data offset in the high nibble of byte 12 */
        if (l4 + 13 > data_end)
            return 0;
        return (u32)(l4 - base) + (*(u8 *)(l4 + 12) >> 4) * 4;
    }
    if (key->l4 == IPPROTO_UDP)
        return (u32)(l4 - base) + 8;
    return 0;
}

/* Fill key->l3 and key->l4 from the Ethernet frame in [data, data_end).
 *
 * Returns the length of the Ethernet, IP and TCP/UDP headers when they could
 * all be read, else 0: a GSO/GRO packet repeats them in every segment on the
 * wire.
 */
static __always_inline u32 x0_classify(void *data, void *data_end, struct x0_iface_key *key)
{
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end) {
        key->l4 = X0_L4_UNPARSED;
        return 0;
    }
    u16 proto = bpf_ntohs(eth->h_proto);
    void *l3 = (void *)(eth + 1);
    if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
        /* One VLAN tag: 2 bytes TCI, then the inner EtherType. */
        if (l3 + 4 > data_end) {
            key->l3 = proto;
            key->l4 = X0_L4_UNPARSED;
            return 0;
        }
        proto = bpf_ntohs(*(u16 *)(l3 + 2));
        l3 += 4;
    }
    return x0_classify_l3(proto, l3, data, data_end, key);
}

/* Add packets and bytes to a counter slot that lookup() found. */
static __always_inline void x0_add(struct x0_counter *counter, u64 packets, u64 len)
{
    counter->packets += packets;
    counter->bytes += len;
}

#endif /* X0_COMMON_H */
