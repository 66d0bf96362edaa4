"""Accuracy measures of a performance predictor (the paper's and the field's)."""
from __future__ import annotations

import numpy as np


def mape(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute percentage error, in percent."""
    return float(np.mean(np.abs(pred - true) / np.abs(true)) * 100.0)


def acc_within(pred: np.ndarray, true: np.ndarray, tolerance: float = 0.10) -> float:
    """Share (percent) of predictions within +-tolerance of the truth (acc10 for 0.10)."""
    return float(np.mean(np.abs(pred - true) <= tolerance * np.abs(true)) * 100.0)


def spearman(pred: np.ndarray, true: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(pred) < 3 or np.all(true == true[0]) or np.all(pred == pred[0]):
        return float("nan")
    return float(spearmanr(pred, true).statistic)


def scores(pred: np.ndarray, true: np.ndarray, std: np.ndarray | None = None) -> dict[str, float]:
    """MAPE, acc10, Spearman and n; with ``std``, the share of truths inside +-2 std."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    keep = np.isfinite(true) & np.isfinite(pred) & (true != 0)
    pred, true = pred[keep], true[keep]
    out = {"mape": float("nan"), "acc10": float("nan"), "spearman": float("nan"), "n": int(keep.sum())}
    if keep.sum():
        out.update(mape=mape(pred, true), acc10=acc_within(pred, true), spearman=spearman(pred, true))
        if std is not None and np.any(np.asarray(std, np.float64)[keep] > 0):  # one member: no spread
            s = np.asarray(std, np.float64)[keep]
            out["within_2std"] = float(np.mean(np.abs(pred - true) <= 2 * s) * 100.0)
    return out
