"""Weight-space transformations: the one abstraction behind every hard sharing scheme.

LeCun's Weight-Space Transformation (WST) lets the optimiser work on free parameters
``theta`` while the model sees weights ``W = T(theta)``; the gradient with respect to the
free parameters is ``J_T^T dL/dW``. Convolution, hashing, codebooks, tying, masks and low
rank are all such maps.

A :class:`Transform` is a pair of pure functions, in the style of optax's
``GradientTransformation``:

* ``init(key, params) -> SharedParams`` builds the free state from a model's params pytree
  (from its shapes, or from trained values);
* ``apply(state) -> params`` rebuilds the model's full params pytree.

``SharedParams.theta`` holds the trainable float leaves (what optax sees);
``SharedParams.frozen`` holds structure that is not trained (masks, assignments, static
shapes and seeds), so a training loss is ``loss(theta) = L(apply(SharedParams(theta,
frozen)))`` with ``frozen`` closed over.

References: LeCun, `Generalization and network design strategies
<http://yann.lecun.com/exdb/publis/pdf/lecun-89.pdf>`_, 1989.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Params = Any
PRNGKey = jax.Array


class SharedParams(NamedTuple):
    """The free state of a transform: trainable ``theta`` and untrained ``frozen``."""

    theta: Any
    frozen: Any


class Transform(NamedTuple):
    """A weight-space transformation ``W = apply(init(key, W0))``."""

    init: Callable[[PRNGKey, Params], SharedParams]
    apply: Callable[[SharedParams], Params]


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class Static:
    """A pytree node with no children: its value travels as static (hashable) metadata.

    Use it inside ``SharedParams.frozen`` for shapes, seeds and layer ids that must stay
    Python values under ``jit``.
    """

    value: Any

    def tree_flatten(self):
        return (), self.value

    @classmethod
    def tree_unflatten(cls, value, children):
        del children
        return cls(value)


# ----------------------------------------------------------------------------- paths


def _key_str(k) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def path_str(keypath) -> str:
    """'/'-joined name of a pytree key path, e.g. ``'Dense_0/kernel'``."""
    return "/".join(_key_str(k) for k in keypath)


def flatten_paths(tree) -> dict[str, Any]:
    """``{'/'-joined path: leaf}`` for every leaf of ``tree`` (insertion ordered)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {path_str(p): x for p, x in leaves}


# ----------------------------------------------------------------------------- counting


def _is_float(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)


def count_params(tree) -> int:
    """Number of float scalars in a pytree (ints, masks and ``None`` are not counted)."""
    return int(sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree) if _is_float(x)))


def free_params(state: SharedParams) -> int:
    """Free (trainable) parameters of a transform's state."""
    return count_params(state.theta)


def virtual_params(transform: Transform, state: SharedParams) -> int:
    """Parameters the model sees: the size of ``transform.apply(state)``."""
    return count_params(jax.eval_shape(transform.apply, state))


# ----------------------------------------------------------------------------- combinators


def identity() -> Transform:
    """``W = theta``: every weight is its own free parameter."""

    def init(key, params):
        del key
        return SharedParams(params, None)

    def apply(state):
        return state.theta

    return Transform(init, apply)


def chain(*transforms: Transform) -> Transform:
    """Compose transforms: ``chain(a, b)`` gives ``W = a(b(theta))``.

    ``b`` re-parameterises the free parameters of ``a``: ``chain(mask, codebook)`` prunes the
    weights and then clusters the surviving free weights.
    """
    if not transforms:
        raise ValueError("chain() needs at least one transform")

    def init(key, params):
        keys = jax.random.split(key, len(transforms))
        frozen = []
        theta = params
        for t, k in zip(transforms, keys):
            s = t.init(k, theta)
            frozen.append(s.frozen)
            theta = s.theta
        return SharedParams(theta, tuple(frozen))

    def apply(state):
        theta = state.theta
        for t, fr in reversed(list(zip(transforms, state.frozen))):
            theta = t.apply(SharedParams(theta, fr))
        return theta

    return Transform(init, apply)


def _compile(pattern: str | re.Pattern | Callable[[str], bool]) -> Callable[[str], bool]:
    if callable(pattern) and not isinstance(pattern, re.Pattern):
        return pattern
    rx = re.compile(pattern)
    return lambda p: rx.search(p) is not None


def select(pattern, inner: Transform) -> Transform:
    """Apply ``inner`` to the leaves whose '/'-joined path matches ``pattern`` (regex search).

    ``inner`` receives (and must return) a flat ``{path: leaf}`` dict of the selected leaves,
    so it may act on several leaves at once (cross-layer transforms). All other leaves stay
    free parameters of their own. ``theta`` is ``{'rest': params with None at selected
    leaves, 'inner': inner theta}``.
    """
    match = _compile(pattern)

    def init(key, params):
        flat = flatten_paths(params)
        chosen = {p: x for p, x in flat.items() if match(p)}
        if not chosen:
            raise ValueError(
                f"select({pattern!r}) matched no leaf; paths are: {sorted(flat)}"
            )
        rest = jax.tree_util.tree_map_with_path(
            lambda kp, x: None if path_str(kp) in chosen else x, params
        )
        s = inner.init(key, chosen)
        return SharedParams({"rest": rest, "inner": s.theta}, s.frozen)

    def apply(state):
        filled = inner.apply(SharedParams(state.theta["inner"], state.frozen))

        def fill(kp, x):
            # ``None`` leaves that ``inner`` did not fill belong to an enclosing select.
            p = path_str(kp)
            return filled[p] if x is None and p in filled else x

        return jax.tree_util.tree_map_with_path(
            fill, state.theta["rest"], is_leaf=lambda x: x is None
        )

    return Transform(init, apply)


def per_leaf(
    leaf_init: Callable[[PRNGKey, jax.Array, str], SharedParams],
    leaf_apply: Callable[[SharedParams, str], jax.Array],
) -> Transform:
    """Lift a transform of one array to a ``{path: leaf}`` dict, one independent state per leaf.

    ``leaf_init(key, leaf, path)`` and ``leaf_apply(state, path)`` see the leaf's path so a
    transform can derive per-layer seeds or settings from it.
    """

    def init(key, leaves: Mapping[str, jax.Array]):
        keys = jax.random.split(key, max(len(leaves), 1))
        states = {p: leaf_init(k, x, p) for k, (p, x) in zip(keys, leaves.items())}
        return SharedParams(
            {p: s.theta for p, s in states.items()},
            {p: s.frozen for p, s in states.items()},
        )

    def apply(state):
        return {
            p: leaf_apply(SharedParams(th, state.frozen[p]), p)
            for p, th in state.theta.items()
        }

    return Transform(init, apply)


def bind(transform: Transform, state: SharedParams) -> Callable[[Any], Params]:
    """``theta -> params`` with the frozen structure closed over (for use inside a loss)."""
    frozen = state.frozen
    return lambda theta: transform.apply(SharedParams(theta, frozen))
