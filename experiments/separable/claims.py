"""The separable study's numbers: cells of seeds, the decision rules of ``config`` applied to
the rows, MobileNet's formula checked against the count, and seed 002's arithmetic (nothing
measured is typed in here)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from wsjax.models import counting
from wsjax.study import mean_std, separation, t_interval

#: Howard et al. 2017 (MobileNets), Sec. 3.1 and Table 4 (ImageNet): the 3x3 conv cost cut,
#: and the full MobileNet against the same net with standard convolutions
MOBILENET = {"cut_3x3": (8, 9), "standard": {"accuracy": 71.7, "params": 29.3e6, "mult_adds": 4866e6},
             "separable": {"accuracy": 70.6, "params": 4.2e6, "mult_adds": 569e6}}
#: seed 002: a 3x3x32 first layer on a 192x192 image, 288 shared weights, "about 1.2 million" unshared
SEED_002 = {"side": 192, "kernel": 3, "maps": 32, "shared": 288, "unshared_about": 1.2e6}
#: the rules' tolerances (config's docstring)
PAPER_COST_POINTS = 71.7 - 70.6
MIN_MACS_CUT = 5.0
PLATEAU_POINTS = 0.5
PLATEAU_FRACTION = 0.25

interval = t_interval  # (mean, std, 95 % t half-width)


def train_cells(rows: list[dict], arm_order) -> dict:
    """``{arm: [train rows over seeds]}`` in ``arm_order`` (arms without rows left out)."""
    cells = {a: [r for r in rows if r["config"]["kind"] == "train" and r["config"]["arm"] == a] for a in arm_order}
    return {a: c for a, c in cells.items() if c}


def timing_row(rows: list[dict]) -> dict | None:
    found = [r for r in rows if r["config"]["kind"] == "timing"]
    return found[-1] if found else None


def values(cell: list[dict], metric: str = "test_accuracy") -> list[float]:
    return [r[metric] for r in cell]


def points(x: float) -> float:
    return 100.0 * x


def accuracy_cost(reference: list[float], separable: list[float], macs_cut: float) -> tuple[float, bool]:
    """The rule: ``(cost in points, MobileNet's trade holds)``; cost = mean(ref) - mean(sep)."""
    (mr, sr), (ms, ss) = mean_std(reference), mean_std(separable)
    cost = points(mr - ms)
    return cost, cost <= PAPER_COST_POINTS + points(sr + ss) and macs_cut >= MIN_MACS_CUT


def compare(net: list[float], reference: list[float]) -> str:
    """The rule: 'better', 'worse' or 'matches' (means apart by more than the sum of stds, or not)."""
    gap, spread = separation(net, reference)
    return "better" if gap > spread else "worse" if gap < -spread else "matches"


def speed(ratio: dict) -> str:
    """The rule on an arm's per-round time ratios to the reference (median, quartiles)."""
    if ratio["q75"] < 1:
        return "faster"
    if ratio["q25"] > 1:
        return "slower"
    return "not measurably different"


def follows_count(ratio: dict, counted: float) -> bool:
    return ratio["q25"] <= counted <= ratio["q75"]


def plateau_gain(cell: list[dict]) -> float:
    """Points of mean validation accuracy gained over the last quarter of the epochs."""
    curve = np.mean([r["val_curve"] for r in cell], axis=0)
    back = max(1, int(round(PLATEAU_FRACTION * len(curve))))
    return points(float(curve[-1] - curve[max(0, len(curve) - 1 - back)])) if len(curve) > 1 else float("nan")


def converged(cell: list[dict]) -> bool:
    g = plateau_gain(cell)
    return bool(g <= PLATEAU_POINTS) if not np.isnan(g) else False


# ----------------------------------------------------------------------------- the formula


def _layers(row: dict) -> dict:
    return {layer["name"]: layer for layer in row["layers"]}


def formula_rows(row: dict) -> list[dict]:
    """Per separable block of a train row: the count's multiply-adds per output position
    (depthwise + pointwise) beside ``k^2 N + N M``, the count of a standard ``k x k`` conv on
    the same input beside ``k^2 N M``, and the ratio beside ``1/M + 1/k^2`` (exact fractions)."""
    layers = _layers(row)
    out = []
    for name, dw in layers.items():
        if not name.endswith("/depthwise"):
            continue
        pw = layers[name[: -len("depthwise")] + "pointwise"]
        (kh, kw), n, m = dw["kernel"], dw["in_shape"][-1], pw["out_shape"][-1]
        positions = pw["out_shape"][0] * pw["out_shape"][1]
        standard = counting.layer_count(counting.Conv((kh, kw), n, m, bias=False), dw["in_shape"])
        sep = Fraction(dw["macs"] + pw["macs"], positions)
        std = Fraction(standard.macs, positions)
        ratio, formula = sep / std, Fraction(1, m) + Fraction(1, kh * kw)
        out.append({"block": name[: -len("/depthwise")], "k": kh, "N": n, "M": m, "positions": positions,
                    "separable": sep, "k2N+NM": kh * kw * n + n * m, "standard": std, "k2NM": kh * kw * n * m,
                    "ratio": ratio, "1/M+1/k2": formula,
                    "exact": sep == kh * kw * n + n * m and std == kh * kw * n * m and ratio == formula})
    return out


def seed_002() -> dict:
    """Seed 002's first layer counted by :func:`wsjax.models.counting.count`: shared (a conv)
    and unshared (a locally connected layer) weights, and the multiply-adds of each."""
    s, k, maps = SEED_002["side"], SEED_002["kernel"], SEED_002["maps"]
    shape = (s, s, 1)
    shared = counting.count([counting.Conv(k, 1, maps, bias=False)], shape)
    local = {f"{padding}, stride {stride}":
             counting.count([counting.Local(k, 1, maps, stride, padding, bias=None)], shape)
             for padding, stride in (("SAME", 1), ("VALID", 1), ("VALID", k))}
    return {"shared": shared, "local": local, "outputs": s * s * maps}
