"""The sharing-level study's config checks: a bad config fails at construction, in one line."""

from __future__ import annotations

from experiments.sharing_levels.arm_names import BUDGETED, MODELS, OWN_SIZE, TYING

def check(cfg) -> None:
    """Raise ValueError unless ``cfg`` (a :class:`~experiments.sharing_levels.config.Config`) is runnable."""
    if cfg.model not in MODELS:
        raise ValueError(f"the sharing-level study runs one of {MODELS}, got model {cfg.model!r}")
    if cfg.model == "lenet5" and cfg.tying:
        raise ValueError("LeNet-5 has no same-shape layers to tie")
    if cfg.model != "deep_mlp" and ("dynamic" in cfg.own_size or cfg.lottery_rounds):
        raise ValueError("DynamicNet and the lottery chain are built for the deep MLP only")
    if any(not 0 < b < 1 for b in cfg.budgets) or not cfg.budgets:
        raise ValueError(f"budgets are fractions of the dense net in (0, 1), got {cfg.budgets!r}")
    unknown = ([a for a in cfg.arms if a not in BUDGETED] + [a for a in cfg.tying if a not in TYING]
               + [a for a in cfg.own_size if a not in OWN_SIZE])
    if unknown:
        raise ValueError(f"unknown arms {unknown}; budgeted: {BUDGETED}, tying: {tuple(TYING)}, "
                         f"own size: {OWN_SIZE}")
    if cfg.tune_budget not in cfg.budgets:
        raise ValueError(f"the tuning budget {cfg.tune_budget} must be one of the budgets")
    if any(TYING[a][0] >= len(cfg.tied_layers()) for a in cfg.tying):
        raise ValueError("the tying arms need more same-shape hidden layers than unique copies")
    if min(cfg.seeds, cfg.extra_seeds, cfg.epochs, cfg.tune_epochs) < 1 or not cfg.lrs or not cfg.init_scales:
        raise ValueError("seeds, epochs and the tuning grids must be non-empty and positive")
    if cfg.lottery_rounds < 0 or not (0 < cfg.lottery_rate < 1 and 0 < cfg.lottery_output_rate < 1):
        raise ValueError("lottery_rounds must be >= 0 and the lottery rates in (0, 1)")
    if not 1 <= cfg.prune_rounds <= min(cfg.epochs, cfg.tune_epochs) or cfg.max_repeats < 1:
        raise ValueError("prune_rounds must be in 1..epochs (each round retrains at least one epoch) "
                         "and max_repeats >= 1")
