"""``python -m experiments.distillation [--quick]``: the distillation study (see ``config``)."""
from experiments.distillation.run import main

main()
