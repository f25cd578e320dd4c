"""The root-cause model: GraphSAGE over the mesh's node-link incidence graph."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.nn import SAGEConv

__all__ = ["RcaGNN"]


class RcaGNN(nn.Module):
    """Scores every node and link of a mesh as the root cause of an anomaly.

    An MLP encodes each vertex's change features; ``layers`` residual
    GraphSAGE layers (mean and max aggregation) mix in the evidence of
    neighbouring links and nodes; a head reads the encoding and the mixed
    state and gives one root logit per vertex plus ``kinds`` fault-kind logits
    (see :data:`~x0tta6bl4.ml.schema.FAULT_ORDER`).  ``sigmoid(root logit)``
    is the anomaly score (the probability that the vertex is faulty); the root
    logits ranked within one case are the root-cause ranking.  With
    ``layers=0`` it is the non-graph MLP baseline on the same features.  All
    weights are shared across vertices, so the model works on graphs of any
    size and shape.

    Args:
        in_features: input features per vertex.
        hidden: width of every hidden layer (default 64).
        layers: GraphSAGE layers (default 3).
        dropout: dropout after each layer while training (default 0.1).
        kinds: fault kinds classified per vertex (default 6).

    Shapes:
        x: ``[V, in_features]``; edge_index: ``[2, E]``; ``forward``: ``[V]``
        (root logits); ``forward_full``: ``[V, 1 + kinds]`` (root, then kinds).
    """

    def __init__(
        self,
        in_features: int,
        hidden: int = 64,
        layers: int = 3,
        dropout: float = 0.1,
        kinds: int = 6,
    ) -> None:
        super().__init__()
        self.in_features, self.hidden, self.layers = in_features, hidden, layers
        self.dropout, self.kinds = dropout, kinds
        self.encoder = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden)
        )
        self.convs = nn.ModuleList(
            SAGEConv(hidden, hidden, aggr=["mean", "max"]) for _ in range(layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.head = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1 + kinds)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            reset = getattr(module, "reset_parameters", None)
            if module is not self and callable(reset):
                reset()

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.forward_full(x, edge_index)[:, 0]

    def forward_full(self, x: Tensor, edge_index: Tensor) -> Tensor:
        h0 = self.encoder(x)
        h = h0
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = h + torch.relu(norm(conv(h, edge_index)))
            h = nn.functional.dropout(h, self.dropout, self.training)
        out: Tensor = self.head(torch.cat([h0, h], dim=-1))
        return out

    def config(self) -> dict[str, Any]:
        """Constructor arguments, stored with checkpoints."""
        return {
            "in_features": self.in_features,
            "hidden": self.hidden,
            "layers": self.layers,
            "dropout": self.dropout,
            "kinds": self.kinds,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(in_features={self.in_features}, hidden={self.hidden}, "
            f"layers={self.layers}, dropout={self.dropout}, kinds={self.kinds})"
        )
