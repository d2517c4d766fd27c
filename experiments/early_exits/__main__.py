"""``python -m experiments.early_exits [--quick]``: the early-exit study (see ``config``)."""
from experiments.early_exits.run import main

main()
