"""The command line every study takes, and where its results go.

``--quick`` (a smoke version, under a minute on 2 CPU cores), ``--dataset``, ``--seed`` and
``--out``. Full runs write to ``experiments/results/<name>/`` of the checkout (committed);
quick runs to ``runs/<name>-quick/``. ``WSJAX_STUDY_DIR`` moves both under one folder
(``$WSJAX_STUDY_DIR/<name>[-quick]``; the test suite uses it so it never writes into the
checkout).
"""

from __future__ import annotations

import argparse
import os

from wsjax import data

#: The checkout holding ``wsjax/`` (and, in a clone, ``experiments/``).
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_out(name: str, quick: bool) -> str:
    """The folder a study named ``name`` writes to when no ``--out`` is given."""
    base = os.environ.get("WSJAX_STUDY_DIR")
    if base:
        return os.path.join(base, f"{name}-quick" if quick else name)
    if quick:
        return os.path.join(ROOT, "runs", f"{name}-quick")
    if os.path.isdir(os.path.join(ROOT, "experiments")):
        return os.path.join(ROOT, "experiments", "results", name)
    return os.path.join(os.getcwd(), "wsjax-results", name)


def study_folder(name: str, quick: bool) -> str:
    """Another study's results folder (its default ``--out``): where a study finds the
    rows it builds on, e.g. the dense nets of ``baseline``."""
    return default_out(name, quick)


def parse_args(name: str, description: str, argv=None, models=(), default_dataset: str = "fashion_mnist",
               add_arguments=None, datasets=None) -> argparse.Namespace:
    """The standard flags; ``--out`` defaults to :func:`default_out`, created.

    A user mistake ends in one line (argparse's usage and ``error:`` line, exit status 2):
    a negative ``--seed``; an empty ``--out`` (it would silently mean the committed folder)
    or one naming a file; a ``--dataset`` whose images are too small for one of ``models``
    (names of :func:`wsjax.study.model_by_name`, or a function of the parsed args returning
    them); a ``--dataset`` outside ``datasets`` (a study's own data sets; default: all of
    :data:`wsjax.data.NAMES`), before any folder is made. ``add_arguments(parser)`` adds a
    study's own flags.
    """
    from wsjax.study.nets import check_input

    p = argparse.ArgumentParser(prog=f"wsjax run {name}", description=description)
    p.add_argument("--quick", action="store_true", help="a < 1 minute smoke version")
    p.add_argument("--dataset", default=default_dataset, choices=tuple(datasets or data.NAMES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output folder (default: %s)" % default_out(name, False))
    if add_arguments is not None:
        add_arguments(p)
    args = p.parse_args(argv)
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    if args.out is not None and not args.out.strip():
        p.error(f"--out must name a folder, got {args.out!r} (leave it out for the default)")
    if args.out is not None and os.path.exists(args.out) and not os.path.isdir(args.out):
        p.error(f"--out {args.out!r} is a file, not a folder")
    for model_name in models(args) if callable(models) else models:
        try:
            check_input(model_name, args.dataset)
        except ValueError as e:
            p.error(str(e))
    args.out = args.out or default_out(name, args.quick)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        p.error(f"--out {args.out!r}: cannot create the folder ({e.strerror or e})")
    return args


def parse_args_with_models(name: str, description: str, full, quick, models, argv=None, **kwargs):
    """:func:`parse_args` plus ``--models M [M ...]`` (names from ``models``), which restricts
    the chosen config (``quick()`` with ``--quick``, else ``full()``) with its ``only``
    method; an unknown combination ends in one ``error:`` line. Returns ``(args, config)``."""
    parsers = []

    def add(p):
        parsers.append(p)
        p.add_argument("--models", nargs="+", choices=tuple(models), default=None,
                       help="run only these models (default: all of the config's)")
        if kwargs.get("add_arguments") is not None:
            kwargs["add_arguments"](p)

    def chosen(a):
        cfg = quick() if a.quick else full()
        try:
            return cfg.only(a.models) if a.models else cfg
        except ValueError as e:
            parsers[0].error(str(e))

    rest = {k: v for k, v in kwargs.items() if k != "add_arguments"}
    args = parse_args(name, description, argv=argv, models=lambda a: chosen(a).models, add_arguments=add, **rest)
    return args, chosen(args)
