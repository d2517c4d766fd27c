"""The yearly sunspot series as a forecasting problem (Weigend, Huberman & Rumelhart's setup,
reused by Nowlan & Hinton 1992).

Each year is predicted from the ``lag`` (12) years before it, on numbers scaled by the
maximum of the training years (1700-1920); nets train on target years 1712-1920 and are
tested on 1921-1955 and 1956-1979 by the average relative variance :func:`arv`. The series
(1700-1979) is statsmodels' copy (``statsmodels.datasets.sunspots``, bundled with the
package: nothing is downloaded).

References: Weigend, Rumelhart & Huberman, `Generalization by Weight-Elimination with
Application to Forecasting <https://papers.nips.cc/paper/323>`_, NIPS 3, 1991; Nowlan &
Hinton, `Simplifying Neural Networks by Soft Weight-Sharing
<https://www.cs.toronto.edu/~hinton/absps/sunspots.pdf>`_, Neural Computation 1992.
"""

from __future__ import annotations

import numpy as np

FIRST_YEAR, LAST_YEAR, TRAIN_UNTIL, LAG = 1700, 1979, 1920, 12
#: The two test periods (target years, inclusive).
TEST_PERIODS = ((1921, 1955), (1956, 1979))


def sunspot_series() -> tuple[np.ndarray, np.ndarray]:
    """Years 1700-1979 (int) and their yearly sunspot numbers (float64), from statsmodels.

    Raises ImportError naming the package when statsmodels is missing, ValueError when its
    copy does not cover the 280 years."""
    try:
        from statsmodels.datasets import sunspots
    except ImportError as e:
        raise ImportError("the sunspot series comes with statsmodels: pip install statsmodels") from e

    frame = sunspots.load_pandas().data
    years = frame["YEAR"].to_numpy().astype(int)
    keep = (years >= FIRST_YEAR) & (years <= LAST_YEAR)
    if keep.sum() != LAST_YEAR - FIRST_YEAR + 1:
        raise ValueError(f"statsmodels' sunspot data does not cover {FIRST_YEAR}-{LAST_YEAR}")
    return years[keep], frame["SUNACTIVITY"].to_numpy()[keep].astype(np.float64)


def windows(years: np.ndarray, values: np.ndarray, lag: int = LAG, train_until: int = TRAIN_UNTIL):
    """``(x, y, target_years, variance)``: inputs ``(n, lag)`` (the ``lag`` values before
    each target, float32), targets ``(n,)``, their years, and the variance of the whole
    scaled series (what :func:`arv` divides by). Values are divided by the maximum over
    years up to ``train_until``."""
    if not 0 < lag < len(values):
        raise ValueError(f"lag must be between 1 and {len(values) - 1}, got {lag}")
    z = np.asarray(values, np.float64) / np.asarray(values)[np.asarray(years) <= train_until].max()
    x = np.stack([z[i - lag:i] for i in range(lag, len(z))]).astype(np.float32)
    return x, z[lag:].astype(np.float32), np.asarray(years)[lag:], float(np.var(z))


def sunspot_windows(lag: int = LAG, train_until: int = TRAIN_UNTIL):
    """:func:`windows` of :func:`sunspot_series`."""
    return windows(*sunspot_series(), lag=lag, train_until=train_until)


def blocked_folds(n: int, folds: int, lag: int = LAG) -> tuple[np.ndarray, np.ndarray]:
    """Blocked cross-validation over ``n`` consecutive targets: ``(weights, held)``, both
    ``(folds, n)``. Fold ``f`` holds out a contiguous block (``held[f]``, from
    ``numpy.array_split``) and trains with weight 0 on it and on the ``lag`` targets after
    it, whose input windows overlap the block (weight 1 elsewhere)."""
    if not 2 <= folds <= n:
        raise ValueError(f"need 2 <= folds <= {n}, got {folds}")
    weights, blocks = [], []
    for block in np.array_split(np.arange(n), folds):
        held = np.zeros(n, bool)
        held[block] = True
        w = np.ones(n, np.float32)
        w[block[0]:block[-1] + 1 + lag] = 0.0
        weights.append(w)
        blocks.append(held)
    return np.stack(weights), np.stack(blocks)


def arv(predictions, targets, variance: float) -> float:
    """Average relative variance ``mean (y - yhat)^2 / variance`` (Weigend et al.): 1 is
    as good as predicting the series' mean, 0 is perfect."""
    p, t = np.asarray(predictions, np.float64), np.asarray(targets, np.float64)
    if p.shape != t.shape:
        raise ValueError(f"predictions {p.shape} and targets {t.shape} differ in shape")
    return float(np.mean((p - t) ** 2) / variance)
