"""Compression pipelines: any Flax model (linen or NNX) compressed in a few lines.

A :class:`Pipeline` is a list of stages (:class:`Prune`, :class:`Retrain`,
:class:`GradualPrune`, :class:`Quantize`, :class:`SoftShare`, :class:`Snap`, :class:`Hash`, :class:`LowRank`, :class:`RandomEdges`, :class:`Tie`)
run on the one training engine; each later stage keeps the masks and codebooks of the
earlier ones. The result's ``stored`` pair goes straight to :func:`wsjax.storage.save`,
which writes each transform with its own codec (a hashed layer as its buckets, not its
virtual matrix). :func:`deep_compression` and :func:`hashednets` are the two recipes most
studies start from.

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016;
Chen et al., `Compressing Neural Networks with the Hashing Trick
<https://arxiv.org/abs/1504.04788>`_, 2015.
"""

from wsjax.compress.net import Net, as_net, from_linen, from_nnx
from wsjax.compress.pipeline import Pipeline, fingerprint, stage_config
from wsjax.compress.recipes import deep_compression, hashednets
from wsjax.compress.bit_allocation import fewest_bits
from wsjax.compress.gradual import GradualPrune
from wsjax.compress.stages import (STAGES as _STAGES, Hash, LowRank, Prune, Quantize, RandomEdges, Retrain, Snap, SoftShare,
                                   Tie)
from wsjax.compress.state import Compressed, start

#: Every pipeline stage by name.
STAGES = {**_STAGES, GradualPrune.name: GradualPrune}
