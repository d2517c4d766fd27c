"""Structured neuron pruning of fully connected nets: a genuinely smaller model.

Unstructured masks keep every array at its dense shape, so they save storage but not time.
Removing whole hidden units shrinks the arrays: dropping unit ``j`` of hidden layer ``l``
deletes column ``j`` of ``Dense_l/kernel``, entry ``j`` of ``Dense_l/bias`` and row ``j`` of
``Dense_{l+1}/kernel``. The result is an ordinary, narrower :class:`wsjax.models.MLP` with
its sliced params, ready to fine-tune and to run faster.

Importance of hidden unit ``j`` (higher is kept):

* ``'weight'``: ``||W_in[:, j]||_2 * ||W_out[j, :]||_2``, the scale-invariant weight score
  for ReLU units (rescaling a unit's input weights by ``c`` and its output weights by
  ``1/c`` leaves the net and the score unchanged);
* ``'activation'``: ``mean_x |h_j(x)| * ||W_out[j, :]||_2`` on sample ``inputs``, the
  average magnitude of what the unit sends on.

Iterate prune -> fine-tune for larger reductions (the notes' "evaluate importance, remove,
fine-tune"); Liu et al. find that training the pruned architecture from scratch can match it.

References: Li et al., `Pruning Filters for Efficient ConvNets
<https://arxiv.org/abs/1608.08710>`_, 2017; Hu et al., `Network Trimming
<https://arxiv.org/abs/1607.03250>`_, 2016; Liu et al., `Rethinking the Value of Network
Pruning <https://arxiv.org/abs/1810.05270>`_, 2019.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence, Union

import jax.numpy as jnp
import numpy as np

from wsjax import checks
from wsjax.models.lenet import MLP

METHODS = ("weight", "activation")


class NeuronPruned(NamedTuple):
    """A narrower MLP, its params, and the indices of the units each hidden layer kept."""

    model: MLP
    params: dict
    kept: tuple


def _layers(model: MLP, params) -> list[tuple[np.ndarray, np.ndarray]]:
    if not isinstance(model, MLP):
        raise TypeError(f"neuron pruning handles wsjax.models.MLP, got {type(model).__name__}")
    layers = []
    for i, f in enumerate(model.features):
        name = f"Dense_{i}"
        if name not in params or set(params[name]) != {"kernel", "bias"}:
            raise ValueError(f"params lack {name}/kernel and {name}/bias; keys: {sorted(params)}")
        k, b = np.asarray(params[name]["kernel"]), np.asarray(params[name]["bias"])
        if k.ndim != 2 or k.shape[1] != f or b.shape != (f,):
            raise ValueError(f"{name}: kernel {k.shape} / bias {b.shape} do not match {f} features")
        if layers and layers[-1][0].shape[1] != k.shape[0]:
            raise ValueError(f"{name}: kernel {k.shape} does not follow {layers[-1][0].shape}")
        layers.append((k, b))
    if len(layers) < 2:
        raise ValueError("an MLP needs a hidden layer to prune neurons from")
    return layers


def neuron_importance(model: MLP, params, *, method: str = "weight", inputs=None) -> list[np.ndarray]:
    """One importance vector per hidden layer (``len(model.features) - 1`` of them)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    layers = _layers(model, params)
    out_norms = [np.linalg.norm(layers[i + 1][0], axis=1) for i in range(len(layers) - 1)]
    if method == "weight":
        return [np.linalg.norm(layers[i][0], axis=0) * out_norms[i] for i in range(len(layers) - 1)]
    if inputs is None:
        raise ValueError("method='activation' needs sample inputs")
    h = np.asarray(inputs, np.float32).reshape(len(inputs), -1)
    if h.shape[1] != layers[0][0].shape[0]:
        raise ValueError(f"inputs flatten to {h.shape[1]} features, the MLP takes {layers[0][0].shape[0]}")
    scores = []
    for i in range(len(layers) - 1):
        k, b = layers[i]
        h = np.maximum(h @ k + b, 0.0)
        scores.append(np.abs(h).mean(0) * out_norms[i])
    return scores


def _widths(keep, hidden: Sequence[int]) -> list[int]:
    if isinstance(keep, (float, np.floating)):
        keep = checks.number(keep, "a keep fraction", lo=0.0, hi=1.0, lo_open=True)
        return [max(1, int(round(keep * h))) for h in hidden]
    keep = list(keep)
    if len(keep) != len(hidden):
        raise ValueError(f"keep lists {len(keep)} widths for {len(hidden)} hidden layers")
    return [checks.integer(k, "kept width", lo=1, hi=h) for k, h in zip(keep, hidden)]


def prune_neurons(
    model: MLP,
    params,
    keep: Union[float, Sequence[int]],
    *,
    method: str = "weight",
    inputs=None,
) -> NeuronPruned:
    """Keep the most important hidden units of ``model``; return the narrower model and params.

    Args:
      keep: hidden units kept, per hidden layer (ints), or one fraction for all of them.
      method: importance score, one of :data:`METHODS`.
      inputs: sample inputs for ``method='activation'``.

    Kept units stay in their original order, so the pruned net computes exactly what the
    original computes with the removed units' outputs set to zero.
    """
    layers = _layers(model, params)
    hidden = list(model.features[:-1])
    widths = _widths(keep, hidden)
    scores = neuron_importance(model, params, method=method, inputs=inputs)
    kept = tuple(np.sort(np.argsort(-s, kind="stable")[:w]) for s, w in zip(scores, widths))
    new_params = {}
    for i, (k, b) in enumerate(layers):
        rows = kept[i - 1] if i > 0 else slice(None)
        cols = kept[i] if i < len(kept) else slice(None)
        new_params[f"Dense_{i}"] = {
            "kernel": jnp.asarray(k[rows][:, cols]),
            "bias": jnp.asarray(b[cols]),
        }
    new_model = MLP(tuple(widths) + (model.features[-1],))
    return NeuronPruned(new_model, new_params, kept)


def mlp_flops(model: MLP, input_dim: int) -> int:
    """Floating-point operations of one example's forward pass (2 per multiply-add, + bias)."""
    total, fan_in = 0, int(input_dim)
    for f in model.features:
        total += 2 * fan_in * f + f
        fan_in = f
    return total


def mlp_params(model: MLP, input_dim: int) -> int:
    """Parameter count of an MLP on ``input_dim`` inputs."""
    total, fan_in = 0, int(input_dim)
    for f in model.features:
        total += fan_in * f + f
        fan_in = f
    return total
