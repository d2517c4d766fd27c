"""The sharing-level study's models by a unit's ``model``: the deep balanced MLP (its width and
depth in the unit), LeNet-5 (Caffe variant) and the small ViT (its width and blocks in the
unit); each one's dense size and its narrow net at a budget."""

from __future__ import annotations

from experiments.sharing_levels.arm_names import MODELS
from wsjax.models import (MLP, LeNet5, ViT, equal_size_lenet5, equal_size_vit, equal_size_widths, lenet5_params,
                          mlp_params, vit_params)

#: the report's name for each model
LABELS = {"deep_mlp": "Deep MLP", "lenet5": "LeNet-5", "vit": "ViT"}


def _check(unit: dict) -> str:
    if unit["model"] not in MODELS:
        raise ValueError(f"the sharing-level study has no model {unit['model']!r}; known: {MODELS}")
    return unit["model"]


def mlp_features(unit: dict) -> tuple[int, ...]:
    return (unit["width"],) * unit["hidden_layers"] + (10,)


def dense_params(unit: dict) -> int:
    """The dense net's parameter count (weights and biases)."""
    if _check(unit) == "lenet5":
        return lenet5_params()
    if unit["model"] == "vit":
        return vit_params(width=unit["width"], depth=unit["depth"])
    return mlp_params(mlp_features(unit), 784)


def model(unit: dict):
    """The flax module a unit trains: the dense architecture, or for ``narrow`` every width scaled
    by one factor to ``budget x`` the dense parameters."""
    narrow = unit.get("arm") == "narrow"
    target = round(unit["budget"] * dense_params(unit)) if narrow else None
    if _check(unit) == "lenet5":
        return LeNet5(features=equal_size_lenet5(target) if narrow else (20, 50, 500))
    if unit["model"] == "vit":
        return ViT(width=equal_size_vit(target, depth=unit["depth"]) if narrow else unit["width"], depth=unit["depth"])
    features = mlp_features(unit)
    return MLP(equal_size_widths(features, target, 784) if narrow else features)


def widths(m) -> list[int]:
    """The layer widths a row records (the ViT's: its token width per block)."""
    return [m.width] * m.depth if isinstance(m, ViT) else list(m.features)


def tied_position(model: str, width: int) -> tuple[list[tuple[int, int]], int]:
    """One tied position's kernels as (rows, cols) and its parameter count: the MLP's hidden
    layer, or a ViT block (4 attention projections and the 2x MLP; LayerNorms and biases)."""
    w = width
    if model == "vit":
        r = 2  # the ViT's mlp_ratio
        return [(w, w)] * 4 + [(w, r * w), (r * w, w)], 4 * (w * w + w) + 4 * w + 2 * r * w * w + r * w + w
    return [(w, w)], w * w + w
