"""DynamicNet: one hidden layer reused a random number of times per forward pass.

The net of the notes (seed 002, after the PyTorch tutorial's ``DynamicNet``)::

    h = relu(input_linear(x))
    repeat r times, r ~ U{0, ..., max_repeats}:  h = relu(middle_linear(h))
    y = output_linear(h)

``middle_linear`` is one set of weights applied up to ``max_repeats`` times (weights tied
across depth); its gradient is the sum over the applications that ran. The depth ``r`` is a
traced integer: ``nn.switch`` (a lifted ``jax.lax.switch``) picks among ``max_repeats + 1``
compiled branches, so a jitted training step is traced once and a new random depth every step
costs no retrace, and only the chosen branch runs.

``r`` is drawn from the ``'depth'`` RNG stream (``model.apply(v, x, rngs={'depth': key})``)
unless given as the ``repeats`` argument.

References: the PyTorch tutorial's "Control Flow + Weight Sharing" example; Lan et al,
`ALBERT <https://arxiv.org/abs/1909.11942>`_, 2020 (tying layers across depth).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class DynamicNet(nn.Module):
    """``input_linear -> middle_linear x r -> output_linear`` with ReLUs; ``r`` in ``0..max_repeats``.

    Inputs are flattened. Param paths: ``input_linear/kernel``, ``middle_linear/kernel``,
    ``output_linear/kernel`` and their biases.
    """

    hidden: int = 100
    out: int = 10
    max_repeats: int = 3

    def setup(self):
        if self.max_repeats < 0:
            raise ValueError(f"max_repeats must be >= 0, got {self.max_repeats}")
        self.input_linear = nn.Dense(self.hidden)
        self.middle_linear = nn.Dense(self.hidden)
        self.output_linear = nn.Dense(self.out)

    def __call__(self, x, repeats=None):
        """Logits; ``repeats`` (int or int scalar array) fixes the depth, else it is drawn."""
        h = nn.relu(self.input_linear(x.reshape((x.shape[0], -1))))
        if self.is_initializing():
            self.middle_linear(h)  # create the tied layer's params whatever the depth
        if repeats is None:
            repeats = jax.random.randint(self.make_rng("depth"), (), 0, self.max_repeats + 1)
        repeats = jnp.clip(jnp.asarray(repeats, jnp.int32), 0, self.max_repeats)

        def branch(times):
            def run(mdl, h):
                for _ in range(times):
                    h = nn.relu(mdl.middle_linear(h))
                return h

            return run

        branches = [branch(t) for t in range(self.max_repeats + 1)]
        h = nn.switch(repeats, branches, self, h)
        return self.output_linear(h)
