"""``python -m experiments.separable [--quick]``: the depthwise separable study (see ``config``)."""
from experiments.separable.run import main

main()
