"""Writing a compressed model to a real file and checking that the file is the model."""

from __future__ import annotations

import os

import jax
import numpy as np

from wsjax import storage


def store_and_reload(stored, path: str, score):
    """Write ``stored`` (params, or a ``(transform, state)`` pair such as
    :attr:`wsjax.compress.Compressed.stored`) with :func:`wsjax.storage.save`, read it back
    and score the loaded params with ``score(params) -> accuracy``.

    Raises RuntimeError if the file's size differs from its size report or, for plain
    params, if the loaded params differ in any bit (StorageError if they differ in paths,
    shapes or dtypes: the file is read back with ``like=stored``). Returns
    ``(report, loaded_params, file_accuracy, file_bytes)``; ``file_bytes`` is
    ``os.path.getsize(path)``, the number a study reports as ``stored_bytes``.
    """
    report = storage.save(path, stored)
    loaded = storage.load(path, like=None if isinstance(stored, tuple) else stored)
    if not isinstance(stored, tuple):
        for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(stored), strict=True):
            if not np.array_equal(np.asarray(a), np.asarray(b)):
                raise RuntimeError(f"{path}: the loaded model differs from the in-memory one")
    file_bytes = os.path.getsize(path)
    if file_bytes != report.file_bytes:
        raise RuntimeError(f"{path}: the size report counts {report.file_bytes} bytes, the file has {file_bytes}")
    return report, loaded, score(loaded), file_bytes
