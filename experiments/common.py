"""The experiment contract shared by every script in ``experiments/``.

``python experiments/<name>.py [--quick] [--dataset NAME] [--seed N] [--out DIR]`` writes

* ``DIR/results.json``: ``{"experiment", "dataset", "quick", "rows": [...]}``; each row names
  its ``model`` and ``method`` and carries the metrics that apply, named ``test_accuracy``,
  ``free_params``, ``virtual_params``, ``stored_bytes``, ``dense_bytes``, ``compression``,
  ``seconds``;
* ``DIR/results.md``: the same table, readable, plus any extra sections;
* at least one PNG plot.

Full runs go to ``experiments/results/<name>/`` (committed); ``--quick`` runs to
``runs/<name>-quick/`` and finish in under a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Iterable, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # let `python experiments/x.py` import wsjax from a checkout
    sys.path.insert(0, ROOT)

from wsjax import data as _data  # noqa: E402

STANDARD_COLUMNS = (
    "model",
    "method",
    "test_accuracy",
    "free_params",
    "virtual_params",
    "stored_bytes",
    "dense_bytes",
    "compression",
    "seconds",
)


def default_out(name: str, quick: bool) -> str:
    if quick:
        return os.path.join(ROOT, "runs", f"{name}-quick")
    return os.path.join(ROOT, "experiments", "results", name)


def parse_args(name: str, description: str, default_dataset: str = "fashion_mnist", argv=None,
               models=()):
    """The standard flags; ``--out`` defaults to :func:`default_out`.

    A user mistake ends in one line (argparse's usage and ``error:`` line, exit status 2):
    a negative ``--seed``; an empty ``--out`` (it would silently mean the committed
    ``experiments/results/<name>/``) or one naming a file; a ``--dataset`` whose images are
    too small for one of ``models`` (names of :func:`model_by_name`, or a function of the
    parsed args returning them).
    """
    p = argparse.ArgumentParser(prog=f"experiments/{name}.py", description=description)
    p.add_argument("--quick", action="store_true", help="a < 1 minute smoke version")
    p.add_argument("--dataset", default=default_dataset, choices=_data.NAMES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output folder")
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


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"
    return str(v)


def markdown_table(rows: Sequence[dict], columns: Iterable[str] | None = None) -> str:
    """A GitHub markdown table; standard columns first, then the others in first-seen order."""
    if not rows:
        return "(no rows)\n"
    if columns is None:
        seen = []
        for r in rows:
            for k in r:
                if k not in seen:
                    seen.append(k)
        columns = [c for c in STANDARD_COLUMNS if c in seen] + [
            c for c in seen if c not in STANDARD_COLUMNS
        ]
    columns = list(columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_results(
    out_dir: str,
    experiment: str,
    dataset: str,
    quick: bool,
    rows: list[dict],
    extra_md: str = "",
    columns: Iterable[str] | None = None,
) -> str:
    """Write results.json and results.md; return the markdown table (also printed by callers)."""
    for r in rows:
        if "model" not in r or "method" not in r:
            raise ValueError(f"every row needs 'model' and 'method': {r}")
    os.makedirs(out_dir, exist_ok=True)
    payload = {"experiment": experiment, "dataset": dataset, "quick": bool(quick), "rows": rows}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(payload, f, indent=1)
    table = markdown_table(rows, columns)
    title = f"# {experiment} on {dataset}{' (quick)' if quick else ''}\n\n"
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(title + table + ("\n" + extra_md if extra_md else ""))
    return table


def load_partial(out_dir: str, name: str = "partial.jsonl") -> list[dict]:
    """Rows a previous (interrupted) run already finished, for resumable experiments."""
    path = os.path.join(out_dir, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def append_partial(out_dir: str, row: dict, name: str = "partial.jsonl") -> None:
    with open(os.path.join(out_dir, name), "a") as f:
        f.write(json.dumps(row) + "\n")


def plt():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


# ----------------------------------------------------------------------------- pretrained nets

#: The dense reference recipe (Adam, cosine decay from 1e-3, batch 100) per model.
DENSE_EPOCHS = {"lenet300100": 30, "lenet5": 12}
#: The epoch loop per model, as measured by benchmarks/epoch_loop.py on XLA:CPU (a scan over
#: conv steps is several times slower there); 'auto' re-measures, which is noisy on a busy host.
LOOP = {"lenet300100": "scan", "lenet5": "python"}
QUICK_EPOCHS = {"lenet300100": 2, "lenet5": 1}
QUICK_TRAIN_EXAMPLES = 10_000


def model_by_name(name: str):
    from wsjax.models import LeNet5, LeNet300100

    table = {"lenet300100": LeNet300100, "lenet5": LeNet5}
    if name not in table:
        raise ValueError(f"unknown model {name!r}; known: {sorted(table)}")
    return table[name]()


def check_input(model_name: str, dataset: str) -> None:
    """Raise ValueError (one line) unless ``model_name`` runs on ``dataset``'s images.

    Traces the model's ``init`` on one image of the dataset's shape (:data:`wsjax.data.SHAPES`)
    with ``jax.eval_shape``: nothing is computed and the data set is not loaded.
    """
    import jax
    import jax.numpy as jnp

    model = model_by_name(model_name)
    if dataset not in _data.SHAPES:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(_data.NAMES)}")
    shape = _data.SHAPES[dataset]
    x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    try:
        jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
    except (ValueError, TypeError, ZeroDivisionError) as e:
        size = "x".join(map(str, shape))
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"--dataset {dataset} ({size} images) is too small for {model_name}: {reason}") from None


def dataset_splits(dataset: str, quick: bool, seed: int = 0):
    """``(train, test)`` pairs; quick runs train on the first 10k examples."""
    train = _data.load(dataset, "train", seed=seed)
    test = _data.load(dataset, "test", seed=seed)
    if quick:
        train = (train[0][:QUICK_TRAIN_EXAMPLES], train[1][:QUICK_TRAIN_EXAMPLES])
    return train, test


def pretrained_path(model_name: str, dataset: str, seed: int, quick: bool) -> str:
    folder = (
        os.path.join(ROOT, "runs", "pretrained")
        if quick
        else os.path.join(ROOT, "experiments", "results", "baseline", "pretrained")
    )
    return os.path.join(folder, f"{dataset}-{model_name}-seed{seed}.msgpack")


def train_dense(model_name: str, dataset: str, seed: int, quick: bool, progress: bool = True):
    """Train the dense reference net with the standard recipe; returns (params, history)."""
    import jax
    import optax

    from wsjax.train import classifier, fit

    check_input(model_name, dataset)
    model = model_by_name(model_name)
    train, test = dataset_splits(dataset, quick, seed)
    params = model.init(jax.random.key(seed), train[0][:1])["params"]
    epochs = (QUICK_EPOCHS if quick else DENSE_EPOCHS)[model_name]
    steps = epochs * (len(train[0]) // 100)
    opt = optax.adam(optax.cosine_decay_schedule(1e-3, steps, alpha=0.01))
    loss_fn, eval_fn = classifier(lambda th, x: model.apply({"params": th}, x))
    result = fit(
        loss_fn, params, opt, train, eval=test, eval_fn=eval_fn, epochs=epochs,
        batch_size=100, seed=seed, progress=progress, desc=f"dense {model_name}",
        loop=LOOP[model_name] if jax.default_backend() == "cpu" else "auto",
    )
    return result.theta, result.history


def pretrained(model_name: str, dataset: str = "fashion_mnist", seed: int = 0, quick: bool = False):
    """``(model, params)`` of the dense reference net, trained once and cached on disk.

    Full-run nets live in ``experiments/results/baseline/pretrained/`` (written by
    ``experiments/baseline.py``) so every compression experiment starts from the same net.
    """
    from flax import serialization

    check_input(model_name, dataset)
    model = model_by_name(model_name)
    path = pretrained_path(model_name, dataset, seed, quick)
    if os.path.exists(path):
        import jax

        template = model.init(jax.random.key(0), _data.load(dataset, "test")[0][:1])["params"]
        with open(path, "rb") as f:
            params = serialization.from_bytes(template, f.read())
        return model, params
    params, history = train_dense(model_name, dataset, seed, quick)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(serialization.to_bytes(params))
    os.replace(path + ".tmp", path)
    with open(path.replace(".msgpack", ".history.json"), "w") as f:
        json.dump(history, f)
    return model, params


def retrain_through(model, transform, state, train, val, epochs, lr, seed, loop, desc, batch_size=100):
    """Train ``state.theta`` of a sharing ``transform`` of ``model``'s params with cosine-decayed Adam.

    Returns ``(params W = transform.apply(theta), history, seconds)``; used for the retraining
    stages of the compression experiments (masked pruning, centroid fine-tuning).
    """
    import time

    import jax
    import optax

    from wsjax.sharing import bind
    from wsjax.train import classifier, fit

    to_params = bind(transform, state)
    loss_fn, eval_fn = classifier(lambda th, x: model.apply({"params": to_params(th)}, x))
    steps = max(1, epochs * (len(train[0]) // batch_size))
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.05))
    t0 = time.perf_counter()
    result = fit(loss_fn, state.theta, opt, train, eval=val, eval_fn=eval_fn, epochs=epochs,
                 batch_size=batch_size, seed=seed, loop=loop, progress=False, desc=desc)
    params = jax.device_get(to_params(result.theta))
    return params, result.history, time.perf_counter() - t0


def store_and_reload(params, path, score):
    """Write ``params`` with ``wsjax.storage.save``, read them back and score both copies.

    Raises if the loaded params differ from ``params`` in any bit, score differently, or the
    file's size differs from the size report. ``score(params) -> accuracy``.
    Returns ``(report, loaded, in_memory_accuracy, file_accuracy, file_bytes)``.
    """
    import jax
    import numpy as np

    from wsjax import storage

    report = storage.save(path, params)
    loaded = storage.load(path)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(params)):
        if not np.array_equal(np.asarray(a), np.asarray(b)):
            raise RuntimeError(f"{path}: the loaded model differs from the in-memory one")
    in_memory, from_file = score(params), score(loaded)
    if in_memory != from_file:
        raise RuntimeError(f"{path}: loaded accuracy {from_file} != in-memory {in_memory}")
    stored = os.path.getsize(path)
    if stored != report.file_bytes:
        raise RuntimeError(f"{path}: the size report counts {report.file_bytes} bytes, the file has {stored}")
    return report, loaded, in_memory, from_file, stored
