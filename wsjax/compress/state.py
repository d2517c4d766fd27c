"""Where a compression pipeline stands between two stages.

``W = transform.apply(state)`` are the weights the model sees. ``masks`` are the pruning
masks in the params' structure (``None`` before any pruning); every later stage keeps them:
a codebook clusters only the survivors, soft sharing holds the pruned weights at zero.
``history`` holds one dict per stage run so far (name, seconds, epochs, val accuracy).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from wsjax.sharing.core import SharedParams, Transform, identity


class Compressed(NamedTuple):
    transform: Transform
    state: SharedParams
    masks: Any = None
    history: tuple = ()

    @property
    def params(self):
        """The weights the model sees, ``transform.apply(state)``."""
        return self.transform.apply(self.state)

    @property
    def stored(self):
        """What :func:`wsjax.storage.save` takes to store this net with its codecs."""
        return (self.transform, self.state)


def start(params) -> Compressed:
    """The uncompressed starting point: ``W = theta``."""
    t = identity()
    return Compressed(t, t.init(None, params))
