"""Training of :class:`~x0tta6bl4.ml.model.RcaGNN` on fault cases (plain torch, no Ray).

The loss has two parts: a softmax cross-entropy over the vertices of each
fault case (the ranking: the root cause must score above every other node and
link of its own case) and a per-vertex binary cross-entropy (the anomaly
score: only the root cause is anomalous, and nothing is in a ``none`` case).
The anomaly start given to the features is jittered by a few seconds during
training, because a detector fires late or early.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from x0tta6bl4.errors import MLError
from x0tta6bl4.mesh.topology import link_key
from x0tta6bl4.ml.features import FEATURES, CaseGraph, featurize
from x0tta6bl4.ml.model import RcaGNN
from x0tta6bl4.ml.scenarios.case import Case
from x0tta6bl4.ml.schema import FAULT_ORDER, LINK_FAULTS

__all__ = [
    "Sample",
    "TrainConfig",
    "case_graph",
    "fault_kinds",
    "fit",
    "full_logits",
    "logits",
    "make_samples",
    "set_threads",
]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run.

    Args:
        epochs: passes over the training cases.
        batch_cases: cases per optimisation step.
        lr: Adam learning rate (cosine-decayed to 5 % of it).
        weight_decay: AdamW weight decay.
        hidden: model width.
        layers: GraphSAGE layers (0: the non-graph MLP baseline).
        dropout: dropout while training.
        jitter_s: the anomaly start is moved by up to this many seconds.
        bce_weight: weight of the per-vertex anomaly loss next to the ranking loss.
        seed: seed of initialisation, batching and jitter.
    """

    epochs: int = 30
    batch_cases: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    hidden: int = 48
    layers: int = 3
    dropout: float = 0.1
    jitter_s: float = 3.0
    bce_weight: float = 5.0
    seed: int = 0

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass
class Sample:
    """One case ready for the model: its features, the index of its root cause (-1: none),
    the anomaly start the features were computed at and the fault's index in FAULT_ORDER."""

    graph: CaseGraph
    target: int
    start_s: float
    kind: int = -1


def set_threads(threads: int | None) -> None:
    """Limit torch's intra-op threads (the machine is shared with Ray workers)."""
    if threads is not None and threads > 0:
        torch.set_num_threads(threads)


def case_graph(case: Case, shift_s: float = 0.0) -> CaseGraph:
    """Features of ``case`` with its labelled anomaly start moved by ``shift_s``."""
    return featurize(
        case.times, case.columns, case.values, case.label.start_s + shift_s, case.topology
    )


def _target(case: Case, graph: CaseGraph) -> int:
    location = case.label.location
    if location is None:
        return -1
    if "-" in location:
        a, _, b = location.partition("-")
        location = link_key(a, b)
    return graph.index(location)


def make_samples(cases: Sequence[Case], jitter_s: float = 0.0, seed: int = 0) -> list[Sample]:
    """Featurize cases; with ``jitter_s`` each case's start is moved by a random whole second."""
    rng = np.random.default_rng(seed)
    samples = []
    for case in cases:
        shift = float(rng.integers(-int(jitter_s), int(jitter_s) + 1)) if jitter_s >= 1 else 0.0
        graph = case_graph(case, shift)
        kind = case.label.kind
        samples.append(
            Sample(
                graph,
                _target(case, graph),
                case.label.start_s + shift,
                FAULT_ORDER.index(kind) if kind in FAULT_ORDER else -1,
            )
        )
    return samples


