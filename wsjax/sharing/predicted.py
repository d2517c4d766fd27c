"""Parameter prediction: a layer's weights ``W = U @ V`` from a few of its rows and a dictionary.

Denil et al. observe that the weights of a trained layer are smooth over its inputs (for an
image, the weights into one hidden unit form a smooth picture), so most of them can be
predicted from a few. A dense kernel of shape ``(..., n_out)`` is viewed as an ``n x cols``
matrix ``W`` (rows the ``n`` inputs, ``cols`` the last axis). A *dictionary* ``U`` (``n x k``)
maps ``k`` free rows ``V`` (``k x cols``) to the whole matrix: ``W = U @ V``, ``k * cols``
free parameters instead of ``n * cols``. Autodiff through the product is the right backward
pass. Two kinds of dictionary (:data:`Dictionary`):

* :class:`KernelDictionary`: kernel ridge regression over the inputs' pixel positions
  (Denil et al.'s section 3.2). With the squared-exponential kernel ``K`` of the positions
  (:func:`pixel_coordinates`, :func:`se_kernel`) and a sorted set ``alpha`` of ``k`` "seen"
  rows, ``U = K[:, alpha] (K[alpha, alpha] + ridge I)^-1`` (:func:`ridge_dictionary`), and
  ``V`` starts as ``W[alpha]``: the seen weights are learned, the others predicted from
  them. ``U`` is recomputed from the spec (shape, length scale, ridge, ``alpha``), so a
  stored model holds only ``V``, ``alpha`` and three numbers.
* :class:`MatrixDictionary`: an explicit ``U``, e.g. the ridge dictionary of the empirical
  covariance of the inputs (:func:`empirical_kernel`, the paper's data-driven kernel) or the
  top-``k`` left singular vectors of a trained layer (:func:`svd_dictionary`). ``V`` starts
  as ``W[alpha]`` when the spec names ``alpha`` rows, else as the least-squares fit of ``W``
  onto ``U``. A stored model holds ``U`` too.

The dictionary is computed once, on the host, in float64 NumPy (``np.linalg.solve``), and
cast to the leaf's dtype; the same spec gives the same bits (computed dictionaries are
memoised per spec, so a process never computes one twice), which is what lets
:mod:`wsjax.storage` rebuild a kernel dictionary from its spec and return exactly
``transform.apply(state)``.

``theta`` is ``{path: {'v': V}}``; ``frozen`` is ``{path: PredictedFrozen}``.

References: Denil, Shakibi, Dinh, Ranzato & de Freitas, `Predicting Parameters in Deep
Learning <https://arxiv.org/abs/1306.0543>`_, 2013.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any, Callable, Mapping, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from wsjax import checks
from wsjax.sharing.core import SharedParams, Static, Transform, path_str, per_leaf, select
from wsjax.sharing.paths import KERNELS, Include

#: This library's defaults for :func:`denil_first_layer`, not the paper's: a length scale (in
#: pixels) about the mean spacing of the seen pixels when 10% are seen (sqrt(10) ~ 3), and a
#: small ridge against the near-singular kernels of close or shared (channel) positions.
DEFAULT_LENGTH_SCALE = 3.0
DEFAULT_RIDGE = 1e-3


class KernelDictionary(NamedTuple):
    """Kernel ridge regression over pixel positions.

    ``U = K[:, alpha] (K[alpha, alpha] + ridge I)^-1`` with ``K`` the squared-exponential
    kernel of the inputs' positions (:func:`pixel_coordinates`).

    ``image_shape`` is ``(H, W)`` or ``(H, W, C)`` (the leaf's ``n`` rows are these inputs
    flattened row-major), ``length_scale`` the squared-exponential kernel's (in pixels),
    ``ridge`` the regulariser, ``alpha`` the sorted indices of the seen rows.
    """

    image_shape: tuple
    length_scale: float
    ridge: float
    alpha: tuple


class MatrixDictionary(NamedTuple):
    """An explicit ``n x k`` dictionary ``u``; ``alpha`` (sorted, ``k`` rows) or ``None``.

    With ``alpha``, ``V`` is initialised to the seen rows ``W[alpha]``; without, to the
    least-squares fit of ``W`` onto ``u``.
    """

    u: Any
    alpha: tuple | None = None


Dictionary = Union[KernelDictionary, MatrixDictionary]
Dictionaries = Union[Dictionary, Mapping[str, Dictionary], Callable[[str, tuple], Dictionary]]


class PredictedFrozen(NamedTuple):
    """One predicted leaf's frozen structure.

    ``u`` is the dictionary (``n x k``, the leaf's dtype); ``shape`` the leaf's shape;
    ``kernel`` the :class:`KernelDictionary` that ``u`` was computed from, or ``None`` for
    an explicit one; ``alpha`` the seen rows (a tuple) or ``None``.
    """

    u: jax.Array
    shape: Static
    kernel: Static
    alpha: Static


# ----------------------------------------------------------------------------- kernels


def pixel_coordinates(shape) -> np.ndarray:
    """The ``(row, col)`` position of every input of an image of ``shape`` flattened row-major.

    ``shape`` is ``(H, W)`` or ``(H, W, C)`` (NHWC, as ``x.reshape(len(x), -1)`` flattens
    it); returns an ``(H*W*C, 2)`` float32 array, the channels of a pixel sharing its
    position.
    """
    shape = _image_shape(shape)
    h, w, c = shape + (1,) * (3 - len(shape))
    rows, cols, _ = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    return np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float32)


def se_kernel(coords, length_scale: float, others=None) -> np.ndarray:
    """Squared-exponential kernel ``exp(-|c_i - c_j|^2 / (2 l^2))`` (float64).

    ``coords`` is ``(n, d)``; ``others`` (``(m, d)``, default ``coords``) gives the
    ``n x m`` cross kernel. Distances are summed over squared coordinate differences, so an
    entry of a cross kernel equals the same entry of the full one bit for bit.
    """
    length_scale = checks.number(length_scale, "length_scale", lo=0.0, lo_open=True)
    a = _points(coords, "coords")
    b = a if others is None else _points(others, "others")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"coords have {a.shape[1]} dimensions, others {b.shape[1]}")
    sq = np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
    return np.exp(-sq / (2.0 * length_scale * length_scale))


def empirical_kernel(features) -> np.ndarray:
    """Denil et al.'s data-driven kernel: the empirical covariance of the inputs (float64).

    ``features`` is ``(examples, n)`` (inputs flattened as the layer sees them); the
    covariance is centred on the examples' mean and divided by ``examples - 1``. Inputs that
    never vary (an image's border) give zero rows: use a ridge.
    """
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"features must be (examples >= 2, n >= 1), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("features must be finite")
    x = x - x.mean(axis=0)
    return (x.T @ x) / (x.shape[0] - 1)


def choose_alpha(key, n: int, fraction: float) -> np.ndarray:
    """A sorted random subset of ``max(1, round(fraction * n))`` of ``range(n)`` (int64)."""
    n = checks.positive_int(n, "n")
    fraction = checks.number(fraction, "fraction", lo=0.0, hi=1.0, lo_open=True)
    k = max(1, int(round(fraction * n)))
    picked = jax.random.choice(key, n, (k,), replace=False)
    return np.sort(np.asarray(picked, np.int64))


def ridge_dictionary(kernel, alpha, ridge: float) -> np.ndarray:
    """``U = K[:, alpha] (K[alpha, alpha] + ridge I)^-1`` (``n x k``, float64).

    ``kernel`` is a symmetric ``n x n`` matrix; solved with ``np.linalg.solve`` in float64.
    """
    k = np.asarray(kernel, np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] < 1:
        raise ValueError(f"kernel must be a square matrix, got shape {k.shape}")
    a = np.asarray(check_alpha(alpha, k.shape[0]))
    return _ridge(k[:, a], k[np.ix_(a, a)], ridge)


def _ridge(k_na: np.ndarray, k_aa: np.ndarray, ridge) -> np.ndarray:
    ridge = checks.number(ridge, "ridge", lo=0.0)
    system = k_aa + ridge * np.eye(k_aa.shape[0])
    try:  # K_aa is symmetric: U^T = (K_aa + ridge I)^-1 K_an
        u = np.linalg.solve(system, k_na.T).T
    except np.linalg.LinAlgError:
        raise ValueError(f"K[alpha, alpha] + {ridge} I is singular; use a larger ridge") from None
    if not np.all(np.isfinite(u)):
        raise ValueError(f"the ridge dictionary is not finite; use a larger ridge than {ridge}")
    return np.ascontiguousarray(u)


def svd_dictionary(w, k: int) -> np.ndarray:
    """The top-``k`` left singular vectors of ``w`` viewed as a matrix (``n x k``, float64)."""
    rows, cols = _matrix_shape(np.shape(w))
    k = checks.positive_int(k, "k")
    if k > min(rows, cols):
        raise ValueError(f"k={k} exceeds min{(rows, cols)} of a leaf of shape {np.shape(w)}")
    u, _, _ = np.linalg.svd(np.asarray(w, np.float64).reshape(rows, cols), full_matrices=False)
    return np.ascontiguousarray(u[:, :k])


def dictionary_matrix(spec: Dictionary) -> np.ndarray:
    """The ``n x k`` dictionary of a spec (float64 for a kernel spec, read-only, memoised)."""
    if isinstance(spec, KernelDictionary):
        return _kernel_matrix(kernel_spec(*spec))
    if isinstance(spec, MatrixDictionary):
        return np.asarray(spec.u)
    raise TypeError(f"a dictionary is a KernelDictionary or MatrixDictionary, got {spec!r}")


@functools.lru_cache(maxsize=32)
def _kernel_matrix(spec: KernelDictionary) -> np.ndarray:
    coords = pixel_coordinates(spec.image_shape)
    seen = coords[np.asarray(spec.alpha)]
    u = _ridge(se_kernel(coords, spec.length_scale, seen),
               se_kernel(seen, spec.length_scale), spec.ridge)
    u.setflags(write=False)
    return u


# ----------------------------------------------------------------------------- checks


def _image_shape(shape) -> tuple:
    if not isinstance(shape, (tuple, list)) or len(shape) not in (2, 3):
        raise ValueError(f"image shape must be (H, W) or (H, W, C), got {shape!r}")
    return tuple(checks.positive_int(d, "image shape entry") for d in shape)


def _points(x, name: str) -> np.ndarray:
    a = np.asarray(x, np.float64)
    if a.ndim != 2 or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be a finite (n, d) array, got shape {a.shape}")
    return a


def check_alpha(alpha, n: int) -> tuple:
    """``alpha`` as a tuple of ints: 1-D, non-empty, strictly increasing, in ``[0, n)``."""
    a = np.asarray(alpha)
    if a.ndim != 1 or a.size < 1 or not (a.dtype.kind in "iu"):
        raise ValueError(f"alpha must be a non-empty 1-D array of ints, got {alpha!r}"[:300])
    a = a.astype(np.int64)  # differences of unsigned ints would wrap around
    if a.size > n or a[0] < 0 or a[-1] >= n or np.any(np.diff(a) <= 0):
        raise ValueError(f"alpha must be sorted, distinct indices in [0, {n}), got "
                         f"{a.tolist()!r}"[:300])
    return tuple(int(i) for i in a)


def kernel_spec(image_shape, length_scale, ridge, alpha) -> KernelDictionary:
    """A checked :class:`KernelDictionary` in canonical Python types (hashable)."""
    image_shape = _image_shape(image_shape)
    return KernelDictionary(
        image_shape,
        checks.number(length_scale, "length_scale", lo=0.0, lo_open=True),
        checks.number(ridge, "ridge", lo=0.0),
        check_alpha(alpha, math.prod(image_shape)),
    )


def _matrix_shape(shape) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"parameter prediction needs a leaf with >= 2 axes, got shape "
                         f"{tuple(shape)}")
    return int(math.prod(shape[:-1])), int(shape[-1])


def _spec_of(dictionaries: Dictionaries, path: str, shape: tuple) -> Dictionary:
    if isinstance(dictionaries, (KernelDictionary, MatrixDictionary)):
        spec = dictionaries
    elif isinstance(dictionaries, Mapping):
        if path not in dictionaries:
            raise ValueError(f"no dictionary given for {path!r}; dictionaries are given for "
                             f"{sorted(dictionaries)}")
        spec = dictionaries[path]
    elif callable(dictionaries):
        spec = dictionaries(path, shape)
    else:
        raise TypeError(f"dictionaries must be a dictionary spec, a {{path: spec}} mapping or "
                        f"a function (path, shape) -> spec, got {dictionaries!r}")
    n, _ = _matrix_shape(shape)
    if isinstance(spec, KernelDictionary):
        spec = kernel_spec(*spec)
        if math.prod(spec.image_shape) != n:
            raise ValueError(f"{path!r}: image shape {spec.image_shape} has "
                             f"{math.prod(spec.image_shape)} inputs, the leaf {shape} has {n}")
        return spec
    if isinstance(spec, MatrixDictionary):
        u = spec.u
        if np.ndim(u) != 2 or not jnp.issubdtype(jnp.result_type(u), jnp.floating):
            raise ValueError(f"{path!r}: a dictionary u must be a 2-D float array, got "
                             f"shape {np.shape(u)}")
        if np.shape(u)[0] != n or not 1 <= np.shape(u)[1] <= n:
            raise ValueError(f"{path!r}: dictionary u has shape {np.shape(u)}, expected "
                             f"({n}, k) with 1 <= k <= {n}")
        if not bool(jnp.all(jnp.isfinite(jnp.asarray(u)))):
            raise ValueError(f"{path!r}: dictionary u is not finite")
        alpha = None if spec.alpha is None else check_alpha(spec.alpha, n)
        if alpha is not None and len(alpha) != np.shape(u)[1]:
            raise ValueError(f"{path!r}: {len(alpha)} alpha rows for a dictionary of "
                             f"{np.shape(u)[1]} columns")
        return MatrixDictionary(u, alpha)
    raise TypeError(f"{path!r}: a dictionary is a KernelDictionary or MatrixDictionary, got "
                    f"{spec!r}"[:300])


# ----------------------------------------------------------------------------- transform


def predicted_frozen(spec: Dictionary, shape: tuple, dtype) -> PredictedFrozen:
    """The frozen structure of a leaf of ``shape`` and ``dtype`` predicted by ``spec``."""
    u = jnp.asarray(np.asarray(dictionary_matrix(spec)), dtype)
    kernel = spec if isinstance(spec, KernelDictionary) else None
    return PredictedFrozen(u, Static(tuple(int(d) for d in shape)), Static(kernel),
                           Static(spec.alpha))


def predict(state: SharedParams, path: str = "") -> jax.Array:
    """One leaf's ``U @ V`` in the leaf's shape."""
    del path
    return jnp.matmul(state.frozen.u, state.theta["v"]).reshape(state.frozen.shape.value)


def predicted_leaves(dictionaries: Dictionaries) -> Transform:
    """Predict every leaf of a ``{path: leaf}`` dict (use inside :func:`~wsjax.sharing.select`).

    ``dictionaries`` is one spec for every leaf, a ``{path: spec}`` mapping or a function
    ``(path, shape) -> spec``. ``init`` ignores its key (the spec fixes everything): ``V =
    W[alpha]`` where the spec names ``alpha``, else the least-squares fit of ``W`` onto
    ``U``. ``theta`` is ``{path: {'v': V}}``.
    """
    if not isinstance(dictionaries, (KernelDictionary, MatrixDictionary, Mapping)) and not callable(
        dictionaries
    ):
        raise TypeError(f"dictionaries must be a dictionary spec, a {{path: spec}} mapping or a "
                        f"function (path, shape) -> spec, got {dictionaries!r}")

    def leaf_init(key, leaf, path):
        del key
        shape = tuple(leaf.shape)
        spec = _spec_of(dictionaries, path, shape)
        frozen = predicted_frozen(spec, shape, leaf.dtype)
        w = jnp.reshape(leaf, _matrix_shape(shape))
        if spec.alpha is not None:
            v = w[np.asarray(spec.alpha)]
        else:
            v = jnp.linalg.lstsq(frozen.u.astype(jnp.float32), w.astype(jnp.float32))[0]
        return SharedParams({"v": v.astype(leaf.dtype)}, frozen)

    return per_leaf(leaf_init, predict)._replace(codec="predicted")


def predicted(dictionaries: Dictionaries, *, include: Include = KERNELS) -> Transform:
    """Parameter prediction on a model's params pytree, for the leaves matching ``include``."""
    return select(include, predicted_leaves(dictionaries))


def denil_first_layer(input_shape, fraction: float, *, length_scale: float = DEFAULT_LENGTH_SCALE,
                      ridge: float = DEFAULT_RIDGE, seed: int = 0,
                      layer: str = "Dense_0") -> Transform:
    """Predict ``layer``'s kernel from a random ``fraction`` of its input rows (others untouched).

    ``input_shape`` is the image, ``(H, W)`` or ``(H, W, C)``, that the model flattens into
    the layer's inputs; the seen rows are :func:`choose_alpha` of ``jax.random.key(seed)``;
    the dictionary is the squared-exponential kernel ridge regression over pixel positions
    (:class:`KernelDictionary`). ``layer`` is a module path (``'Dense_0'``, ``'layers/0'``).
    """
    image_shape = _image_shape(input_shape)
    seed = checks.seed(seed)
    if not isinstance(layer, str) or not layer:
        raise ValueError(f"layer must be a non-empty module path, got {layer!r}")
    alpha = choose_alpha(jax.random.key(seed), math.prod(image_shape), fraction)
    spec = kernel_spec(image_shape, length_scale, ridge, alpha)
    return predicted(spec, include=rf"(^|/){re.escape(layer)}/kernel(/value)?$")


# ----------------------------------------------------------------------------- counting


def _frozen_leaves(state) -> dict[str, PredictedFrozen]:
    frozen = state.frozen if isinstance(state, SharedParams) else state
    found = jax.tree_util.tree_flatten_with_path(
        frozen, is_leaf=lambda x: isinstance(x, PredictedFrozen))[0]
    return {path_str(p): x for p, x in found if isinstance(x, PredictedFrozen)}


def fraction_predicted(state, *, per_leaf: bool = False):
    """The share of predicted weights: ``1 - k / n`` per predicted leaf (``per_leaf=True``,
    ``{path: fraction}``), or the weights predicted over the weights of the predicted leaves.

    ``state`` is a state of a transform holding :func:`predicted_leaves` (alone, in a
    select or a chain) or its ``frozen``.
    """
    leaves = _frozen_leaves(state)
    if not leaves:
        raise ValueError("the state holds no predicted leaf")
    if per_leaf:
        return {p: 1.0 - f.u.shape[1] / f.u.shape[0] for p, f in leaves.items()}
    total = sum(math.prod(f.shape.value) for f in leaves.values())
    free = sum(f.u.shape[1] * f.shape.value[-1] for f in leaves.values())
    return 1.0 - free / total
