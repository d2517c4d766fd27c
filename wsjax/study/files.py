"""Writing a compressed model to a real file and checking that the file is the model."""

from __future__ import annotations

import os

import jax
import numpy as np

from wsjax import storage


def store_and_reload(stored, path: str, score, **encode_options):
    """Write ``stored`` (params, or a ``(transform, state)`` pair such as
    :attr:`wsjax.compress.Compressed.stored`) with :func:`wsjax.storage.save`, read it back
    and score the loaded params with ``score(params) -> accuracy``.

    Raises RuntimeError if the file's size differs from its size report or, for plain
    params, if the loaded params differ in any bit (StorageError if they differ in paths,
    shapes or dtypes: the file is read back with ``like=stored``). Returns
    ``(report, loaded_params, file_accuracy, file_bytes)``; ``file_bytes`` is
    ``os.path.getsize(path)``, the number a study reports as ``stored_bytes``.
    ``encode_options`` (``index_bits``, ``encoding``) go to :func:`wsjax.storage.save`.
    """
    report = storage.save(path, stored, **encode_options)
    loaded = storage.load(path, like=None if isinstance(stored, tuple) else stored)
    if not isinstance(stored, tuple):
        for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(stored), strict=True):
            if not np.array_equal(np.asarray(a), np.asarray(b)):
                raise RuntimeError(f"{path}: the loaded model differs from the in-memory one")
    file_bytes = os.path.getsize(path)
    if file_bytes != report.file_bytes:
        raise RuntimeError(f"{path}: the size report counts {report.file_bytes} bytes, the file has {file_bytes}")
    return report, loaded, score(loaded), file_bytes


def stored_row(unit, store, stored, params, score, **encode_options) -> dict:
    """Write ``stored`` to ``unit``'s artifact file in ``store``, read it back and score it
    (:func:`store_and_reload`); RuntimeError unless the file's net scores what the in-memory
    ``params`` score. The row metrics: ``test_accuracy`` (from the file), ``in_memory_accuracy``,
    ``stored_bytes`` and ``file`` (relative to the store's folder)."""
    in_memory = score(jax.device_get(params))
    path = store.artifact(unit, ".wsjax")
    _, _, from_file, nbytes = store_and_reload(stored, path, score, **encode_options)
    if from_file != in_memory:
        raise RuntimeError(f"{path}: the file's net scores {from_file}, the trained one {in_memory}")
    return {"test_accuracy": from_file, "in_memory_accuracy": in_memory, "stored_bytes": nbytes,
            "file": os.path.relpath(path, store.folder)}
