"""What every study in ``experiments/`` shares: its command line, its data, its dense
reference nets, its results store and its report.

A study is a package ``experiments/<name>/`` with

* ``config.py``: a frozen dataclass ``Config`` with ``full()``, ``quick()`` (under a minute,
  for people) and ``smoke()`` (seconds, for the test suite) variants; its docstring gives the
  run command and the expected result;
* ``run.py``: ``run(cfg, dataset, seed, out) -> rows``, a thin loop over the config's units
  of work, each one a config mapping looked up in (or added to) the study's
  :class:`wsjax.results.Store` (:func:`run_units`), and ``main(argv=None)``, which parses
  the standard command line (:func:`parse_args`) and calls ``run``;
* ``report.py``: tables, verdicts, the paper's numbers beside ours and plots, computed from
  the store's rows (no measured number is typed into text).

Run one with ``wsjax run <name> [--quick] [--seed N] [--out DIR]`` or
``python -m experiments.<name>`` from a checkout.
"""

from wsjax.study.args import ROOT, default_out, parse_args, parse_args_with_models, study_folder
from wsjax.study.files import store_and_reload, stored_row
from wsjax.study.nets import (
    DENSE_EPOCHS, LOOP, QUICK_EPOCHS, QUICK_TRAIN_EXAMPLES, check_input, dense_config, loop_for, model_by_name,
    baseline_store, pretrained, splits, train_val, train_val_test, trained_net,
)
from wsjax.study.report import (beats, errorbars, finish_axes, fmt, interval_text, markdown_table, matches, mean_std,
                                paired, pyplot, save_figure, separation, t_interval, verdict, write_results,
                                write_section)
from wsjax.study.units import run_units, stored_or_rebuilt
