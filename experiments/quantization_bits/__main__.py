"""``python -m experiments.quantization_bits [--quick]``: the quantization_bits study (see ``config``)."""
from experiments.quantization_bits.run import main

main()