def _collate(samples: Sequence[Sample]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    xs, edges, batch, targets, kinds = [], [], [], [], []
    offset = 0
    for i, s in enumerate(samples):
        n = len(s.graph.entities)
        xs.append(torch.from_numpy(s.graph.x))
        edges.append(torch.from_numpy(s.graph.edge_index) + offset)
        batch.append(torch.full((n,), i, dtype=torch.long))
        targets.append(s.target + offset if s.target >= 0 else -1)
        kinds.append(s.kind)
        offset += n
    return (
        torch.cat(xs),
        torch.cat(edges, dim=1),
        torch.cat(batch),
        torch.tensor(targets),
        torch.tensor(kinds),
    )


def _loss(full: Tensor, batch: Tensor, targets: Tensor, kinds: Tensor, bce_weight: float) -> Tensor:
    out = full[:, 0]
    graphs = int(batch.max()) + 1
    peak = torch.full((graphs,), -1e9, device=out.device)
    peak = peak.scatter_reduce(0, batch, out.detach(), "amax")
    sums = torch.zeros(graphs, device=out.device).index_add(0, batch, torch.exp(out - peak[batch]))
    lse = sums.log() + peak
    faulty = targets >= 0
    ranking = (lse[faulty] - out[targets[faulty]]).mean() if faulty.any() else out.sum() * 0
    labels = torch.zeros_like(out)
    labels[targets[faulty]] = 1.0
    anomaly = torch.nn.functional.binary_cross_entropy_with_logits(out, labels)
    known = faulty & (kinds >= 0)
    kind = (
        torch.nn.functional.cross_entropy(full[targets[known], 1:], kinds[known])
        if known.any()
        else out.sum() * 0
    )
    return ranking + bce_weight * anomaly + 0.5 * kind


def fit(
    samples: Sequence[Sample],
    config: TrainConfig | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    device: str = "cpu",
) -> tuple[RcaGNN, dict[str, float]]:
    """Train a model on ``samples``; ``progress(epoch, epochs, loss)`` after each epoch.

    Trains on ``device`` (``cpu`` or ``cuda``) and returns the model on the
    CPU, in eval mode, with ``{"seconds", "final_loss", "cases"}``.
    """
    cfg = config or TrainConfig()
    if not samples:
        raise MLError("no training cases", fix="generate some with `x0tta6bl4 ml dataset`")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = RcaGNN(len(FEATURES), cfg.hidden, cfg.layers, cfg.dropout, len(FAULT_ORDER)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((len(samples) + cfg.batch_cases - 1) // cfg.batch_cases)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=max(steps, 1), pct_start=0.1, final_div_factor=20
    )
    started = time.perf_counter()
    model.train()
    loss_value = float("nan")
    for epoch in range(cfg.epochs):
        order = rng.permutation(len(samples))
        total, count = 0.0, 0
        for lo in range(0, len(order), cfg.batch_cases):
            x, edge_index, batch, targets, kinds = _collate(
                [samples[i] for i in order[lo : lo + cfg.batch_cases]]
            )
            out = model.forward_full(x.to(device), edge_index.to(device))
            batch, targets, kinds = batch.to(device), targets.to(device), kinds.to(device)
            loss = _loss(out, batch, targets, kinds, cfg.bce_weight)
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(targets)
            count += len(targets)
        loss_value = total / max(count, 1)
        if progress is not None:
            progress(epoch + 1, cfg.epochs, loss_value)
    model.eval()
    model.cpu()
    return model, {
        "seconds": time.perf_counter() - started,
        "final_loss": loss_value,
        "cases": float(len(samples)),
    }


@torch.no_grad()
def logits(model: RcaGNN, graph: CaseGraph) -> np.ndarray:
    """The model's root logit for every entity of one case (no gradients)."""
    return full_logits(model, graph)[:, 0]


@torch.no_grad()
def full_logits(model: RcaGNN, graph: CaseGraph) -> np.ndarray:
    """``[V, 1 + kinds]``: root logit and fault-kind logits of every entity."""
    out = model.forward_full(torch.from_numpy(graph.x), torch.from_numpy(graph.edge_index))
    return out.numpy().astype(np.float64)


def fault_kinds(full: np.ndarray, is_link: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Most likely fault kind of every entity (link kinds for links, node kinds for nodes)
    and its probability among the kinds of that entity type."""
    kind_logits = full[:, 1:]
    link_mask = np.array([k in LINK_FAULTS for k in FAULT_ORDER])
    allowed = np.where(is_link[:, None], link_mask[None], ~link_mask[None])
    masked = np.where(allowed, kind_logits, -np.inf)
    masked = masked - masked.max(axis=1, keepdims=True)
    prob = np.exp(masked)
    prob /= prob.sum(axis=1, keepdims=True)
    best = prob.argmax(axis=1)
    return [str(FAULT_ORDER[i]) for i in best], prob[np.arange(len(best)), best]
