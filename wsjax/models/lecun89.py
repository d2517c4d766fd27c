"""LeCun's (1989) five networks for 16x16 digits, Net-1 to Net-5.

Net-1 and Net-2 are fully connected; Net-3 is locally connected without sharing; Net-4 and
Net-5 are *the same locally connected modules* as Net-3 (with more maps) plus a weight-space
transformation that shares each map's kernel over positions (:func:`wsjax.sharing.local.
convolution`). The models never know they are shared, so "links" (connections including
biases) are the model's parameters and "free parameters" are the transform's state:

========  ==================================================================  =====  ====
net       architecture                                                        links  free
========  ==================================================================  =====  ====
Net-1     256 -> 10                                                            2570  2570
Net-2     256 -> 12 -> 10                                                      3214  3214
Net-3     H1 8x8 local on 3x3, H2 4x4 local on 5x5 of H1, out fully conn.      1226  1226
Net-4     H1 2 maps 8x8, shared 3x3 kernels; H2 4x4 local on 5x5x2; out        2266  1132
Net-5     H1 as Net-4; H2 4 maps 4x4, shared 5x5x2 kernels; out                5194  1060
========  ==================================================================  =====  ====

Both hidden layers have units two pixels apart (stride 2) and one bias per unit; the input
and H1 are zero padded ('SAME': 16 -> 17 rows and columns for H1, 8 -> 11 for H2) so that
every unit sees a full patch, which is how LeCun counts links. The counts do not depend
on where the padding goes. Hidden units are ``tanh``; the models return the output
pre-activations, to which the paper applies a sigmoid and a sum-of-squares loss
(:func:`sum_of_squares`).

References: LeCun, `Generalization and network design strategies
<http://yann.lecun.com/exdb/publis/pdf/lecun-89.pdf>`_, 1989.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsjax import checks
from wsjax.models.local import LocallyConnected2D
from wsjax.sharing.core import SharedParams, Transform, count_params, free_params, identity
from wsjax.sharing.local import convolution

INPUT_SHAPE = (16, 16, 1)
NUM_NETS = 5


class Net1(nn.Module):
    """No hidden layer: 256 inputs fully connected to 10 outputs."""

    num_classes: int = 10

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.num_classes, name="out")(x.reshape((x.shape[0], -1)))


class Net2(nn.Module):
    """One fully connected hidden layer of ``hidden`` units."""

    hidden: int = 12
    num_classes: int = 10
    activation: Callable = jnp.tanh

    @nn.compact
    def __call__(self, x):
        h = self.activation(nn.Dense(self.hidden, name="H1")(x.reshape((x.shape[0], -1))))
        return nn.Dense(self.num_classes, name="out")(h)


class LocalNet(nn.Module):
    """Two locally connected hidden layers ``H1``, ``H2`` and a fully connected output.

    ``h1_maps`` 8x8 maps see 3x3 patches of the input, ``h2_maps`` 4x4 maps see 5x5 patches
    of all H1 maps; strides 2, one bias per unit (LeCun's Net-3/4/5 without sharing).
    """

    h1_maps: int = 1
    h2_maps: int = 1
    num_classes: int = 10
    activation: Callable = jnp.tanh
    padding: Any = "SAME"

    @nn.compact
    def __call__(self, x):
        h = LocallyConnected2D(self.h1_maps, (3, 3), (2, 2), self.padding, "unit", name="H1")(x)
        h = self.activation(h)
        h = LocallyConnected2D(self.h2_maps, (5, 5), (2, 2), self.padding, "unit", name="H2")(h)
        h = self.activation(h)
        return nn.Dense(self.num_classes, name="out")(h.reshape((h.shape[0], -1)))


def lecun89_net(n: int, num_classes: int = 10, shared: bool = True) -> tuple[nn.Module, Transform]:
    """``(model, transform)`` of LeCun's Net-``n``; the transform is identity when unshared.

    Net-4 shares H1's 3x3 kernel within each of its 2 maps; Net-5 also shares H2's 5x5x2
    kernel within each of its 4 maps. Biases stay one per unit, as in the paper.
    ``shared=False`` keeps the architecture and drops the sharing (free = links): the
    control that isolates what sharing itself does.
    """
    if not checks.is_int(n) or not 1 <= n <= NUM_NETS:
        raise ValueError(f"LeCun 1989 has Net-1 .. Net-{NUM_NETS}, got n={n!r}")
    if not shared:
        return lecun89_net(n, num_classes)[0], identity()
    if n == 1:
        return Net1(num_classes), identity()
    if n == 2:
        return Net2(num_classes=num_classes), identity()
    if n == 3:
        return LocalNet(1, 1, num_classes), identity()
    if n == 4:
        return LocalNet(2, 1, num_classes), convolution(r"^H1$", biases="unit")
    return LocalNet(2, 4, num_classes), convolution(r"^H[12]$", biases="unit")


#: What each net is, in the paper's terms (the ``shared=False`` controls of Net-4 and Net-5:
#: :data:`CONTROL_ARCHITECTURE`).
ARCHITECTURE = {
    1: "256-10",
    2: "256-12-10",
    3: "local 8x8(3x3) / 4x4(5x5)",
    4: "2 shared 8x8(3x3) / local 4x4(5x5x2)",
    5: "2 shared 8x8(3x3) / 4 shared 4x4(5x5x2)",
}
CONTROL_ARCHITECTURE = {4: "2 local 8x8(3x3) / local 4x4(5x5x2)", 5: "2 local 8x8(3x3) / 4 local 4x4(5x5x2)"}


def net_name(n: int, shared: bool = True) -> str:
    """``'Net-n'``, or ``'Net-n (no sharing)'`` for the unshared control of Net-4 / Net-5."""
    return f"Net-{n}" if shared or n < 4 else f"Net-{n} (no sharing)"


def architecture(n: int, shared: bool = True) -> str:
    """Net-``n``'s layers in a few words (:data:`ARCHITECTURE`)."""
    return ARCHITECTURE[n] if shared or n < 4 else CONTROL_ARCHITECTURE[n]


def sum_of_squares(z: jax.Array, labels: jax.Array) -> jax.Array:
    """LeCun's loss on output pre-activations ``z``: ``0.5 * sum_c (sigmoid(z_c) - t_c)^2``
    with one-hot targets ``t`` in {0, 1}, averaged over the examples."""
    target = jax.nn.one_hot(labels, z.shape[-1])
    return 0.5 * jnp.mean(jnp.sum((jax.nn.sigmoid(z) - target) ** 2, axis=-1))


def logits_fn(n: int, frozen: Any = None, shared: bool = True) -> Callable[[Any, jax.Array], jax.Array]:
    """``(theta, x) -> output pre-activations`` of Net-``n`` with the transform's trainable
    state ``theta`` and its ``frozen`` part (``state.frozen`` of :func:`init_net`)."""
    model, transform = lecun89_net(n, shared=shared)

    def logits(theta, x):
        return model.apply({"params": transform.apply(SharedParams(theta, frozen))}, x)

    return logits


def link_count(params) -> int:
    """LeCun's "links": connections including biases, i.e. the model's (virtual) parameters."""
    return count_params(params)


def free_count(state: SharedParams) -> int:
    """LeCun's "free weights": the trainable parameters of the transform's state."""
    return free_params(state)


def init_net(n: int, key: jax.Array, num_classes: int = 10, shared: bool = True):
    """``(model, transform, state)`` of Net-``n`` initialised on a 16x16x1 input."""
    model, transform = lecun89_net(n, num_classes, shared)
    k_model, k_share = jax.random.split(key)
    params = model.init(k_model, jnp.zeros((1,) + INPUT_SHAPE))["params"]
    return model, transform, transform.init(k_share, params)


def counts(n: int, shared: bool = True) -> tuple[int, int]:
    """``(links, free)`` of Net-``n`` from its params and transform state (shapes only)."""
    model, transform = lecun89_net(n, shared=shared)

    def build(key):
        params = model.init(key, jnp.zeros((1,) + INPUT_SHAPE))["params"]
        return params, transform.init(key, params)

    params, state = jax.eval_shape(build, jax.random.key(0))
    return link_count(params), free_count(state)
