"""A compression pipeline: stages run in order on one model, resumable from a folder.

>>> from wsjax import compress                                          # doctest: +SKIP
>>> deep_compression = compress.Pipeline([
...     compress.Prune({"Dense_0": 0.92, "Dense_1": 0.91, "Dense_2": 0.74}),
...     compress.Retrain(epochs=6, lr=1e-3),
...     compress.Quantize(),              # Han's bits: 8 conv, 5 fc
...     compress.Retrain(epochs=3, lr=1e-4)])
>>> result = deep_compression.run((model, params), train, val, seed=0, out_dir="runs/dc")
>>> wsjax.storage.save("lenet.wsjax", result.stored)

A pipeline takes a model (a Flax linen module with its params, an NNX model, or an
``(apply_fn, params)`` pair, see :mod:`wsjax.compress.net`), training and validation data
``(x, y)`` and a seed. Each stage sees the :class:`~wsjax.compress.state.Compressed` net the
one before it left; the result is the final transform, its state, the masks and a history
row per stage. With ``out_dir`` every training stage's result is written there (atomically)
under a key that hashes the whole configuration that led to it (the stages so far, the
seed, the data's shapes and a checksum of it, the starting weights), so a rerun skips
finished training and a changed config never reuses another's result.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import zlib
from typing import Any, Sequence

import jax
import numpy as np
from flax import serialization

from wsjax.compress.net import as_net
from wsjax.compress.state import Compressed, start
from wsjax.io import atomic_write


def _describe(value):
    """A JSON-able description of a stage field that differs whenever the value does:
    NumPy scalars and arrays by value, dicts as ordered item lists (a ``{regex: value}``
    dict's first match wins, so order matters), functions by name, code, constants,
    defaults and the values they close over."""
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, (np.generic, np.ndarray)) or hasattr(value, "__array__"):
        a = np.asarray(value)
        return {"array": a.tolist(), "dtype": str(a.dtype)}
    if isinstance(value, dict):
        return {"items": [[_describe(k), _describe(v)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__qualname__,
                **{f.name: _describe(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if hasattr(value, "_asdict"):
        return {k: _describe(v) for k, v in value._asdict().items()}
    if isinstance(value, functools.partial):
        return {"partial": _describe(value.func), "args": _describe(value.args), "kwargs": _describe(value.keywords)}
    if callable(value):
        code = getattr(value, "__code__", None)
        cells = [c.cell_contents for c in (getattr(value, "__closure__", None) or ())]
        return {"callable": getattr(value, "__qualname__", type(value).__qualname__),
                "code": None if code is None else hashlib.sha256(code.co_code).hexdigest()[:16],
                "consts": None if code is None else _describe([c for c in code.co_consts if _plain(c)]),
                "defaults": _describe(getattr(value, "__defaults__", None)), "closure": _describe(cells)}
    return {"type": type(value).__qualname__, "repr": repr(value)}


def _plain(c) -> bool:
    return isinstance(c, (str, int, float, bool, tuple)) or c is None


def model_description(net) -> Any:
    """What identifies the model in a cache key: the linen module, the NNX graph, or the
    apply function itself."""
    source = getattr(net, "source", None)
    return _describe(source if source is not None else net.apply)


def stage_config(stage) -> dict:
    """``{'stage': name, field: value, ...}``: the stage as data."""
    return {"stage": stage.name, **{k: v for k, v in _describe(stage).items() if k != "type"}}


def fingerprint(tree) -> str:
    """A checksum of a pytree of arrays (shapes, dtypes and bytes)."""
    crc = zlib.crc32(str(jax.tree.structure(tree)).encode())  # static parts too (hash specs, shapes)
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        a = np.ascontiguousarray(np.asarray(leaf))
        crc = zlib.crc32(f"{jax.tree_util.keystr(path)}{a.shape}{a.dtype}".encode(), crc)
        crc = zlib.crc32(a.tobytes(), crc)
    return f"{crc:08x}"


class Job:
    """What every stage of one run shares: data, seed, loop, progress and the cache."""

    def __init__(self, train, val, seed, loop, progress, out_dir, key, label):
        self.train, self.val, self.seed, self.loop, self.progress = train, val, seed, loop, progress
        self.out_dir, self.key, self.label = out_dir, key, label

    def desc(self, stage_name: str) -> str:
        return f"{self.label}{stage_name}" if self.label else stage_name

    def cached(self, stage, template, compute):
        """``compute()`` -> ``(tree, info)``, or both read back from the cache."""
        if self.out_dir is None:
            return compute()
        path = os.path.join(self.out_dir, f"{self.key}.msgpack")
        if os.path.exists(path):
            with open(path, "rb") as f:
                saved = serialization.msgpack_restore(f.read())
            tree = serialization.from_state_dict(template, saved["tree"])
            return tree, json.loads(saved["info"])
        tree, info = compute()
        blob = serialization.msgpack_serialize(
            {"tree": serialization.to_state_dict(jax.tree.map(np.asarray, tree)), "info": json.dumps(info, default=float)})
        os.makedirs(self.out_dir, exist_ok=True)
        atomic_write(path, blob)  # a killed run leaves no torn cache file
        return tree, info


class Pipeline:
    """Stages run in order; see the module docstring."""

    def __init__(self, stages: Sequence[Any]):
        stages = tuple(stages)
        if not stages:
            raise ValueError("a pipeline needs at least one stage")
        for s in stages:
            if not (dataclasses.is_dataclass(s) and hasattr(s, "run") and hasattr(s, "name")):
                raise TypeError(f"{s!r} is not a pipeline stage (see wsjax.compress.STAGES)")
        self.stages = stages

    def config(self) -> list[dict]:
        return [stage_config(s) for s in self.stages]

    def __add__(self, other: "Pipeline") -> "Pipeline":
        return Pipeline(self.stages + tuple(other.stages))

    def run(self, model, train, val=None, *, params=None, seed: int = 0, start_from: Compressed | None = None,
            out_dir: str | None = None, loop: str = "auto", progress: bool = True, label: str = "") -> Compressed:
        """Run every stage; returns the final :class:`Compressed` (``.stored`` for storage).

        Args:
          model: a linen module (with ``params``), an NNX model, a :class:`~wsjax.compress.Net`,
            or an ``apply_fn(params, x)`` (with ``params``).
          train, val: ``(x, y)`` arrays; ``val`` is evaluated after every training epoch.
          start_from: continue from an earlier pipeline's result instead of the model's params.
          out_dir: cache folder for resuming (``None``: nothing is written).
        """
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        net = as_net(model, params)
        c = start_from if start_from is not None else start(jax.device_get(net.params))
        base = {"seed": int(seed), "train": fingerprint(train), "val": None if val is None else fingerprint(val),
                "start": fingerprint(c.state), "start_masks": None if c.masks is None else fingerprint(c.masks),
                "start_history": [h["stage"] for h in c.history], "model": model_description(net)}
        for i, stage in enumerate(self.stages):
            key_src = json.dumps({**base, "stages": self.config()[: i + 1]})
            key = f"{i:02d}-{stage.name}-{hashlib.sha256(key_src.encode()).hexdigest()[:16]}"
            job = Job(train, val, int(seed), loop, progress, out_dir, key, label)
            c = stage.run(net, c, job)
        return c
