"""Regression scores for reports: Spearman, Pearson, MAE, R^2, top-k overlap (numpy only)."""

from __future__ import annotations

import math

import numpy as np


def rank_average(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given the average of the ranks they span."""
    _, inverse, counts = np.unique(np.asarray(values), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse.reshape(-1)]


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant or there are fewer than 2 values."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.size < 2:
        return math.nan
    da, db = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(da @ da) * float(db @ db))
    return float(da @ db) / denom if denom > 0 else math.nan


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho: Pearson correlation of the tie-averaged ranks."""
    return pearson(rank_average(np.asarray(a).reshape(-1)), rank_average(np.asarray(b).reshape(-1)))


def mae(truth: np.ndarray, pred: np.ndarray) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(np.asarray(truth, np.float64) - np.asarray(pred, np.float64))))


def r2(truth: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot; NaN for a constant truth."""
    truth = np.asarray(truth, dtype=np.float64)
    ss_tot = float(np.sum((truth - truth.mean()) ** 2))
    ss_res = float(np.sum((truth - np.asarray(pred, dtype=np.float64)) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan


def top_k_overlap(truth: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Share of the k truly lowest-loss runs that are also among the k predicted lowest."""
    k = min(k, len(truth))
    if k <= 0:
        return math.nan
    best_true = set(np.argsort(truth, kind="stable")[:k].tolist())
    best_pred = set(np.argsort(pred, kind="stable")[:k].tolist())
    return len(best_true & best_pred) / k


def clean(value: float, digits: int = 6) -> float | None:
    """A score for JSON: rounded, and None for NaN (canonical JSON refuses NaN)."""
    return None if not math.isfinite(value) else round(float(value), digits)


def score(truth: np.ndarray, pred: np.ndarray, *, with_r2: bool = True) -> dict[str, float | None]:
    """Spearman, MAE and (optionally) R^2 of predictions, ready for a JSON report."""
    result = {"spearman": clean(spearman(truth, pred)), "mae": clean(mae(truth, pred))}
    if with_r2:
        result["r2"] = clean(r2(truth, pred))
    return result
