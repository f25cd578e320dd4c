"""The statistical twin: fault cases with routing-aware symptoms over any topology.

Flows follow shortest paths; links carry the flows' traffic, so a fault shows
where the traffic it touches goes: loss on a link cuts the throughput of every
flow crossing it and raises retransmits at their sources; a crashed node takes
its links down (and either goes silent or, cut off, keeps reporting) and its
transit flows reroute after a convergence delay; a
Byzantine blackhole answers probes and reports normal counters but silently
drops transit traffic.  Every case also carries what makes RCA hard on real
meshes: diurnal load, AR(1) traffic noise, probe jitter, sampled loss,
telemetry gaps, transient spikes anywhere, and benign persistent changes that
start near the anomaly (a traffic shift, a CPU-hungry job, a radio rate change).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from x0tta6bl4.errors import MLError
from x0tta6bl4.mesh.topology import Topology
from x0tta6bl4.ml.scenarios.case import Case, Label
from x0tta6bl4.ml.scenarios.routing import FlowRoutes, route_flows
from x0tta6bl4.ml.schema import LINK_METRICS, NODE_METRICS, FaultKind, column

__all__ = ["TwinConfig", "generate_case"]

Array = npt.NDArray[np.float64]
PKTS_PER_MBPS = 83.0  # 1500-byte packets per second in one Mbit/s


@dataclass(frozen=True)
class TwinConfig:
    """Shape of a generated case.

    Args:
        steps: samples per series (one per ``dt_s``).
        dt_s: sample interval in seconds.
        start_min: earliest anomaly start, as a sample index.
        start_max: latest anomaly start, as a sample index.
        flows_per_node: end-to-end flows per node.
        decoys: add benign changes and transient spikes.
    """

    steps: int = 120
    dt_s: float = 1.0
    start_min: int = 50
    start_max: int = 70
    flows_per_node: float = 2.0
    decoys: bool = True


class _World:
    """Per-case state that fault and decoy injection writes into (arrays over time)."""

    def __init__(self, topo: Topology, rng: np.random.Generator, cfg: TwinConfig) -> None:
        self.topo, self.rng, self.cfg = topo, rng, cfg
        self.names = topo.names
        self.keys = [link.key for link in topo.links]
        self.node_ix = {n: i for i, n in enumerate(self.names)}
        self.link_ix = {k: i for i, k in enumerate(self.keys)}
        n, m, steps = len(self.names), len(self.keys), cfg.steps
        self.t0 = int(rng.integers(cfg.start_min, cfg.start_max + 1))
        self.cap = rng.choice([100.0, 200.0, 300.0, 500.0, 1000.0], m)
        self.base_delay = np.array(
            [link.delay_ms if link.delay_ms > 0 else rng.uniform(0.5, 8.0) for link in topo.links]
        )
        self.base_loss = rng.uniform(0.0005, 0.005, m)
        self.extra_delay = np.zeros((steps, m))
        self.extra_loss = np.zeros((steps, m))
        self.link_dead = np.zeros((steps, m), dtype=bool)
        self.node_dead = np.zeros((steps, n), dtype=bool)
        self.proc_delay = np.zeros((steps, n))
        self.cpu_add = np.zeros((steps, n))
        self.queue_add = np.zeros((steps, n))
        self.dropq_add = np.zeros((steps, n))
        self.noroute = np.zeros((steps, n))
        self.hidden_node: int | None = None  # a blackhole reports what it received
        f = max(8, int(cfg.flows_per_node * rng.uniform(0.5, 1.5) * n))
        self.flows: list[tuple[str, str]] = []
        while len(self.flows) < f:
            a, b = rng.choice(n, 2, replace=False)
            self.flows.append((self.names[a], self.names[b]))
        self.routes = route_flows(topo, self.flows)
        t = np.arange(steps) * cfg.dt_s
        diurnal = 1 + rng.uniform(0.1, 0.35) * np.sin(
            2 * np.pi * t / rng.uniform(300, 1200) + rng.uniform(0, 2 * np.pi)
        )
        noise = np.zeros((steps, f))
        rho, sigma = rng.uniform(0.6, 0.95), rng.uniform(0.05, 0.2)
        for i in range(1, steps):
            noise[i] = rho * noise[i - 1] + sigma * rng.standard_normal(f)
        base = rng.lognormal(0.0, 0.8, f)
        util0 = (base @ self.routes.link_inc) / self.cap
        scale = rng.uniform(0.3, 0.65) / max(float(util0.max()), 1e-9)
        self.demand = base * scale * diurnal[:, None] * np.exp(noise)
        self.goodput = np.ones((steps, f))
        self.routed_t = np.repeat(self.routes.routed[None], steps, axis=0)
        self.reroute: tuple[int, FlowRoutes] | None = None
        """From this sample on, flows follow these routes (after a crash converged)."""

    def ramp(self, start: int) -> Array:
        """0 before ``start``, then rising to 1 over 0-5 samples (abrupt or gradual onset)."""
        width = int(self.rng.integers(0, 6))
        idx = np.arange(self.cfg.steps) - start
        return np.clip((idx + 1) / (width + 1), 0.0, 1.0)

    def _per_segment(self, series: Array, inc: str, transpose: bool = False) -> Array:
        """``series @ routes.<inc>`` (or ``@ .T``) row by row, with the routes in force."""
        cut = self.cfg.steps if self.reroute is None else self.reroute[0]
        parts = [(slice(0, cut), self.routes)]
        if self.reroute is not None:
            parts.append((slice(cut, self.cfg.steps), self.reroute[1]))
        out = None
        for rows, routes in parts:
            matrix = getattr(routes, inc)
            part = series[rows] @ (matrix.T if transpose else matrix)
            if out is None:
                out = np.zeros((self.cfg.steps, part.shape[1]))
            out[rows] = part
        return out  # type: ignore[return-value]

    def over_links(self, per_flow: Array) -> Array:
        """``[T, F]`` per-flow values summed onto ``[T, L]`` links."""
        return self._per_segment(per_flow, "link_inc")

    def over_nodes(self, per_flow: Array) -> Array:
        """``[T, F]`` per-flow values summed onto ``[T, N]`` transit nodes."""
        return self._per_segment(per_flow, "node_inc")

    def along_paths(self, per_link: Array) -> Array:
        """``[T, L]`` per-link values summed along each flow's path: ``[T, F]``."""
        return self._per_segment(per_link, "link_inc", transpose=True)

    def flows_on_link(self, li: int) -> npt.NDArray[np.bool_]:
        return self.routes.link_inc[:, li] > 0

    def flows_through(self, ni: int) -> npt.NDArray[np.bool_]:
        return self.routes.node_inc[:, ni] > 0

    def add_flow(self, src: str, dst: str, rate: Array) -> int:
        """Append a flow with its own demand series; returns its index."""
        self.flows.append((src, dst))
        self.routes = route_flows(self.topo, self.flows)
        self.demand = np.concatenate([self.demand, rate[:, None]], axis=1)
        self.goodput = np.concatenate([self.goodput, np.ones((self.cfg.steps, 1))], axis=1)
        self.routed_t = np.repeat(self.routes.routed[None], self.cfg.steps, axis=0)
        return len(self.flows) - 1


