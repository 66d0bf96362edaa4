"""The inference path of a predictor: collate and scale graphs in a few tensor operations.

A search asks for thousands of predictions.  ``Batch.from_data_list`` copies every
attribute of every graph, and the normaliser works in float64 NumPy; for inference
only ``x``, ``op_type``, ``edge_index``, ``batch`` and ``u`` are needed, so they are
concatenated directly and scaled once per chunk in float32.  Same numbers as the
training path (tested), several times faster.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

_SQRT1_2, _ONE, _HALF = np.float32(0.7071067811865476), np.float32(1.0), np.float32(0.5)


def collate(graphs: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw ``x``, ``op_type``, ``edge_index`` (offset per graph), ``batch`` and ``u``."""
    sizes = [int(g.num_nodes) for g in graphs]
    offsets = np.cumsum([0] + sizes[:-1]).tolist()
    x = torch.cat([g.x for g in graphs]).float()
    op_type = torch.cat([g.op_type for g in graphs])
    edges = [g.edge_index + o for g, o in zip(graphs, offsets) if g.edge_index.numel()]
    edge_index = torch.cat(edges, dim=1) if edges else torch.zeros((2, 0), dtype=torch.long)
    batch = torch.repeat_interleave(torch.arange(len(graphs)), torch.tensor(sizes, dtype=torch.long))
    u = torch.cat([g.u for g in graphs]).float()
    return x, op_type, edge_index, batch, u


class Scaling:
    """A normaliser's columns (log1p where fitted so, then standardise) as float32 tensor ops.

    With ``live_only``, the columns that were constant in training (scaled to exactly 0
    for every input) are dropped instead of computed: :meth:`live` lists the rest.
    """

    def __init__(self, columns, live_only: bool = False):
        inv_std = np.asarray(columns.inverse_std(), np.float64)
        keep = np.flatnonzero(inv_std != 0) if live_only else np.arange(len(inv_std))
        self.keep = torch.as_tensor(keep, dtype=torch.long) if live_only else None
        self.live = keep
        self.cols = torch.as_tensor(np.flatnonzero(np.asarray(columns.log)[keep]), dtype=torch.long)
        self.mean = torch.as_tensor(np.asarray(columns.mean)[keep], dtype=torch.float32)
        self.inv_std = torch.as_tensor(inv_std[keep], dtype=torch.float32)

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        from predictors.graph.normalizer import CLIP

        values = values.index_select(1, self.keep) if self.keep is not None else values.clone()
        if self.cols.numel():
            values[:, self.cols] = torch.log1p(values[:, self.cols].clamp_min(0))
        return values.sub_(self.mean).mul_(self.inv_std).clamp_(-CLIP, CLIP)


