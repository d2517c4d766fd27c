"""Data parallelism over all local devices with ``jax.sharding``.

The training set is replicated on every device; each minibatch is constrained to be split
along its first axis over a one-axis mesh named ``'data'``, and the parameters stay
replicated. XLA's partitioner inserts the gradient all-reduce, so the same code runs on one
CPU, several forced host devices, a GPU box or a TPU slice, and the loss curve matches the
single-device one up to float reassociation.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


@dataclasses.dataclass(frozen=True)
class DataParallel:
    mesh: Mesh | None

    @classmethod
    def create(cls, enabled: bool | None, batch_size: int) -> "DataParallel":
        devices = jax.local_devices()
        if enabled is None:
            enabled = len(devices) > 1
        if not enabled or len(devices) == 1:
            return cls(None)
        if batch_size % len(devices):
            raise ValueError(
                f"batch_size {batch_size} must be divisible by the {len(devices)} local "
                "devices for data parallel training (or pass data_parallel=False)"
            )
        return cls(Mesh(np.asarray(devices), ("data",)))

    @property
    def num_devices(self) -> int:
        return 1 if self.mesh is None else self.mesh.size

    def replicate(self, x):
        if self.mesh is None:
            return x
        return jax.device_put(x, NamedSharding(self.mesh, P()))

    def shard_batch(self, x):
        if self.mesh is None:
            return x
        return jax.lax.with_sharding_constraint(x, NamedSharding(self.mesh, P("data")))