def generate_case(
    topology: Topology,
    kind: FaultKind,
    rng: np.random.Generator,
    config: TwinConfig | None = None,
) -> Case:
    """One case of ``kind`` over ``topology``; the same ``rng`` state gives the same case."""
    cfg = config or TwinConfig()
    if cfg.start_max + 10 > cfg.steps or cfg.start_min < 10:
        raise MLError(
            f"anomaly start {cfg.start_min}..{cfg.start_max} leaves too little data in "
            f"{cfg.steps} steps",
            fix="keep at least 10 samples before and after the anomaly",
        )
    w = _World(topology, rng, cfg)
    location, severity = _inject(w, kind)
    if cfg.decoys:
        _decoys(w, location)
    values = _observe(w)
    columns = [column(n, m) for n in w.names for m in NODE_METRICS] + [
        column(k, m) for k in w.keys for m in LINK_METRICS
    ]
    label = Label(kind, location, float(w.t0 * cfg.dt_s), round(float(severity), 4))
    times = np.arange(cfg.steps, dtype=np.float64) * cfg.dt_s
    return Case(topology, times, columns, values.astype(np.float32), label, source="twin")


def _pick(rng: np.random.Generator, weights: Array) -> int:
    p = weights + 0.05 * weights.mean() + 1e-9
    return int(rng.choice(len(p), p=p / p.sum()))