class StackedEnsemble:
    """The members of a PerfSAGE ensemble evaluated together, one operation for all.

    Small graphs make a forward pass dispatch-bound: three members cost three times the
    ~40 operator calls.  Here every weight carries a leading member axis ``E`` and the
    activations are ``[E, N, H]``, so each layer is one batched matmul (``baddbmm``)
    for all members, the graph operations (gather, scatter, pooling) run once over the
    member axis, and the input layer folds the operator embedding into a per-member
    lookup table.  The arithmetic is the members' own (tested equal).  Only the default
    architecture is stacked (residual SAGE layers, mean aggregation, the ``lse``
    readout with graph features and an MLP head); :meth:`supports` says which.
    """

    @staticmethod
    def supports(config: dict) -> bool:
        return (config.get("residual") and config.get("readout") == "lse" and config.get("aggr") == "mean"
                and config.get("graph_features") and config.get("head") == "mlp"
                and not config.get("l2_normalize"))

    def __init__(self, members, live_columns=None):
        """``live_columns``: the node-feature columns the inputs keep (``Scaling.live``);
        the input weights of the others, which only ever see zeros, are dropped."""
        def stack(get):
            return torch.stack([get(m).detach().float() for m in members]).contiguous()

        def weight(get):  # nn.Linear weight [O, I] -> [E, I, O], for baddbmm
            return stack(lambda m: get(m).weight.t())

        def bias(get):
            return stack(lambda m: get(m).bias).unsqueeze(1)  # [E, 1, O]

        first = members[0]
        self.node_linear = first.node_linear is not None
        f = first.input.in_features - first.embedding.embedding_dim
        live = torch.as_tensor(np.arange(f) if live_columns is None else live_columns, dtype=torch.long)
        self.in_x = stack(lambda m: m.input.weight[:, :f][:, live].t())  # [E, F_live, H]
        # the embedding times its part of the input layer, plus the bias: one row per operator type
        self.in_table = stack(lambda m: m.embedding.weight @ m.input.weight[:, f:].t() + m.input.bias)
        self.lin_l = [weight(lambda m, i=i: m.convs[i].lin_l) for i in range(len(first.convs))]
        self.lin_l_b = [bias(lambda m, i=i: m.convs[i].lin_l) for i in range(len(first.convs))]
        self.lin_r = [weight(lambda m, i=i: m.convs[i].lin_r) for i in range(len(first.convs))]
        self.norm_w = [stack(lambda m, i=i: m.norms[i].weight).unsqueeze(1) for i in range(len(first.convs))]
        self.norm_b = [stack(lambda m, i=i: m.norms[i].bias).unsqueeze(1) for i in range(len(first.convs))]
        self.eps = [first.norms[i].eps for i in range(len(first.convs))]
        self.nh1, self.nh1_b = weight(lambda m: m.node_head[0]), bias(lambda m: m.node_head[0])
        self.nh2, self.nh2_b = weight(lambda m: m.node_head[2]), bias(lambda m: m.node_head[2])
        if self.node_linear:
            self.nl = stack(lambda m: m.node_linear.weight[:, live].t())
        self.gh1, self.gh1_b = weight(lambda m: m.head[0]), bias(lambda m: m.head[0])
        self.gh2, self.gh2_b = weight(lambda m: m.head[2]), bias(lambda m: m.head[2])
        self.cap = stack(lambda m: m.label_cap).unsqueeze(1)  # [E, 1, M]
        self.label_mean = stack(lambda m: m.label_mean).unsqueeze(1)
        self.label_std = stack(lambda m: m.label_std).unsqueeze(1)

    def __call__(self, x: torch.Tensor, op_type: torch.Tensor, edge_index: torch.Tensor,
                 batch: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Standardised log labels of every member: ``[E, B, M]``."""
        F = torch.nn.functional
        E, N = self.in_x.shape[0], x.shape[0]
        B = int(batch[-1]) + 1 if N else 0
        src, dst = edge_index[0], edge_index[1]
        deg = torch.zeros(N).index_add_(0, dst, torch.ones(dst.numel()))
        # Mean aggregation as a gather of each node's first in-neighbour plus a scatter of
        # the few others (most operators have one producer): a gather is much cheaper than
        # the scatter-add over every edge.  Nodes without one gather row 0, times 0.
        order = torch.argsort(dst, stable=True)
        dst_sorted, src_sorted = dst[order], src[order]
        first = torch.ones(dst.numel(), dtype=torch.bool)
        first[1:] = dst_sorted[1:] != dst_sorted[:-1]
        gather = torch.zeros(N, dtype=torch.long)
        gather[dst_sorted[first]] = src_sorted[first]
        extra_dst, extra_src = dst_sorted[~first], src_sorted[~first]
        inv_deg = torch.where(deg > 0, 1.0 / deg.clamp_min(1.0), 0.0).view(1, N, 1)
        count = torch.zeros(B).index_add_(0, batch, torch.ones(N))
        inv_count = (1.0 / count.clamp_min(1.0)).view(1, B, 1)

        h = torch.matmul(x, self.in_x).add_(self.in_table.index_select(1, op_type))  # [E, N, H]
        for lin_l, lin_l_b, lin_r, norm_w, norm_b, eps in zip(
                self.lin_l, self.lin_l_b, self.lin_r, self.norm_w, self.norm_b, self.eps):
            agg = h.index_select(1, gather)
            if extra_dst.numel():
                agg.index_add_(1, extra_dst, h.index_select(1, extra_src))
            agg.mul_(inv_deg)
            out = torch.baddbmm(lin_l_b, agg, lin_l).baddbmm_(h, lin_r)
            r = h.add_(F.gelu(out))
            # one layer_norm per member with its own affine: PyTorch's CPU kernel with a
            # weight and bias is twice as fast as the one without
            h = torch.stack([F.layer_norm(r[e], norm_w.shape[-1:], norm_w[e, 0], norm_b[e, 0], eps)
                             for e in range(E)])
        log_cost = torch.baddbmm(self.nh2_b, F.gelu(torch.baddbmm(self.nh1_b, h, self.nh1)), self.nh2)
        if self.node_linear:
            log_cost = log_cost + torch.matmul(x, self.nl)
        g = torch.zeros((E, B, h.shape[-1])).index_add_(1, batch, h).mul_(inv_count)
        g = torch.cat([g, u.expand(E, B, u.shape[-1])], dim=-1)
        head = torch.baddbmm(self.gh2_b, F.gelu(torch.baddbmm(self.gh1_b, g, self.gh1)), self.gh2)
        cap = self.cap
        node = cap - F.softplus(cap - log_cost)  # [E, N, M]
        overhead = cap - F.softplus(cap - head)  # [E, B, M]
        M = node.shape[-1]
        top = torch.full((E, B, M), -torch.inf).scatter_reduce_(
            1, batch.view(1, N, 1).expand(E, N, M), node, reduce="amax")
        top = torch.maximum(top, overhead)
        total = torch.zeros((E, B, M)).index_add_(1, batch, torch.exp(node - top.index_select(1, batch)))
        total.add_(torch.exp(overhead - top))
        return (top + torch.log(total) - self.label_mean) / self.label_std


class NumpyStacked:
    """:class:`StackedEnsemble`'s arithmetic in float32 NumPy, for one or a few small graphs.

    A single prediction (a search trial asking about one candidate) is a graph of a few
    dozen operators: there every PyTorch call costs its ~5 us of dispatch, several times
    the arithmetic.  NumPy's calls cost ~1 us, so the same forward runs ~3x faster.  The
    neighbour mean is a dense ``[N, N]`` matrix (fine for the small graphs this serves;
    :meth:`Predictor.predict_graphs` keeps large batches on the PyTorch path), pooling is
    ``reduceat`` over each graph's contiguous run of nodes.  Same numbers as the stacked
    PyTorch path to float32 rounding (tested).
    """

    MAX_NODES = 256  # the dense neighbour matrix grows as N^2

    def __init__(self, stacked: StackedEnsemble, scale_x: Scaling, scale_u: Scaling):
        def arr(t):
            return t.detach().float().numpy().copy()

        self.in_x, self.in_table = arr(stacked.in_x), arr(stacked.in_table)
        self.layers = [
            (arr(ll), arr(lb), arr(lr), arr(nw), arr(nb), np.float32(eps))
            for ll, lb, lr, nw, nb, eps in zip(stacked.lin_l, stacked.lin_l_b, stacked.lin_r,
                                               stacked.norm_w, stacked.norm_b, stacked.eps)
        ]
        self.nh = [arr(t) for t in (stacked.nh1, stacked.nh1_b, stacked.nh2, stacked.nh2_b)]
        self.gh = [arr(t) for t in (stacked.gh1, stacked.gh1_b, stacked.gh2, stacked.gh2_b)]
        self.nl = arr(stacked.nl) if stacked.node_linear else None
        self.cap, self.label_mean, self.label_std = arr(stacked.cap), arr(stacked.label_mean), arr(stacked.label_std)
        self.scales = [self._scaling(scale_x), self._scaling(scale_u)]
        from predictors.graph.normalizer import CLIP

        self.lo, self.hi = np.float32(-CLIP), np.float32(CLIP)
        self.inv_hidden = np.float32(1.0 / self.in_x.shape[-1])

    @staticmethod
    def _scaling(s: Scaling):
        keep = None if s.keep is None else s.keep.numpy()
        return keep, s.cols.numpy(), s.mean.numpy(), s.inv_std.numpy()

    def scale(self, values: np.ndarray, which: int) -> np.ndarray:
        """Raw node (``which=0``) or graph (``1``) features, scaled as :class:`Scaling` does."""
        keep, cols, mean, inv_std = self.scales[which]
        v = values[:, keep] if keep is not None else values.copy()
        v = v.astype(np.float32, copy=False)
        if cols.size:
            v[:, cols] = np.log1p(np.maximum(v[:, cols], 0))
        v -= mean
        v *= inv_std
        # the ufuncs themselves: np.clip's Python wrapper costs more than the clipping here
        np.maximum(v, self.lo, out=v)
        return np.minimum(v, self.hi, out=v)

    GELU_SMALL = 8192  # elements; below this the erf form is faster (measured crossover ~10,000)

    @staticmethod
    def _gelu(v: np.ndarray) -> np.ndarray:
        """Exact GELU, ``x / 2 * (1 + erf(x / sqrt(2)))``.

        PyTorch's GELU kernel costs ~9 us per call whatever the size (a dozen-operator
        graph has 1,728 values per layer); ``torch.erf`` in place on a NumPy array and
        three ufuncs cost half that there, and agree with the float64 GELU to 5e-7.
        Larger arrays take the fused kernel (SciPy's erf is 10x slower per element).
        """
        if v.size > NumpyStacked.GELU_SMALL:
            return torch.nn.functional.gelu(torch.from_numpy(v)).numpy()
        t = v * _SQRT1_2
        erf_t = torch.from_numpy(t)
        torch.erf(erf_t, out=erf_t)
        t += _ONE
        t *= v
        t *= _HALF
        return t

    def __call__(self, x: np.ndarray, op_type: np.ndarray, edge_index: np.ndarray, sizes: Sequence[int],
                 u: np.ndarray) -> np.ndarray:
        """Scaled inputs of graphs whose nodes come in ``sizes`` runs -> ``[E, B, M]``."""
        N = x.shape[0]
        E = self.in_x.shape[0]
        single = len(sizes) == 1
        # Each call below is one NumPy ufunc or matmul: at a dozen operators the forward
        # pass is its calls' fixed cost, so the reductions call the ufuncs directly
        # (``ndarray.mean``'s Python wrapper costs 3x the sum itself).
        add, maximum = np.add, np.maximum
        mean_adj = np.zeros(N * N, np.float32)  # row i: 1/deg(i) at each in-neighbour
        if edge_index.shape[1]:
            mean_adj += np.bincount(edge_index[1] * N + edge_index[0], minlength=N * N)
            mean_adj = mean_adj.reshape(N, N)
            deg = add.reduce(mean_adj, axis=1, keepdims=True)
            np.divide(mean_adj, deg, out=mean_adj, where=deg > 0)
        else:
            mean_adj = mean_adj.reshape(N, N)
        inv_h = self.inv_hidden
        h = np.matmul(x, self.in_x)
        h += self.in_table[:, op_type]
        for lin_l, lin_l_b, lin_r, norm_w, norm_b, eps in self.layers:
            out = np.matmul(np.matmul(mean_adj, h), lin_l)
            out += np.matmul(h, lin_r)
            out += lin_l_b
            r = self._gelu(out)
            r += h
            r -= add.reduce(r, axis=-1, keepdims=True) * inv_h
            var = add.reduce(r * r, axis=-1, keepdims=True)
            var *= inv_h
            var += eps
            r /= np.sqrt(var, out=var)
            r *= norm_w
            r += norm_b
            h = r
        nh1, nh1_b, nh2, nh2_b = self.nh
        t = np.matmul(h, nh1)
        t += nh1_b
        log_cost = np.matmul(self._gelu(t), nh2)
        log_cost += nh2_b
        if self.nl is not None:
            log_cost += np.matmul(x, self.nl)
        H = h.shape[-1]
        B = len(sizes)
        g = np.empty((E, B, H + u.shape[-1]), np.float32)
        if single:
            add.reduce(h, axis=1, keepdims=True, out=g[:, :, :H])
            g[:, :, :H] *= np.float32(1.0 / N)
        else:
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
            g[:, :, :H] = add.reduceat(h, starts, axis=1)
            g[:, :, :H] /= np.asarray(sizes, np.float32).reshape(1, -1, 1)
        g[:, :, H:] = u
        gh1, gh1_b, gh2, gh2_b = self.gh
        t = np.matmul(g, gh1)
        t += gh1_b
        head = np.matmul(self._gelu(t), gh2)
        head += gh2_b
        cap = self.cap
        zero = np.float32(0)
        node = cap - np.logaddexp(zero, cap - log_cost)
        overhead = cap - np.logaddexp(zero, cap - head)
        if single:
            top = maximum(maximum.reduce(node, axis=1, keepdims=True), overhead)
            node -= top
            total = add.reduce(np.exp(node, out=node), axis=1, keepdims=True)
        else:
            top = maximum(maximum.reduceat(node, starts, axis=1), overhead)
            total = add.reduceat(np.exp(node - np.repeat(top, sizes, axis=1)), starts, axis=1)
        overhead -= top
        total += np.exp(overhead, out=overhead)
        top += np.log(total, out=total)
        top -= self.label_mean
        top /= self.label_std
        return top
