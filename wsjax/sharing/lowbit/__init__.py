"""Low-bit weights: binary (BinaryConnect, XNOR-Net scales), ternary (TWN) and k-bit
(fixed step or LSQ) quantization-aware training as transforms ``W = T(theta)``.

* :mod:`~wsjax.sharing.lowbit.quantizers`: one leaf's quantizers and their straight-through
  backward passes (the formulas);
* :mod:`~wsjax.sharing.lowbit.transform`: the transforms (:func:`binary`, :func:`ternary`,
  :func:`uniform`, :func:`lowbit_weights` for per-layer specs) and stochastic binarisation;
* :mod:`~wsjax.sharing.lowbit.optim`: :func:`clip_latent`, BinaryConnect's clipping of the
  latents as an optax transformation.

Stored by the ``'lowbit'`` codec (:mod:`wsjax.storage.codecs.lowbit`): packed codes at
their bit width plus float32 scales.

References: Courbariaux, Bengio & David, `BinaryConnect <https://arxiv.org/abs/1511.00363>`_,
2015; Rastegari et al, `XNOR-Net <https://arxiv.org/abs/1603.05279>`_, 2016; Li, Zhang & Liu,
`Ternary Weight Networks <https://arxiv.org/abs/1605.04711>`_, 2016; Esser et al, `Learned
Step Size Quantization <https://arxiv.org/abs/1902.08153>`_, 2019.
"""

from wsjax.sharing.lowbit.quantizers import (KINDS, MAX_BITS, MIN_BITS, SCALES, TWN_THRESHOLD,
                                             LowBit, code_range, levels, make_spec,
                                             straight_through, uniform_weights)
from wsjax.sharing.lowbit.transform import (LowBitFrozen, binary, leaf_weights, lowbit_leaves,
                                            lowbit_weights, resample, stochastic_apply, ternary,
                                            uniform)
from wsjax.sharing.lowbit.optim import ClipLatentState, binary_latents, clip_latent

__all__ = ["KINDS", "MAX_BITS", "MIN_BITS", "SCALES", "TWN_THRESHOLD", "ClipLatentState",
           "LowBit", "LowBitFrozen", "binary", "binary_latents", "clip_latent", "code_range",
           "leaf_weights", "levels", "lowbit_leaves", "lowbit_weights", "make_spec", "resample",
           "stochastic_apply", "straight_through", "ternary", "uniform", "uniform_weights"]