def _inject(w: _World, kind: FaultKind) -> tuple[str | None, float]:
    rng = w.rng
    link_traffic = w.routes.link_inc.sum(axis=0)
    transit = w.routes.node_inc.sum(axis=0)
    if kind is FaultKind.LINK_LOSS:
        li = _pick(rng, link_traffic)
        p = float(np.exp(rng.uniform(np.log(0.015), np.log(0.3))))
        ramp = w.ramp(w.t0)
        w.extra_loss[:, li] += p * ramp
        cut = np.clip(1.5 * np.sqrt(0.002 / p), 0.05, 1.0)
        w.goodput[:, w.flows_on_link(li)] *= (1 - ramp * (1 - cut))[:, None]
        return w.keys[li], p
    if kind is FaultKind.LINK_DELAY:
        li = _pick(rng, link_traffic)
        d = float(np.exp(rng.uniform(np.log(4.0), np.log(80.0))))
        ramp = w.ramp(w.t0)
        w.extra_delay[:, li] += d * ramp
        w.goodput[:, w.flows_on_link(li)] *= (1 - ramp * min(0.4, d / 400))[:, None]
        return w.keys[li], d
    if kind is FaultKind.NODE_CRASH:
        return _crash(w, int(rng.integers(len(w.names))))
    if kind is FaultKind.NODE_OVERLOAD:
        ni = _pick(rng, transit)
        ramp = w.ramp(w.t0)
        target = rng.uniform(70, 99)
        w.cpu_add[:, ni] += ramp * target  # clipped to 100 on observation
        w.queue_add[:, ni] += ramp * rng.uniform(5, 200)
        w.proc_delay[:, ni] += ramp * float(np.exp(rng.uniform(np.log(1.0), np.log(30.0))))
        w.dropq_add[:, ni] += ramp * rng.uniform(0, 300)
        w.goodput[:, w.flows_through(ni)] *= (1 - ramp * rng.uniform(0.1, 0.4))[:, None]
        return w.names[ni], float(target)
    if kind is FaultKind.CONGESTION:
        return _congestion(w)
    if kind is FaultKind.BLACKHOLE:
        if transit.max() <= 0:
            raise MLError("no node carries transit traffic; a blackhole would show nothing")
        ni = _pick(rng, transit * (transit > 0))
        ramp = w.ramp(w.t0)
        w.goodput[:, w.flows_through(ni)] *= (1 - ramp * 0.97)[:, None]
        w.hidden_node = ni
        return w.names[ni], float(w.flows_through(ni).sum())
    if kind is FaultKind.NONE:
        return None, 0.0
    raise MLError(f"unknown fault kind {kind!r}", fix=f"use one of {[k.value for k in FaultKind]}")


def _crash(w: _World, ni: int) -> tuple[str, float]:
    name, t0 = w.names[ni], w.t0
    if w.rng.random() < 0.5:  # the node is gone; else it runs on, cut off (links or NIC dead)
        w.node_dead[t0:, ni] = True
    for li, link in enumerate(w.topo.links):
        if name in link.ends:
            w.link_dead[t0:, li] = True
    converge = int(w.rng.integers(2, 9))
    rerouted = route_flows(w.topo, w.flows, dead_nodes={name})
    through = w.flows_through(ni)
    for f in np.flatnonzero(through):
        path = w.routes.paths[f]
        upstream = w.node_ix[path[path.index(name) - 1]]
        w.noroute[t0 : t0 + converge, upstream] += w.demand[t0 : t0 + converge, f] * PKTS_PER_MBPS
    w.goodput[t0 : t0 + converge, through] = 0.0
    w.reroute = (t0 + converge, rerouted)
    w.routed_t[t0:] = rerouted.routed
    for flow, (src, dst) in enumerate(w.flows):
        if dst == name and src != name:
            w.noroute[t0 + converge :, w.node_ix[src]] += (
                w.demand[t0 + converge :, flow] * PKTS_PER_MBPS
            )
    return name, float(converge)


