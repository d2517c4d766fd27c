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
import inspect
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wsjax.sharing.paths import matcher

Params = Any
PRNGKey = jax.Array


class SharedParams(NamedTuple):
    """The free state of a transform: trainable ``theta`` and untrained ``frozen``."""

    theta: Any
    frozen: Any


class Transform(NamedTuple):
    """A weight-space transformation ``W = apply(init(key, W0))``.

    ``codec`` names how :mod:`wsjax.storage` stores a state of this transform: ``None``
    stores the weights ``W = apply(state)`` themselves (raw, or sparse / codebook encoded
    when they have few distinct values, as masks and codebooks leave them); a registered
    codec name (``'hashing'``, ``'low_rank'``, ``'tying'``) stores the free state instead
    (buckets and hash specs, factors, one copy per tied group); ``('select', inner)``
    stores the unselected leaves as weights and the selected ones with ``inner``'s codec.

    ``masks_of(frozen)``, where a transform prunes, returns its masks in the structure of
    its ``theta``; :func:`chain` hands them to the transforms inside it (see
    :func:`init_within`). ``init`` may take a ``masks`` keyword to receive them.
    """

    init: Callable[[PRNGKey, Params], SharedParams]
    apply: Callable[[SharedParams], Params]
    codec: Any = None
    masks_of: Callable[[Any], Any] | None = None


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


def init_within(transform: Transform, key: PRNGKey, params: Params, masks=None) -> SharedParams:
    """``transform.init(key, params)``, told the pruning ``masks`` of the transforms around it.

    ``masks`` has ``params``' structure (a bool array for every pruned leaf, ``None`` for
    the others). A transform whose ``init`` takes a ``masks`` keyword receives them (a
    codebook clusters only the surviving weights); any other transform is initialised as
    usual, so a user's own ``init(key, params)`` keeps working inside :func:`chain`.
    """
    if masks is None or not _takes_masks(transform.init):
        return transform.init(key, params)
    return transform.init(key, params, masks=masks)


def _takes_masks(fn) -> bool:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "masks" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def masks_of(transform: Transform, state: SharedParams):
    """The pruning masks a transform's state imposes, in the structure of ``state.theta``
    (what the next transform of a :func:`chain` sees as its params), or ``None``."""
    if transform.masks_of is None:
        return None
    return transform.masks_of(state.frozen)


def chain(*transforms: Transform) -> Transform:
    """Compose transforms: ``chain(a, b)`` gives ``W = a(b(theta))``.

    ``b`` re-parameterises the free parameters of ``a``. Each transform is initialised on
    the free parameters of the one before it and is told the masks that the transforms
    around it impose (:func:`init_within`): ``chain(masked(m), codebook())`` prunes the
    weights and then clusters only the surviving ones, and ``W = C[a] * M`` keeps the
    pruned weights at exactly zero through any retraining of the centroids.
    """
    if not transforms:
        raise ValueError("chain() needs at least one transform")

    def init(key, params, masks=None):
        # The innermost transform gets ``key`` itself, the others keys folded from it: wrapping
        # a transform in a mask (``chain(masked(m), t)``) leaves its initialisation unchanged.
        keys = [jax.random.fold_in(key, i) for i in range(len(transforms) - 1)] + [key]
        frozen = []
        theta = params
        for t, k in zip(transforms, keys):
            s = init_within(t, k, theta, masks)
            frozen.append(s.frozen)
            theta = s.theta
            inner_masks = masks_of(t, s)
            if inner_masks is not None:
                masks = inner_masks
            elif masks is not None and jax.tree.structure(theta) != jax.tree.structure(params):
                masks = None  # t re-parameterised the leaves: the old masks no longer line up
        return SharedParams(theta, tuple(frozen))

    def apply(state):
        theta = state.theta
        for t, fr in reversed(list(zip(transforms, state.frozen))):
            theta = t.apply(SharedParams(theta, fr))
        return theta

    def chain_masks(frozen):
        # the masks in the innermost theta's structure: those of the last transform that has any
        last = transforms[-1]
        return None if last.masks_of is None else last.masks_of(frozen[-1])

    return Transform(init, apply, masks_of=chain_masks)


def select(include, inner: Transform) -> Transform:
    """Apply ``inner`` to the leaves whose '/'-joined path matches ``include`` (a regex, searched).

    ``inner`` receives (and must return) a flat ``{path: leaf}`` dict of the selected leaves,
    so it may act on several leaves at once (cross-layer transforms). All other leaves stay
    free parameters of their own. ``theta`` is ``{'rest': params with None at selected
    leaves, 'inner': inner theta}``.
    """
    match = matcher(include)

    def init(key, params, masks=None):
        flat = flatten_paths(params)
        chosen = {p: x for p, x in flat.items() if match(p)}
        if not chosen:
            raise ValueError(
                f"select({include!r}) matched no leaf; paths are: {sorted(flat)}"
            )
        rest = jax.tree_util.tree_map_with_path(
            lambda kp, x: None if path_str(kp) in chosen else x, params
        )
        if masks is not None:  # the masks around the selection, narrowed to it
            flat_masks = flatten_paths(masks)
            masks = {p: flat_masks[p] for p in chosen if p in flat_masks} or None
        s = init_within(inner, key, chosen, masks)
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

    def select_masks(frozen):
        inner_masks = None if inner.masks_of is None else inner.masks_of(frozen)
        if inner_masks is None:
            return None
        return {"rest": None, "inner": inner_masks}

    codec = None if inner.codec is None else ("select", inner.codec)
    return Transform(init, apply, codec=codec, masks_of=select_masks)


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
