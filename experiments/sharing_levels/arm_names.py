"""The sharing-level study's arms by name: which are within-layer and which cross-layer
hashing, which derive from a trained dense point, the tying variants and the controls."""

from __future__ import annotations

#: the study's models, in run order
MODELS = ("deep_mlp", "lenet5", "vit")
WITHIN = ("hashed_layer", "hashed_uniform")
CROSS = ("hashed_pool", "hashed_pool_scaled", "roast")
HASHING = WITHIN + CROSS
#: arms that start from the trained dense net of their seed (the dense point, loaded from its file)
DERIVED = ("pruned",)
#: Ullrich et al.'s soft weight sharing from the dense point, snapped and stored: one mixture prior
#: for all layers (cross-layer) against one per layer; at the sizes their training gives
SOFT = {"soft_shared": "global", "soft_per_layer": "layer"}
BUDGETED = ("narrow",) + HASHING + DERIVED
#: Frankle & Carbin's iterative magnitude pruning with rewinding to the initialisation: one chain
#: of rounds per seed from the dense point; each budget takes the round whose file is nearest it
LOTTERY = "lottery"
#: arms at the size their architecture gives (like the tying arms): seed 002's DynamicNet
OWN_SIZE = ("dynamic",) + tuple(SOFT)
#: tying arms: (unique copies of the hidden layer, order, multiplex, rank)
TYING = {"tied_all": (1, "sequence", None, 0), "tied_sequence_2": (2, "sequence", None, 0),
         "tied_cycle_2": (2, "cycle", None, 0), "tied_sequence_3": (3, "sequence", None, 0),
         "tied_cycle_3": (3, "cycle", None, 0), "tied_scale_shift": (1, "sequence", "scale_shift", 0),
         "tied_lora_8": (1, "sequence", "lowrank", 8)}
CONTROLS = ("hashed_layer", "hashed_pool")
DENSE = "dense"


def tied_layers(model: str, hidden_layers: int = 0, depth: int = 0) -> list[str]:
    """The same-shape layers a tying arm ties, in position order: the MLP's hidden layers
    ``Dense_1 .. Dense_{hidden_layers - 1}``, the ViT's blocks ``Block_0 .. Block_{depth - 1}``
    (every leaf of a block: attention, MLP and LayerNorms); none in LeNet-5."""
    if model == "vit":
        return [f"Block_{i}" for i in range(depth)]
    return [f"Dense_{i}" for i in range(1, hidden_layers)] if model == "deep_mlp" else []