def _congestion(w: _World) -> tuple[str, float]:
    """An elephant flow pushes one link (the unique bottleneck on its path) past capacity."""
    rng, n = w.rng, len(w.names)
    load0 = (w.demand[: w.t0].mean(axis=0)) @ w.routes.link_inc
    for _ in range(40):
        a, b = rng.choice(n, 2, replace=False)
        path = route_flows(w.topo, [(w.names[a], w.names[b])]).link_inc[0] > 0
        if path.sum() < 1:
            continue
        target = rng.uniform(1.03, 1.6)
        spare = w.cap - load0
        cand = np.flatnonzero(path)
        bott = cand[np.argmin(spare[cand])]
        rate = target * w.cap[bott] - load0[bott]
        util = (load0 + rate * path) / w.cap
        others = np.delete(util[cand], np.argwhere(cand == bott))
        if others.size and others.max() > 0.85:
            continue
        ramp = w.ramp(w.t0)
        fi = w.add_flow(
            w.names[a], w.names[b], rate * ramp * np.exp(rng.normal(0, 0.03, w.cfg.steps))
        )
        w.goodput[:, fi] = 1.0
        return w.keys[int(bott)], float(target)
    raise MLError("could not place a congestion with a unique bottleneck on this topology")


def _decoys(w: _World, location: str | None) -> None:
    rng, steps = w.rng, w.cfg.steps
    n, m = len(w.names), len(w.keys)
    free_nodes = [i for i, name in enumerate(w.names) if name != location]
    free_links = [i for i, key in enumerate(w.keys) if key != location]
    for _ in range(int(rng.poisson(0.12 * (n + m)) + 1)):
        start, length = int(rng.integers(0, steps - 6)), int(rng.integers(2, 6))
        if rng.random() < 0.5 and free_links:
            li = int(rng.choice(free_links))
            if rng.random() < 0.5:
                w.extra_loss[start : start + length, li] += rng.uniform(0.05, 0.4)
            else:
                w.extra_delay[start : start + length, li] += rng.uniform(5, 60)
        elif free_nodes:
            ni = int(rng.choice(free_nodes))
            w.cpu_add[start : start + length, ni] += rng.uniform(20, 60)
            w.queue_add[start : start + length, ni] += rng.uniform(10, 80)

    def near() -> int:
        return int(np.clip(w.t0 + rng.integers(-6, 7), 1, steps - 1))

    if rng.random() < 0.6:
        f = int(rng.integers(len(w.routes.paths)))
        on = w.routes.link_inc[f] > 0
        if on.any():
            load = w.demand.mean(axis=0) @ w.routes.link_inc
            room = float(np.min(0.95 * w.cap[on] - load[on]))
            if room > 0:
                extra = rng.uniform(0.3, 1.0) * room * w.ramp(near())
                w.demand[:, f] += extra
    for _ in range(int(rng.integers(0, 3))):
        if free_nodes:
            ni = int(rng.choice(free_nodes))
            w.cpu_add[:, ni] += rng.uniform(15, 55) * w.ramp(near())
    if rng.random() < 0.4 and free_links:
        li = int(rng.choice(free_links))
        w.extra_delay[:, li] += rng.uniform(1, 5) * w.ramp(near())
    if rng.random() < 0.3 and free_links:
        li = int(rng.choice(free_links))
        w.extra_loss[:, li] += rng.uniform(0.005, 0.02) * w.ramp(near())


