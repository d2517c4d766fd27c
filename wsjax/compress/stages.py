"""The stages of a compression pipeline; each turns one :class:`~wsjax.compress.state.Compressed`
into the next.

Structure stages are cheap and deterministic (pruning masks, k-means, hashing, SVD); the
training stages (:class:`Retrain`, :class:`SoftShare`) are the expensive ones, and their
result is what a pipeline caches for resuming. A stage differs from its siblings by one
method, ``run(net, current, job)``; its fields are its whole configuration (a frozen
dataclass, so a pipeline is data and its cache key is the stages' fields).

* :class:`Prune` -- magnitude masks (per layer or global, Han et al. 2015), cumulative with
  the masks so far, ``W = theta * M``; repeated with :class:`Retrain` in between it is
  Han's iterative pruning.
* :class:`Quantize` -- Deep Compression's trained quantization, ``W = C[a] * M``: a
  k-means codebook per layer of the surviving weights, the masks kept.
* :class:`SoftShare` and :class:`Snap` -- Ullrich et al.'s soft weight-sharing: retraining
  under a learned Gaussian-mixture prior (pruned weights held at zero), then merging close
  components and snapping each weight to its component's mean.
* :class:`Hash` -- HashedNets (per layer or one pool for all layers), :class:`LowRank`
  (SVD factors), :class:`Tie` (cross-layer tying): a new parameterisation of the current
  weights, fitted to them (``init='project'``, SVD) or fresh, then retrained.

References: Han, Pool, Tran & Dally, `Learning both Weights and Connections
<https://arxiv.org/abs/1506.02626>`_, 2015; Han, Mao & Dally, `Deep Compression
<https://arxiv.org/abs/1510.00149>`_, 2016; Ullrich, Meeds & Welling, `Soft Weight-Sharing
for Neural Network Compression <https://arxiv.org/abs/1702.04008>`_, 2017; Chen et al.,
`Compressing Neural Networks with the Hashing Trick <https://arxiv.org/abs/1504.04788>`_,
2015; Denton et al., `Exploiting Linear Structure Within Convolutional Networks
<https://arxiv.org/abs/1404.0736>`_, 2014.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from wsjax import checks, pruning, sharing
from wsjax.compress import train as _train
from wsjax.compress.state import Compressed, start
from wsjax.sharing.core import SharedParams, chain, init_within, masks_of
from wsjax.sharing.mask import combine
from wsjax.sharing.paths import KERNELS, matcher


def _record(c: Compressed, **entry) -> tuple:
    return c.history + (entry,)


def _dense_only(c: Compressed, stage: str) -> None:
    """Stages that read the weights W themselves come before those that re-parameterise them."""
    later = [h["stage"] for h in c.history if h["stage"] in ("quantize", "hash", "low_rank", "random_edges", "tie")]
    if later:
        raise ValueError(f"{stage} must come before quantize / hash / low_rank / tie stages "
                         f"(stages so far: {[h['stage'] for h in c.history]})")


def _nonzero_masks(params, include):
    """Masks (params' structure) keeping the nonzero entries of the selected leaves."""
    match = matcher(include)
    return jax.tree_util.tree_map_with_path(
        lambda kp, w: np.asarray(w) != 0 if match(sharing.path_str(kp)) else None, params)


def _check_training(epochs, lr, alpha, seed, batch_size=100) -> None:
    checks.positive_int(epochs, "epochs")
    checks.number(lr, "lr", lo=0.0, lo_open=True)
    checks.number(alpha, "alpha", lo=0.0, hi=1.0)
    if seed is not None:
        checks.seed(seed)
    checks.positive_int(batch_size, "batch_size")


@dataclasses.dataclass(frozen=True)
class Prune:
    """Prune ``sparsity`` of the selected weights by magnitude (a number, or ``{regex: number}``
    per layer); ``scope='global'`` ranks all selected layers together. Cumulative: weights
    pruned by an earlier stage stay pruned and count towards the target."""

    sparsity: Any
    include: Any = KERNELS
    scope: str = "layer"
    name = "prune"

    def __post_init__(self):
        if not isinstance(self.sparsity, dict) and not callable(self.sparsity):
            checks.number(self.sparsity, "sparsity", lo=0.0, hi=1.0)
        matcher(self.include)

    def run(self, net, c: Compressed, job) -> Compressed:
        _dense_only(c, self.name)
        w = jax.device_get(c.params)
        masks = pruning.sparsity_masks(w, self.sparsity, scope=self.scope, include=self.include,
                                       current=c.masks)
        if c.masks is not None:  # layers this stage does not select keep their earlier masks
            masks = combine(masks, c.masks)
        t = sharing.masked(masks)
        st = t.init(jax.random.key(job.seed), w)
        return Compressed(t, st, masks, _record(c, stage=self.name, kept_fraction=pruning.density(masks)))


@dataclasses.dataclass(frozen=True)
class Retrain:
    """Retrain the free parameters for ``epochs`` (Adam, cosine decay from ``lr`` to
    ``alpha * lr``), on the first ``examples`` training pairs (all for ``None``), shuffled
    with ``seed`` (the pipeline's seed for ``None``)."""

    epochs: int
    lr: float
    alpha: float = 0.05
    examples: Optional[int] = None
    seed: Optional[int] = None
    batch_size: int = 100
    name = "retrain"
    trains = True

    def __post_init__(self):
        _check_training(self.epochs, self.lr, self.alpha, self.seed, self.batch_size)
        if self.examples is not None:
            checks.positive_int(self.examples, "examples")

    def run(self, net, c: Compressed, job) -> Compressed:
        def compute():
            theta, _, history, seconds = _train.retrain(
                net, c, _train.subset(job.train, self.examples), job.val, epochs=self.epochs, lr=self.lr,
                seed=job.seed if self.seed is None else self.seed, alpha=self.alpha,
                batch_size=self.batch_size, loop=job.loop, progress=job.progress, desc=job.desc(self.name))
            return theta, {"seconds": seconds, "history": history}

        theta, info = job.cached(self, c.state.theta, compute)
        last = info["history"][-1] if info["history"] else {}
        return c._replace(state=_train.with_theta(c.state, theta),
                          history=_record(c, stage=self.name, epochs=self.epochs, seconds=info["seconds"],
                                          val_accuracy=last.get("eval_accuracy"), per_epoch=info["history"]))


@dataclasses.dataclass(frozen=True)
class Quantize:
    """Deep Compression's trained quantization: ``2**bits`` k-means centroids per selected
    layer (``bits``: an int, ``{regex: bits}``, a callable, or ``None`` for Han's 8 conv /
    5 fc) of its surviving weights; the masks so far stay fixed. Retrain afterwards to
    fine-tune the centroids."""

    bits: Any = None
    init: str = "linear"
    include: Any = KERNELS
    name = "quantize"

    def run(self, net, c: Compressed, job) -> Compressed:
        _dense_only(c, self.name)
        inner = sharing.select(self.include, sharing.codebook(self.bits, init=self.init))
        if c.masks is not None and masks_of(c.transform, c.state) is None:
            # masks without a mask transform (after a snap): W = C[a] * M keeps the zeros
            t = sharing.masked(c.masks)
            c = c._replace(transform=t, state=t.init(jax.random.key(job.seed), jax.device_get(c.params)))
        surviving = masks_of(c.transform, c.state)  # None when unpruned: every weight is clustered
        s = init_within(inner, jax.random.key(job.seed), c.state.theta, surviving)
        t = chain(c.transform, inner)
        state = SharedParams(s.theta, (c.state.frozen, s.frozen))
        bits = sharing.codebook_bits(s)
        return Compressed(t, state, c.masks, _record(c, stage=self.name, bits=bits))


def _reparameterise(c: Compressed, t, job, stage: str, **entry) -> Compressed:
    _dense_only(c, stage)
    if c.masks is not None:
        raise ValueError(f"{stage} re-parameterises the weights and would drop the pruning masks of the "
                         "stages before it; prune after it is not supported either: use it on an unpruned net")
    w = jax.device_get(c.params)
    st = t.init(jax.random.key(job.seed), w)
    free, virtual = sharing.free_params(st), sharing.virtual_params(t, st)
    return Compressed(t, st, None, _record(c, stage=stage, free_params=free, virtual_params=virtual, **entry))


@dataclasses.dataclass(frozen=True)
class Hash:
    """HashedNets at ``compression`` (free / virtual) on the selected layers: ``scope='layer'``
    gives each layer its own buckets (the paper), ``'pool'`` one pool for all (cross-layer).
    ``init='project'`` fits the buckets to the current weights; ``'random'`` starts fresh."""

    compression: float
    scope: str = "layer"
    include: Any = KERNELS
    init: str = "project"
    hash_seed: int = 0
    name = "hash"

    def __post_init__(self):
        checks.number(self.compression, "compression", lo=0.0, hi=1.0, lo_open=True)
        checks.seed(self.hash_seed, "hash_seed", hi=2**32)

    def run(self, net, c: Compressed, job) -> Compressed:
        t = sharing.hashed(self.compression, scope=self.scope, seed=self.hash_seed, include=self.include,
                           init=self.init)
        return _reparameterise(c, t, job, self.name, compression=self.compression, scope=self.scope)


@dataclasses.dataclass(frozen=True)
class LowRank:
    """Truncated SVD of the selected layers, ``W = U V``: one ``rank`` (or per layer), or one
    common rank for ``compression`` times their size."""

    rank: Any = None
    compression: Optional[float] = None
    include: Any = KERNELS
    name = "low_rank"

    def run(self, net, c: Compressed, job) -> Compressed:
        t = sharing.low_rank(self.rank, compression=self.compression, include=self.include)
        return _reparameterise(c, t, job, self.name)


@dataclasses.dataclass(frozen=True)
class RandomEdges:
    """Random edge removal (the RER baseline of Chen et al. 2015): keep ``compression`` of
    each selected layer's weights at random positions (drawn with the pipeline's seed); only
    the kept weights are free."""

    compression: float
    include: Any = KERNELS
    name = "random_edges"

    def __post_init__(self):
        checks.number(self.compression, "compression", lo=0.0, hi=1.0, lo_open=True)

    def run(self, net, c: Compressed, job) -> Compressed:
        t = sharing.random_edges(self.compression, include=self.include)
        return _reparameterise(c, t, job, self.name, compression=self.compression)


@dataclasses.dataclass(frozen=True)
class Tie:
    """Tie the named layers (same shapes) to one copy, optionally with per-layer
    ``multiplex`` freedom (``'scale_shift'`` or ``'lowrank'`` of ``rank``)."""

    layers: Sequence[str]
    multiplex: Optional[str] = None
    rank: int = 4
    name = "tie"

    def run(self, net, c: Compressed, job) -> Compressed:
        t = sharing.tied(tuple(self.layers), multiplex=self.multiplex, rank=self.rank)
        return _reparameterise(c, t, job, self.name, layers=list(self.layers))


@dataclasses.dataclass(frozen=True)
class SoftShare:
    """Ullrich et al.'s soft weight-sharing retraining: ``epochs`` under a learned Gaussian
    mixture prior with loss weight ``tau`` (the penalty is ``tau / N`` times ``-log p(w) -
    log p(mixture)`` for ``N`` training examples; component 0 is fixed at zero with mixing
    weight ``pi_zero``). Pruned weights stay at zero (:func:`wsjax.pruning.keep_pruned`).
    The learned mixture goes into the stage's history row; :class:`Snap` uses it.

    ``scope='global'`` (Ullrich et al.) puts one mixture over every selected leaf: a prior
    shared *across* layers. ``scope='layer'`` gives each selected leaf its own mixture (same
    settings, its own k-means start and its own learning): the within-layer counterpart,
    recorded as ``mixtures`` (one per leaf path) and snapped leaf by leaf."""

    tau: float
    epochs: int
    lr: float = 5e-4
    pi_zero: float = 0.999
    num_components: int = 17
    mixture_init: str = "kmeans"
    init_std: Optional[float] = None
    hyper_prior: Any = None
    mixture_optimizer: Any = None  # a function returning the mixture's optax optimiser
    include: Any = KERNELS
    alpha: float = 0.1
    seed: Optional[int] = None
    scope: str = "global"
    name = "soft_share"

    def __post_init__(self):
        checks.number(self.tau, "tau", lo=0.0)
        if self.scope not in ("global", "layer"):
            raise ValueError(f"soft_share: scope must be 'global' or 'layer', got {self.scope!r}")
        _check_training(self.epochs, self.lr, self.alpha, self.seed)
        checks.number(self.pi_zero, "pi_zero", lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        checks.integer(self.num_components, "num_components", lo=2)

    def _penalty(self, n_train, include):
        from wsjax import penalties

        kwargs = {} if self.mixture_optimizer is None else {"mixture_optimizer": self.mixture_optimizer()}
        return penalties.soft_weight_sharing(
            strength=self.tau / n_train, num_components=self.num_components, init=self.mixture_init,
            include=include, zero_component=True, pi_zero=self.pi_zero, hyper_prior=self.hyper_prior,
            init_std=self.init_std, **kwargs)

    def _groups(self, params) -> dict:
        """``{name: include}``: one group of every selected leaf, or one per leaf (its exact path)."""
        if self.scope == "global":
            return {"": self.include}
        select = matcher(self.include)
        paths = [p for p in sharing.flatten_paths(params) if select(p)]
        if not paths:
            raise ValueError(f"soft_share: include={self.include!r} selects no leaf")
        return {p: lambda q, p=p: q == p for p in paths}

    def run(self, net, c: Compressed, job) -> Compressed:
        from wsjax import penalties

        _dense_only(c, self.name)
        plain = start(jax.device_get(c.params))
        groups = self._groups(c.params)

        def compute():
            keep = () if c.masks is None else (pruning.keep_pruned(c.masks),)
            n = len(job.train[0])
            theta, opt_state, history, seconds = _train.retrain(
                net, plain, job.train, job.val, epochs=self.epochs, lr=self.lr, alpha=self.alpha,
                seed=job.seed if self.seed is None else self.seed, loop=job.loop, progress=job.progress,
                desc=job.desc(self.name), before=tuple(self._penalty(n, inc) for inc in groups.values()), after=keep)
            mixtures = {g: jax.device_get(opt_state[i].mixture) for i, g in enumerate(groups)}
            return (theta, mixtures), {"seconds": seconds, "history": history}

        k = np.zeros((self.num_components,), np.float32)
        template = (plain.state.theta, {g: penalties.Mixture(k, k, k) for g in groups})
        (theta, mixtures), info = job.cached(self, template, compute)
        last = info["history"][-1] if info["history"] else {}
        out = start(theta)
        as_lists = lambda m: {f: np.asarray(v).tolist() for f, v in m._asdict().items()}  # noqa: E731
        learned = ({"mixture": as_lists(mixtures[""])} if self.scope == "global"
                   else {"mixtures": {g: as_lists(m) for g, m in mixtures.items()}})
        return Compressed(out.transform, out.state, c.masks, _record(
            c, stage=self.name, epochs=self.epochs, seconds=info["seconds"], val_accuracy=last.get("eval_accuracy"),
            per_epoch=info["history"], **learned))


@dataclasses.dataclass(frozen=True)
class Snap:
    """Ullrich et al.'s post-processing of a :class:`SoftShare` retraining: merge mixture
    components whose symmetric KL is below ``kl_threshold``, then set every selected weight
    to the mean of its most responsible component (component 0: exactly zero). The zeros
    become the masks that later stages keep."""

    kl_threshold: float = 0.1
    include: Any = KERNELS
    name = "snap"

    def __post_init__(self):
        checks.number(self.kl_threshold, "kl_threshold", lo=0.0, finite=False)

    def run(self, net, c: Compressed, job) -> Compressed:
        from wsjax import penalties

        learned = next((h for h in reversed(c.history) if h["stage"] == "soft_share"), None)
        if learned is None:
            raise ValueError("snap needs a soft_share stage before it (it snaps to the learned mixture)")
        def merged_of(fields):
            mixture = penalties.Mixture(**{f: jnp.asarray(v, jnp.float32) for f, v in fields.items()})
            return penalties.merge_components(mixture, kl_threshold=self.kl_threshold, zero_component=True)

        as_lists = lambda m: {f: np.asarray(v).tolist() for f, v in m._asdict().items()}  # noqa: E731
        snapped = jax.device_get(c.params)
        if "mixture" in learned:  # one prior for every selected leaf
            merged = merged_of(learned["mixture"])
            snapped, _ = penalties.snap_to_components(snapped, merged, include=self.include, zero_component=True)
            extra = {"components": int(merged.means.shape[0]), "merged": as_lists(merged)}
        else:  # a prior per leaf: each leaf snaps to its own merged mixture
            select, merged = matcher(self.include), {p: merged_of(m) for p, m in learned["mixtures"].items()}
            for path, m in merged.items():
                if select(path):
                    snapped, _ = penalties.snap_to_components(snapped, m, include=lambda q, p=path: q == p,
                                                              zero_component=True)
            extra = {"components": {p: int(m.means.shape[0]) for p, m in merged.items()},
                     "merged": {p: as_lists(m) for p, m in merged.items()}}
        snapped = jax.device_get(snapped)
        values = np.concatenate([np.asarray(w).ravel() for p, w in sharing.flatten_paths(snapped).items()
                                 if matcher(self.include)(p)])
        out = start(snapped)
        return Compressed(out.transform, out.state, _nonzero_masks(snapped, self.include), _record(
            c, stage=self.name, nonzero_fraction=int(np.count_nonzero(values)) / max(values.size, 1),
            distinct_values=int(np.unique(values).size), **extra))


STAGES = {cls.name: cls for cls in (Prune, Retrain, Quantize, SoftShare, Snap, Hash, LowRank, RandomEdges, Tie)}
