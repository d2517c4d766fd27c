"""Hidden representations of a flax.linen model: every layer's output on a set of inputs.

:func:`hidden_representations` runs ``model.apply`` with ``capture_intermediates`` (Flax
records the ``__call__`` output of every submodule its filter accepts, under
``intermediates/<module path>/__call__``) in batches under one ``jax.jit``, and returns an
ordered ``{module path: (examples x features) array}``, ready for
:func:`wsjax.analysis.similarity.cka_matrix`.

* Which modules: by default every ``flax.linen.Dense``, ``flax.linen.Conv``,
  :class:`wsjax.nn.Conv` and ViT :class:`~wsjax.models.vit.Block` (:data:`DEFAULT_MODULES`);
  ``modules`` takes other classes or a predicate on the module, and ``include`` (a
  :func:`wsjax.sharing.paths.matcher` pattern on the '/'-joined module path, e.g.
  ``r'^Block_\\d+$'``) narrows the result.
* Compilation: one ``jax.jit`` per model, ``modules`` and batch shape, reused by later calls
  (whatever their ``include`` and ``tokens``) while model and settings are hashable; the
  token reduction runs on the device, per batch, before the transfer to the host.
* Order: the order in which the modules returned, i.e. execution order, a parent after its
  children (``Block_0/mlp_in``, ``Block_0/mlp_out``, ``Block_0``, ``Block_1/...``) — not
  the sorted order of the params tree (where ``Block_10`` precedes ``Block_2``).
* Features: an output of shape ``(batch, tokens, features)`` (a transformer's token
  sequence) is reduced per ``tokens``: ``'mean'`` (the default) averages over the tokens,
  ``'cls'`` keeps token 0 (the ViT's class token; for the patch embedding, which has no
  class token, that is the first patch), ``'flatten'`` keeps all ``tokens * features``.
  Every other output is flattened to ``(batch, prod(trailing axes))``: a conv feature map
  ``(batch, h, w, c)`` gives ``h * w * c`` features. A 1-D convolution's
  ``(batch, length, channels)`` output is 3-D too: pass ``tokens='flatten'`` for it.
* A module called more than once gets ``path#0``, ``path#1``, ... in call order.

References: Kornblith et al., `Similarity of Neural Network Representations Revisited
<https://arxiv.org/abs/1905.00414>`_, 2019 (representations as examples x features).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from wsjax import checks
from wsjax import nn as wnn
from wsjax.models.vit import Block
from wsjax.sharing.paths import Include, matcher

#: The module classes whose outputs :func:`hidden_representations` returns by default.
DEFAULT_MODULES = (nn.Dense, nn.Conv, wnn.Conv, Block)
TOKENS = ("mean", "cls", "flatten")


def _module_filter(modules):
    """A hashable predicate form of ``modules``: a tuple of classes, or the callable itself."""
    if isinstance(modules, type):
        modules = (modules,)
    if isinstance(modules, tuple) and modules and all(isinstance(m, type) for m in modules):
        return modules
    if callable(modules) and not isinstance(modules, type):
        return modules
    raise TypeError(f"modules must be a module class, a tuple of them or a predicate, got {modules!r}")


def _accepts(accept, mdl) -> bool:
    return isinstance(mdl, accept) if isinstance(accept, tuple) else bool(accept(mdl))


def _features(y, tokens: str):
    if y.ndim == 3 and tokens == "mean":
        return jnp.mean(y, axis=1)
    if y.ndim == 3 and tokens == "cls":
        return y[:, 0]
    return y.reshape(y.shape[0], -1)


def _calls(tree, prefix=()):
    """``(path, outputs)`` for every ``__call__`` record, in insertion (execution) order."""
    for k, v in tree.items():
        if k == "__call__":
            yield "/".join(prefix), v
        elif isinstance(v, Mapping):
            yield from _calls(v, prefix + (k,))


def _capture(model, accept, apply_kwargs: dict):
    """``(run, names)``: ``run(variables, xb)`` is a jitted tuple of the captured outputs,
    ``names`` (filled on the first trace) their paths, in order."""
    names: list[str] = []

    @jax.jit
    def run(variables, xb):
        _, state = model.apply(
            variables, xb, capture_intermediates=lambda mdl, method: method == "__call__" and _accepts(accept, mdl),
            mutable=["intermediates"], **apply_kwargs)
        found = []
        for path, outs in _calls(state.get("intermediates", {})):
            for i, y in enumerate(outs):
                name = path if len(outs) == 1 else f"{path}#{i}"
                if not isinstance(y, jax.Array):
                    raise ValueError(f"module {name!r} returned {type(y).__name__}, not one array; "
                                     "leave it out with `modules`")
                found.append((name, y))
        names[:] = [n for n, _ in found]
        return tuple(y for _, y in found)

    return run, names


@functools.lru_cache(maxsize=8)
def _cached_capture(model, accept, kwargs: tuple):
    return _capture(model, accept, dict(kwargs))


def _capturer(model, accept, apply_kwargs: dict):
    """:func:`_capture`, reused across calls (one compilation per model, filter, batch shape)
    when the model and the settings are hashable."""
    key = tuple(sorted(apply_kwargs.items()))
    try:
        hash((model, accept, key))
    except TypeError:
        return _capture(model, accept, apply_kwargs)
    return _cached_capture(model, accept, key)


def hidden_representations(
    model: nn.Module,
    params,
    x,
    *,
    batch_size: int = 256,
    modules: Any = DEFAULT_MODULES,
    include: Include | None = None,
    tokens: str = "mean",
    **apply_kwargs,
) -> dict[str, np.ndarray]:
    """``{module path: (examples x features) float array}`` of ``model``'s layers on ``x``.

    Args:
      model: a flax.linen module.
      params: its params pytree, or a full variables dict (one with a ``'params'`` key, e.g.
        holding ``'batch_stats'`` too).
      x: inputs, examples on the first axis (host or device array).
      batch_size: examples per jitted call (at most ``len(x)``); the last batch is
        zero-padded to this size (one compilation), its padding dropped.
      modules: classes (or a predicate ``module -> bool``) whose outputs are captured.
      include: keep only module paths this :func:`~wsjax.sharing.paths.matcher` accepts.
      tokens: ``'mean'``, ``'cls'`` or ``'flatten'`` for 3-D ``(batch, tokens, features)``
        outputs (module docstring).
      **apply_kwargs: passed on to ``model.apply`` (e.g. ``train=False``).

    Raises ValueError for a bad ``tokens`` or ``batch_size``, an empty ``x``, a captured
    output that is not one array, or when no module is captured.
    """
    if tokens not in TOKENS:
        raise ValueError(f"tokens must be one of {TOKENS}, got {tokens!r}")
    batch_size = checks.positive_int(batch_size, "batch_size")
    accept = _module_filter(modules)
    keep = (lambda p: True) if include is None else matcher(include)
    variables = params if isinstance(params, Mapping) and "params" in params else {"params": params}
    x = np.asarray(x) if not isinstance(x, jax.Array) else x
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must hold at least one example on its first axis, got shape {x.shape}")
    run, names = _capturer(model, accept, apply_kwargs)
    n = x.shape[0]
    batch_size = min(batch_size, n)
    chunks = []
    for start in range(0, n, batch_size):
        xb = x[start:start + batch_size]
        real = xb.shape[0]
        if real < batch_size:
            xb = jnp.pad(xb, [(0, batch_size - real)] + [(0, 0)] * (xb.ndim - 1))
        outs = run(variables, xb)
        chunks.append([np.asarray(_features(y[:real], tokens)) for name, y in zip(names, outs) if keep(name)])
    chosen = [name for name in names if keep(name)]
    if not chosen:
        raise ValueError("hidden_representations captured no module output: check `modules` and `include`")
    return {name: np.concatenate([c[i] for c in chunks], axis=0) for i, name in enumerate(chosen)}
