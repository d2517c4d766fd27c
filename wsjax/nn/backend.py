"""Which implementation of an op runs where, and the XLA:CPU options the engine compiles with.

On XLA:CPU (jax 0.10) convolutions are handed to YNNPACK by default, and on a 2-core x86
machine its convolutions measured 2-3x slower than XLA's own Eigen kernels (LeNet-5's second
convolution: forward 4.9 vs 2.5 ms, weight gradient 8.6 vs 5.1 ms, jitted side by side; whole epochs: ``benchmarks/epoch_loop.py``).
:func:`compiler_options` turns YNNPACK off for convolutions only, for one jitted function,
without a global flag; :func:`on_platform` picks an op's CPU or portable version at lowering
time, so one traced model runs its fast CPU path on CPU and the plain lax op on GPU and TPU.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

#: XLA:CPU's YNNPACK fusion kinds without the convolution one (jaxlib 0.10's enum names).
_YNN_WITHOUT_CONVOLUTION = "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"
_YNN_FLAG = "xla_cpu_experimental_ynn_fusion_type"


@functools.cache
def _flag_supported() -> bool:
    try:
        jax.jit(lambda x: x + 1, compiler_options={_YNN_FLAG: _YNN_WITHOUT_CONVOLUTION}).lower(
            jnp.zeros(1)).compile()
    except Exception:  # an older or newer jaxlib without this option or enum value
        return False
    return True


def compiler_options(backend: str | None = None) -> dict | None:
    """The ``compiler_options`` for ``jax.jit`` of a training or evaluation step: on CPU, the
    YNNPACK fusion list without convolutions (if this jaxlib knows the option), else ``None``."""
    backend = backend or jax.default_backend()
    if backend == "cpu" and _flag_supported():
        return {_YNN_FLAG: _YNN_WITHOUT_CONVOLUTION}
    return None


def on_platform(cpu, default, *args):
    """``cpu(*args)`` when lowered for CPU, ``default(*args)`` elsewhere (both branches are in
    the lowered module under a platform index that XLA folds to a constant, so the other
    branch costs nothing; both must return the same shapes and dtypes)."""
    return lax.platform_dependent(*args, cpu=cpu, default=default)