def _observe(w: _World) -> npt.NDArray[np.float64]:
    """Turn the world's state into observed node and link series (with noise and gaps)."""
    rng, steps = w.rng, w.cfg.steps
    n, m = len(w.names), len(w.keys)
    carried = w.demand * w.goodput * w.routed_t
    load = w.over_links(carried)
    util = load / w.cap
    share = np.where(util > 1, 1 / np.maximum(util, 1e-9), 1.0)
    # flows crossing an overfull link get their fair share; one pass is close enough
    cut = np.exp(w.along_paths(np.log(share)))
    honest = carried * cut
    over = np.clip(util - 1, 0, None)  # offered load beyond capacity is queued, then dropped
    load = w.over_links(honest)
    util = np.maximum(load / w.cap, np.minimum(util, 1.0))
    u = np.minimum(util, 0.97)
    queue_ms = 0.3 * u / (1 - u) + 30 * over
    ends = np.array([[w.node_ix[link.a], w.node_ix[link.b]] for link in w.topo.links])
    rtt = (
        2 * w.base_delay
        + queue_ms
        + w.extra_delay
        + w.proc_delay[:, ends[:, 0]]
        + w.proc_delay[:, ends[:, 1]]
    )
    jitter = rng.uniform(0.05, 0.25)
    rtt = rtt * (1 + jitter * rng.standard_normal((steps, m)).clip(-2, None) / 2) + rng.gamma(
        1.5, 0.2 + jitter, (steps, m)
    )
    overflow = over / (1 + over)
    loss_true = np.clip(w.base_loss + w.extra_loss + overflow, 0, 1)
    loss = rng.binomial(50, loss_true) / 50.0
    mbps = np.minimum(load, w.cap) * (1 + rng.normal(0, 0.02, (steps, m)))
    loss[w.link_dead] = 1.0
    rtt[w.link_dead] = np.nan
    mbps[w.link_dead] = 0.0
    reported = carried if w.hidden_node is None else honest.copy()
    if w.hidden_node is not None:  # the blackhole claims it forwarded what it received
        reported[:, w.flows_through(w.hidden_node)] = (w.demand * w.routed_t)[
            :, w.flows_through(w.hidden_node)
        ]
    fwd = w.over_nodes(honest)
    if w.hidden_node is not None:
        fwd[:, w.hidden_node] = w.over_nodes(reported)[:, w.hidden_node]
    fwd = fwd * (1 + rng.normal(0, 0.03, (steps, n)))
    node_util = np.zeros((steps, n))
    node_over = np.zeros((steps, n))
    for side in (0, 1):
        np.add.at(node_util.T, ends[:, side], (u / (1 - u)).T)
        np.add.at(node_over.T, ends[:, side], (over * w.cap * PKTS_PER_MBPS / 2).T)
    cpu_base = rng.uniform(5, 30, n)
    cpu_noise = rng.uniform(1.0, 6.0, n)
    cpu = cpu_base + 25 * fwd / 500 + w.cpu_add + rng.normal(0, 1.0, (steps, n)) * cpu_noise
    cpu = np.clip(cpu, 0, 100)
    queue = 3 * node_util + w.queue_add + rng.poisson(1.0, (steps, n))
    drop_queue = node_over + w.dropq_add + rng.poisson(0.3, (steps, n))
    drop_noroute = w.noroute + rng.poisson(0.1, (steps, n))
    path_loss = w.along_paths(loss_true)
    dead_flows = (w.goodput < 0.1) & (w.demand > 0)
    retrans_flow = honest * PKTS_PER_MBPS * np.minimum(path_loss, 1) + dead_flows * w.demand * 4
    src_ix = np.array([w.node_ix[s] for s, _ in w.flows])
    retrans = np.zeros((steps, n))
    np.add.at(retrans.T, src_ix, retrans_flow.T)
    retrans = retrans * (1 + rng.normal(0, 0.1, (steps, n))).clip(0) + rng.poisson(0.5, (steps, n))
    links_up = np.zeros((steps, n))
    for side in (0, 1):
        np.add.at(links_up.T, ends[:, side], (~w.link_dead).T.astype(float))
    nodes = np.stack([cpu, queue, drop_queue, drop_noroute, retrans, fwd, links_up], axis=2)
    nodes[w.node_dead] = np.nan
    links = np.stack([rtt, loss, mbps], axis=2)
    values = np.concatenate([nodes.reshape(steps, -1), links.reshape(steps, -1)], axis=1)
    gaps = rng.random(values.shape) < rng.uniform(0.0, 0.01)
    values[gaps] = np.nan
    clipped: npt.NDArray[np.float64] = np.maximum(values, 0.0, where=~np.isnan(values), out=values)
    return clipped
