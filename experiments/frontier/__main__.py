"""``python -m experiments.frontier [--quick]``: the compression frontier (see ``config``)."""
from experiments.frontier.run import main

main()
