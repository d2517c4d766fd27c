"""The sharing-level study (issue 20): does cross-layer hard sharing work as well as
within-layer sharing at the same stored bytes?

The rules were fixed before any run in ``preregistration.md`` (committed on its own); the
report puts that text at the top of ``results.md`` and the measurements under it. This first
version runs the deep balanced MLP with the hashing and tying arms; pruning, lottery tickets,
soft sharing, DynamicNet, LeNet-5 and the ViT follow (the pre-registration's grid).

References: Chen et al. 2015 (HashedNets); Desai et al. 2023 (ROAST); Lan et al. 2020
(ALBERT); Takase & Kiyono 2021; Zhang et al. 2022 (MiniViT); Bae et al. 2024 (Relaxed
Recursive Transformers).
"""
