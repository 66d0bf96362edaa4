"""Evaluating a predictor on a dataset directory: scores and predicted-vs-measured plots."""
from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np

from search_spaces.errors import HwnasError


def evaluate_predictor(predictor, data_dirs: Sequence[str | os.PathLike], plot: str | os.PathLike | None = None,
                       spaces: Sequence[str] | None = None) -> dict[str, Any]:
    """``{target: {metric: {mape, acc10, spearman, n, within_2std}}, "by_space": {...}}``.

    Every labelled network of the directories is scored (use a dataset the predictor
    was not trained on, or its test split, for an honest number).
    """
    from predictors.train import evaluate_graphs, load_graphs

    graphs, names = load_graphs(data_dirs, spaces=spaces)
    shared = [n for n in predictor.label_names if n in names]
    if not shared:
        raise HwnasError(
            f"the data has labels {names[:6]}...; predictor {predictor.name!r} predicts {predictor.label_names}: "
            "nothing in common to score"
        )
    for g in graphs:
        g.label_names = names
    report = evaluate_graphs(predictor, graphs)
    if plot:
        _plot(predictor, graphs, names, plot)
    return report


def _plot(predictor, graphs, names, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean, _ = predictor.predict_graphs(graphs)
    y = np.concatenate([g.y.numpy() for g in graphs]).astype(np.float64)
    spaces = np.array([g.space for g in graphs])
    labels = [(i, n) for i, n in enumerate(predictor.label_names) if n in names]
    cols = min(4, len(labels))
    rows = math.ceil(len(labels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
    for ax, (i, name) in zip(axes.flat, labels):
        j = names.index(name)
        keep = np.isfinite(y[:, j]) & (y[:, j] > 0)
        for s in sorted(set(spaces[keep])):
            k = keep & (spaces == s)
            ax.scatter(y[k, j], mean[k, i], s=6, alpha=0.6, label=s)
        if keep.any():
            lo, hi = y[keep, j].min(), y[keep, j].max()
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            ax.plot([lo, hi], [lo * 1.1, hi * 1.1], "k:", lw=0.5)
            ax.plot([lo, hi], [lo * 0.9, hi * 0.9], "k:", lw=0.5)
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("measured")
        ax.set_ylabel("predicted")
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, markerscale=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
