"""PerfSAGE: a GraphSAGE network that maps a TFLite graph to performance metrics.

Shapes: node features ``x`` ``[N, F]`` and operator types ``op_type`` ``[N]`` ->
embedding ``[N, E]`` joined to ``x`` -> ``layers`` x SAGEConv ``[N, H]`` -> readout
``[B, H]`` (optionally joined to the graph features ``u`` ``[B, G]``) -> head
``[B, M]``, one output per (target, metric) label.

``PUBLISHED`` is the configuration of Chai et al. (2023): two mean-aggregating
SAGE layers of 128 units, a 32-d operator embedding, L2-normalised node
embeddings, mean readout, a linear head, trained with a MAPE loss.  ``DEFAULT`` is
ours (see the README's accuracy tables for the measurements behind each change):
three residual layers, narrower (48 units: a search predicts thousands of graphs a
second), targets in log space, and an additive readout: every operator contributes
a positive cost per label, the graph (mean embedding + graph-level features) an
overhead term, and the label is their sum (log-sum-exp), which extrapolates to
graphs larger than the training ones instead of exploding.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from predictors.graph import GRAPH_FEATURES, NODE_FEATURES, NUM_OP_TYPES

PUBLISHED: dict[str, Any] = {
    "layers": 2, "hidden": 128, "op_embedding": 32, "aggr": "mean", "l2_normalize": True,
    "residual": False, "readout": "mean", "graph_features": False, "head": "linear",
    "target_transform": "standard", "loss": "mape", "lr": 0.01, "batch_size": 64, "epochs": 200,
    "weight_decay": 0.0, "ensemble": 1, "node_linear": False,
}
DEFAULT: dict[str, Any] = {
    "layers": 3, "hidden": 48, "op_embedding": 32, "aggr": "mean", "l2_normalize": False,
    "residual": True, "readout": "lse", "graph_features": True, "head": "mlp",
    "target_transform": "log", "loss": "l1", "lr": 0.003, "batch_size": 64, "epochs": 200,
    "weight_decay": 1e-5, "ensemble": 3, "node_linear": False, "aux_metrics": False,
    "priors": False,
    # the share of training nodes whose operator type reads as UNKNOWN_OP_TYPE each batch: that
    # embedding learns "some operator", which a predictor trained so reads for the operator
    # types no training graph had (0: unseen types keep their untrained embeddings)
    "unknown_ops": 0.0,
}
MODEL_KEYS = ("layers", "hidden", "op_embedding", "aggr", "l2_normalize", "residual", "readout",
              "graph_features", "head", "node_linear")


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
        if config is not None and "node_linear" not in config:
            cfg["node_linear"] = False  # a predictor saved before the option existed
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
        # "lse": every operator contributes a positive cost per label and the graph adds an
        # overhead term; the label is their sum, computed in log space (log-sum-exp).  A sum
        # of per-operator costs is what latency and energy are, a peak memory is close to
        # the largest term, and a graph larger than any seen in training grows its label by
        # its operators' costs instead of by an unbounded linear extrapolation.
        self.lse = cfg["readout"] == "lse"
        if self.lse:
            self.node_head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, num_outputs))
            # a linear path from the operator's own (log-scaled) features to its log-cost:
            # sizes beyond the training range extrapolate as power laws, not through LayerNorm
            self.node_linear = (nn.Linear(num_node_features, num_outputs, bias=False)
                                if cfg.get("node_linear") else None)
            self.register_buffer("label_mean", torch.zeros(num_outputs))
            self.register_buffer("label_std", torch.ones(num_outputs))
            self.register_buffer("label_cap", torch.full((num_outputs,), 50.0))
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
        elif cfg["readout"] == "lse":
            g = global_mean_pool(h, batch, size)
        else:  # mean+sum
            g = torch.cat([global_mean_pool(h, batch, size), global_add_pool(h, batch, size)], dim=-1)
        if cfg["graph_features"]:
            g = torch.cat([g, u], dim=-1)
        if not self.lse:
            return self.head(g)
        # log(sum_i exp(node_i) + exp(graph)) per label, stable: shift by the per-graph maximum
        # log-costs in label units, softly capped at e x the largest training label: one
        # operator unlike any in training must not claim an exponentially large cost
        cap = self.label_cap
        log_cost = self.node_head(h)
        if self.node_linear is not None:
            log_cost = log_cost + self.node_linear(x)
        node = cap - torch.nn.functional.softplus(cap - log_cost)  # [N, M]
        overhead = cap - torch.nn.functional.softplus(cap - self.head(g))  # [B, M]
        top = torch.maximum(global_max_pool(node, batch, size), overhead).detach()
        total = global_add_pool(torch.exp(node - top[batch]), batch, size) + torch.exp(overhead - top)
        log_label = top + torch.log(total)
        return (log_label - self.label_mean) / self.label_std  # the scaler's standardised log space

    def set_label_scale(self, mean, std, log_max) -> None:
        """The log-label scaler and the largest log label of the training data (``lse`` readout)."""
        if self.lse:
            self.label_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
            self.label_std.copy_(torch.as_tensor(std, dtype=torch.float32))
            self.label_cap.copy_(torch.as_tensor(log_max, dtype=torch.float32) + 1.0)
            with torch.no_grad():  # start near the mean label: ~32 operators of equal cost
                self.node_head[-1].bias.copy_(self.label_mean - math.log(32.0))
                self.head[-1].bias.copy_(self.label_mean - math.log(32.0))
