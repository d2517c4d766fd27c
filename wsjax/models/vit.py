"""Two reference models for cross-layer studies: many layers of one shape.

* :func:`deep_mlp`: a balanced ReLU MLP, 784 -> 256 x 8 -> 10 by default, whose hidden
  layers ``Dense_1 .. Dense_7`` all have one kernel shape (256, 256), so that one basis, one
  hashed pool or one tied layer can serve several of them.
* :class:`ViT`: a small Vision Transformer (Dosovitskiy et al., `An Image is Worth 16x16
  Words <https://arxiv.org/abs/2010.11929>`_, 2021) for 28x28 images: non-overlapping
  ``patch`` x ``patch`` patches (7x7: 16 tokens) linearly embedded, a learned position
  embedding, a class token, ``depth`` pre-LayerNorm blocks (multi-head self-attention, then
  a GELU MLP of ``mlp_ratio`` x ``width``), a final LayerNorm and a linear head on the class
  token. Every block has the same parameter shapes (``Block_0 .. Block_{depth-1}``), the
  setting of ALBERT's and MiniViT's cross-layer sharing.

Both are flax.linen modules; a researcher's NNX model goes through ``wsjax.compress.from_nnx``
the same way. :func:`vit_params` counts a ViT's parameters by formula (tested against the
initialised tree).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from wsjax import checks
from wsjax.models.lenet import MLP


def deep_mlp(width: int = 256, hidden_layers: int = 8, classes: int = 10) -> MLP:
    """``MLP((width,) * hidden_layers + (classes,))``: 784*256+256 + 7*(256*256+256) +
    256*10+10 = 664,074 parameters by default on 28x28 inputs."""
    width = checks.positive_int(width, "width")
    hidden_layers = checks.positive_int(hidden_layers, "hidden_layers")
    classes = checks.positive_int(classes, "classes")
    return MLP((width,) * hidden_layers + (classes,))


class Block(nn.Module):
    """A pre-LayerNorm transformer block: x + MHSA(LN(x)), then x + MLP(LN(x)).

    The query, key, value and output projections are plain ``width x width`` Dense kernels
    (heads are a reshape of their outputs), so every kernel of a block is a matrix whose rows
    are its inputs: the view low rank, a shared basis or a codebook takes of a leaf.

    The attention weights are sown as ``intermediates/attention`` (shape ``(batch, heads,
    tokens, tokens)``) when the caller asks for them with ``mutable=['intermediates']``:
    MiniViT's attention distillation (:func:`wsjax.distill.attention_map_loss`) reads them.
    """

    width: int
    heads: int
    mlp_ratio: int = 2

    @nn.compact
    def __call__(self, x):
        h = nn.LayerNorm(name="LayerNorm_0")(x)
        b, n, _ = h.shape
        dh = self.width // self.heads
        q, k, v = (nn.Dense(self.width, name=name)(h).reshape(b, n, self.heads, dh) for name in ("query", "key", "value"))
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(jnp.float32(dh))
        attention = nn.softmax(logits, axis=-1)
        self.sow("intermediates", "attention", attention)
        out = jnp.einsum("bhqk,bkhd->bqhd", attention, v).reshape(b, n, self.width)
        x = x + nn.Dense(self.width, name="out")(out)
        h = nn.LayerNorm(name="LayerNorm_1")(x)
        h = nn.Dense(self.mlp_ratio * self.width, name="mlp_in")(h)
        return x + nn.Dense(self.width, name="mlp_out")(nn.gelu(h))


class ViT(nn.Module):
    """A small ViT for 28x28x1 images (see the module docstring); logits of ``classes``."""

    patch: int = 7
    width: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: int = 2
    classes: int = 10

    @nn.compact
    def __call__(self, x):
        if x.ndim != 4 or x.shape[1] % self.patch or x.shape[2] % self.patch:
            raise ValueError(f"ViT(patch={self.patch}) needs (batch, H, W, C) images with H and W divisible by "
                             f"{self.patch}, got shape {tuple(x.shape)}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        b, hgt, wid, c = x.shape
        p = self.patch
        tokens = x.reshape(b, hgt // p, p, wid // p, p, c).transpose(0, 1, 3, 2, 4, 5)
        tokens = tokens.reshape(b, (hgt // p) * (wid // p), p * p * c)
        t = nn.Dense(self.width, name="embed")(tokens)
        cls = self.param("cls", nn.initializers.zeros, (1, 1, self.width))
        t = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, self.width)), t], axis=1)
        t = t + self.param("position", nn.initializers.normal(0.02), (1, t.shape[1], self.width))
        for i in range(self.depth):
            t = Block(self.width, self.heads, self.mlp_ratio, name=f"Block_{i}")(t)
        t = nn.LayerNorm(name="LayerNorm_final")(t)
        return nn.Dense(self.classes, name="head")(t[:, 0])


def vit_params(patch: int = 7, width: int = 64, depth: int = 4, mlp_ratio: int = 2, classes: int = 10,
               image: int = 28, channels: int = 1) -> int:
    """A :class:`ViT`'s parameter count: embedding, class token and positions, ``depth``
    blocks of 4 (w^2 + w) attention weights, 2 LayerNorms (4w) and the MLP
    (2 r w^2 + r w + w), the final LayerNorm and the head."""
    tokens = (image // patch) ** 2 + 1
    embed = patch * patch * channels * width + width + width + tokens * width
    block = 4 * (width * width + width) + 4 * width + 2 * mlp_ratio * width * width + mlp_ratio * width + width
    return embed + depth * block + 2 * width + width * classes + classes


def equal_size_vit(target: int, patch: int = 7, depth: int = 4, heads: int = 4, mlp_ratio: int = 2,
                   classes: int = 10) -> int:
    """The width (a multiple of ``heads``) of the ViT with ``depth`` blocks whose parameter count
    comes nearest ``target``: the narrow net of a budget (the depth and head count stay)."""
    target = checks.positive_int(target, "target")
    heads = checks.positive_int(heads, "heads")
    count = lambda w: vit_params(patch, w, depth, mlp_ratio, classes)  # noqa: E731
    top = heads
    while count(top) < target:
        top += heads
    return min(range(heads, top + 1, heads), key=lambda w: abs(count(w) - target))
