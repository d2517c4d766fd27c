"""A model as the pipelines see it: a pure ``apply(params, x)`` and its params pytree.

Flax linen models give both directly (``module.apply({'params': p}, x)``). A Flax NNX model
is split once (``nnx.split(model, nnx.Param, ...)``); its parameters become a plain nested
dict with string keys (list indices as ``'0'``, ``'1'``, so the paths read
``layers/0/kernel`` and storage can name them), and ``apply`` merges them back into the
model's graph for every call, so the model itself never knows it is compressed.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax


class Net(NamedTuple):
    """``apply(params, x) -> logits`` and the params it starts from.

    ``to_model(params)`` gives the user's own object back where there is one (an NNX model
    with the given params; ``None`` for linen, whose params are the model's state).
    """

    apply: Callable[[Any, Any], Any]
    params: Any
    to_model: Callable[[Any], Any] | None = None
    source: Any = None  # what identifies the model in a pipeline's cache key


def from_linen(module, params) -> Net:
    """A Flax linen ``module`` with its ``params`` (the ``'params'`` collection)."""
    if isinstance(params, dict) and set(params) == {"params"}:
        params = params["params"]
    return Net(lambda p, x: module.apply({"params": p}, x), params, None, module)


def _string_keys(tree):
    if isinstance(tree, dict):
        return {str(k): _string_keys(v) for k, v in tree.items()}
    return tree


def _original_keys(tree, template):
    """``tree`` (string keys) with the keys of ``template`` (the NNX pure dict) restored."""
    if not isinstance(template, dict):
        return tree
    by_name = {str(k): k for k in template}
    return {by_name[k]: _original_keys(v, template[by_name[k]]) for k, v in tree.items()}


def _check_inference_mode(model) -> None:
    """Dropout and batch statistics mutate state the pipelines do not thread through their
    jitted steps yet: such a model must be in inference mode (``model.eval()``)."""
    from flax import nnx

    for path, module in nnx.iter_modules(model):
        training = ((isinstance(module, nnx.Dropout) and not module.deterministic)
                    or (isinstance(module, nnx.BatchNorm) and not module.use_running_average))
        if training:
            where = "/".join(map(str, path)) or type(model).__name__
            raise ValueError(f"{where} ({type(module).__name__}) is in training mode; the pipelines keep "
                             "dropout RNG and batch statistics fixed, so call model.eval() before compressing")


def from_nnx(model) -> Net:
    """A Flax NNX model: its ``nnx.Param`` variables become the params; everything else
    (batch statistics, RNG state) stays as it is in the graph."""
    from flax import nnx

    _check_inference_mode(model)
    graphdef, state, rest = nnx.split(model, nnx.Param, ...)
    template = nnx.to_pure_dict(state)

    def merge(params):
        filled = jax.tree.map(lambda v: v, state)  # a fresh container: ``state`` is never written
        nnx.replace_by_pure_dict(filled, _original_keys(params, template))
        return nnx.merge(graphdef, filled, rest)

    return Net(lambda p, x: merge(p)(x), _string_keys(template), merge, repr(graphdef))


def as_net(model, params=None) -> Net:
    """A :class:`Net` from a ``Net``, an NNX model, a linen module with params, or an
    ``(apply_fn, params)`` pair."""
    if isinstance(model, Net):
        return model
    try:
        from flax import nnx

        if isinstance(model, nnx.Module):
            if params is not None:
                raise ValueError("an NNX model carries its own params; do not pass params")
            return from_nnx(model)
    except ImportError:  # pragma: no cover - flax is a dependency
        pass
    if params is None:
        raise ValueError("give params with a linen module or an apply function")
    if hasattr(model, "apply") and hasattr(model, "init"):
        return from_linen(model, params)
    if callable(model):
        return Net(model, params)
    raise TypeError(f"cannot make a model out of {type(model).__name__}")
