"""The studies: one package per study (``config.py``, ``run.py``, ``report.py``).

Run one with ``wsjax run <name> [--quick] [--seed N] [--out DIR]`` or, from the checkout,
``python -m experiments.<name>``; ``wsjax list`` names them. What they share (command line,
data, dense nets, results store, tables and plots) is in :mod:`wsjax.study`.
"""
