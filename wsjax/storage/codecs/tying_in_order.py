"""The 'tying_in_order' transform's storage: one 'tying' group per copy that two or more
layers use, and the layers used once as plain weights (:func:`wsjax.sharing.tying.tied_in_order`).

No group of a file carries this name: the file holds ordinary 'tying' and 'weights' groups,
which decode to the params bit for bit (the copies' assignment is implied by them).
"""

from __future__ import annotations

from wsjax.sharing.core import SharedParams
from wsjax.storage.codecs import tying, weights
from wsjax.storage.codecs.base import Group, fail

name = "tying_in_order"


def encode(state: SharedParams, options) -> list[Group]:
    out = []
    for theta, frozen in zip(state.theta, state.frozen):
        if frozen.value is None:  # a layer used once: its own weights
            out.append(weights.encode(theta, options))
        else:
            out.append(tying.encode(SharedParams(theta, frozen), options))
    return out


def decode(group: Group):
    fail("tying_in_order group", "files store tied-in-order layers as 'tying' and 'weights' groups")
