/* XDP: count every received frame per interface, by L3 and L4 protocol; always pass.
 *
 * Loaded as a multi-buffer (frags-aware) program, so a frame may span several
 * buffers: its length is bpf_xdp_get_buff_len(), the headers are in the first.
 */
#include "x0_common.h"

BPF_PERCPU_HASH(x0_xdp_counters, struct x0_iface_key, struct x0_counter, X0_MAX_KEYS);

int x0_xdp(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct x0_iface_key key = {};
    key.ifindex = ctx->ingress_ifindex;
    key.hook = X0_HOOK_XDP;
    x0_classify(data, data_end, &key);
    u64 len = bpf_xdp_get_buff_len(ctx);
    struct x0_counter *counter = x0_xdp_counters.lookup(&key);
    if (counter) {
        x0_add(counter, 1, len);
    } else {
        struct x0_counter first = {.packets = 1, .bytes = len};
        x0_xdp_counters.update(&key, &first);
    }
    return XDP_PASS;
}
