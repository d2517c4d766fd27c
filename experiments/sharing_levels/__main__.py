"""``python -m experiments.sharing_levels [--quick]``: the sharing-level study (see ``config``)."""
from experiments.sharing_levels.run import main

main()
