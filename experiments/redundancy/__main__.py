"""``python -m experiments.redundancy [--quick]``: the redundancy study (see ``config``)."""
from experiments.redundancy.run import main

main()
