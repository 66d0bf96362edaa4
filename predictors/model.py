"""PerfSAGE: a GraphSAGE network that maps a TFLite graph to performance metrics.

Shapes: node features ``x`` ``[N, F]`` and operator types ``op_type`` ``[N]`` ->
embedding ``[N, E]`` joined to ``x`` -> ``layers`` x SAGEConv ``[N, H]`` -> readout
``[B, H]`` (optionally joined to the graph features ``u`` ``[B, G]``) -> head
``[B, M]``, one output per (target, metric) label.

``PUBLISHED`` is the configuration of Chai et al. (2023): two mean-aggregating
SAGE layers of 128 units, a 32-d operator embedding, L2-normalised node
embeddings, mean readout, a linear head, trained with a MAPE loss.  ``DEFAULT`` is
ours (see the README's accuracy tables for the measurements behind each change):
deeper with residual connections, mean+sum readout joined to the graph-level
features, an MLP head, targets in log space.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from predictors.graph import GRAPH_FEATURES, NODE_FEATURES, NUM_OP_TYPES

PUBLISHED: dict[str, Any] = {
    "layers": 2, "hidden": 128, "op_embedding": 32, "aggr": "mean", "l2_normalize": True,
    "residual": False, "readout": "mean", "graph_features": False, "head": "linear",
    "target_transform": "standard", "loss": "mape", "lr": 0.01, "batch_size": 64, "epochs": 200,
    "weight_decay": 0.0, "ensemble": 1,
}
DEFAULT: dict[str, Any] = {
    "layers": 4, "hidden": 128, "op_embedding": 32, "aggr": "mean", "l2_normalize": False,
    "residual": True, "readout": "mean+sum", "graph_features": True, "head": "mlp",
    "target_transform": "log", "loss": "l1", "lr": 0.003, "batch_size": 64, "epochs": 200,
    "weight_decay": 1e-5, "ensemble": 3,
}
MODEL_KEYS = ("layers", "hidden", "op_embedding", "aggr", "l2_normalize", "residual", "readout",
              "graph_features", "head")


class PerfSAGE(nn.Module):
    """GraphSAGE regression over TFLite operator graphs.

    Args:
        num_outputs: M, the number of (target, metric) labels predicted jointly.
        config: the ``MODEL_KEYS`` of ``PUBLISHED`` / ``DEFAULT``.
    """

    def __init__(self, num_outputs: int, config: dict[str, Any] | None = None,
                 num_node_features: int = len(NODE_FEATURES), num_graph_features: int = len(GRAPH_FEATURES)):
        super().__init__()
        from torch_geometric.nn import SAGEConv

        cfg = {**DEFAULT, **(config or {})}
        self.config = {k: cfg[k] for k in MODEL_KEYS}
        hidden, emb = cfg["hidden"], cfg["op_embedding"]
        self.embedding = nn.Embedding(NUM_OP_TYPES, emb)
        self.input = nn.Linear(num_node_features + emb, hidden) if cfg["residual"] else None
        in_dim = hidden if cfg["residual"] else num_node_features + emb
        self.convs = nn.ModuleList()
        for _ in range(cfg["layers"]):
            self.convs.append(SAGEConv(in_dim, hidden, aggr=cfg["aggr"]))
            in_dim = hidden
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(cfg["layers"])) if cfg["residual"] else None
        readout_dim = hidden * (2 if cfg["readout"] in ("mean+sum", "mean+max") else 1)
        if cfg["graph_features"]:
            readout_dim += num_graph_features
        if cfg["head"] == "mlp":
            self.head = nn.Sequential(nn.Linear(readout_dim, hidden), nn.GELU(), nn.Linear(hidden, num_outputs))
        else:
            self.head = nn.Linear(readout_dim, num_outputs)

    def forward(self, x: torch.Tensor, op_type: torch.Tensor, edge_index: torch.Tensor,
                batch: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
        from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool
        from torch_geometric.utils import scatter

        cfg = self.config
        h = torch.cat([x, self.embedding(op_type)], dim=-1)
        if self.input is not None:
            h = self.input(h)
        src, dst = edge_index[0], edge_index[1]
        for i, conv in enumerate(self.convs):
            # SAGEConv's own arithmetic (lin_l(mean of in-neighbours) + lin_r(self)), called
            # directly: MessagePassing.propagate costs more than the maths on small graphs.
            agg = scatter(h.index_select(0, src), dst, dim=0, dim_size=h.shape[0], reduce=cfg["aggr"])
            out = conv.lin_l(agg) + conv.lin_r(h)
            if cfg["residual"]:
                h = self.norms[i](h + torch.nn.functional.gelu(out))
            else:
                h = torch.relu(out)
            if cfg["l2_normalize"]:
                h = torch.nn.functional.normalize(h, p=2, dim=-1)
        size = int(batch.max()) + 1 if batch.numel() else 0
        if cfg["readout"] == "mean":
            g = global_mean_pool(h, batch, size)
        elif cfg["readout"] == "sum":
            g = global_add_pool(h, batch, size)
        elif cfg["readout"] == "mean+max":
            g = torch.cat([global_mean_pool(h, batch, size), global_max_pool(h, batch, size)], dim=-1)
        else:  # mean+sum
            g = torch.cat([global_mean_pool(h, batch, size), global_add_pool(h, batch, size)], dim=-1)
        if cfg["graph_features"]:
            g = torch.cat([g, u], dim=-1)
        return self.head(g)
