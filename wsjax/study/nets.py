"""The reference models by name, their data splits, and the dense nets every study starts from.

The dense reference nets are results of the ``baseline`` study like any other: a row of its
store keyed by the full training config (:func:`dense_config`: model, data set, seed,
epochs, optimizer, schedule, batch size, training examples), with the params as the row's
``.msgpack`` artifact. :func:`pretrained` returns that net, training it first (and adding
the row) when the store has none for exactly that config.
"""

from __future__ import annotations

import json
import time

from wsjax import data as data_
from wsjax.results import Store

#: The dense reference recipe (Adam, cosine decay from 1e-3 to 1e-5, batch 100) per model.
DENSE_EPOCHS = {"lenet300100": 30, "lenet5": 12, "mlp2x1200": 30, "deep_mlp": 30, "vit": 10}
#: The epoch loop per model on XLA:CPU, as measured by benchmarks/epoch_loop.py (with
#: wsjax.nn's convolutions a scanned LeNet-5 epoch is faster than the Python loop too);
#: other backends choose by measuring ('auto').
LOOP = {"lenet300100": "scan", "lenet5": "scan", "deep_mlp": "scan"}
QUICK_EPOCHS = {"lenet300100": 2, "lenet5": 1, "mlp2x1200": 2, "deep_mlp": 2, "vit": 1}
QUICK_TRAIN_EXAMPLES = 10_000


def model_by_name(name: str):
    """A reference model (``lenet300100``, ``lenet5``, ``mlp2x1200``: Hinton et al.'s 2015
    784-1200-1200-10 MNIST net; ``deep_mlp``: 784-256x8-10; ``vit``: the small ViT of
    :mod:`wsjax.models.vit`) as a Flax linen module."""
    from wsjax.models import MLP, LeNet5, LeNet300100, ViT, deep_mlp

    table = {"lenet300100": LeNet300100, "lenet5": LeNet5, "mlp2x1200": lambda: MLP((1200, 1200, 10)),
             "deep_mlp": deep_mlp, "vit": ViT}
    if name not in table:
        raise ValueError(f"unknown model {name!r}; known: {sorted(table)}")
    return table[name]()


def loop_for(model_name: str) -> str:
    """The epoch loop ``fit`` should use for ``model_name`` on this backend."""
    import jax

    return LOOP.get(model_name, "auto") if jax.default_backend() == "cpu" else "auto"


def check_input(model_name: str, dataset: str) -> None:
    """Raise ValueError (one line) unless ``model_name`` runs on ``dataset``'s images.

    Traces the model's ``init`` on one image of the dataset's shape (:data:`wsjax.data.SHAPES`)
    with ``jax.eval_shape``: nothing is computed and the data set is not loaded.
    """
    import jax
    import jax.numpy as jnp

    model = model_by_name(model_name)
    if dataset not in data_.SHAPES:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(data_.NAMES)}")
    shape = data_.SHAPES[dataset]
    x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    try:
        jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
    except (ValueError, TypeError, ZeroDivisionError) as e:
        size = "x".join(map(str, shape))
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"--dataset {dataset} ({size} images) is too small for {model_name}: {reason}") from None


def splits(dataset: str, quick: bool, seed: int = 0, train_examples: int | None = None,
           test_examples: int | None = None):
    """``(train, test)`` pairs of NumPy arrays; quick runs train on the first 10k examples
    (``train_examples`` and ``test_examples``, when given, take the first that many)."""
    train = data_.load(dataset, "train", seed=seed)
    test = data_.load(dataset, "test", seed=seed)
    n = train_examples if train_examples is not None else (QUICK_TRAIN_EXAMPLES if quick else None)
    if n is not None:
        train = (train[0][:n], train[1][:n])
    if test_examples is not None:
        test = (test[0][:test_examples], test[1][:test_examples])
    return train, test


def train_val(train, validation: int):
    """``train`` split into (the rest, its last ``validation`` examples): settings are chosen
    on the held-out part, never on test data."""
    if not 0 < validation < len(train[0]):
        raise ValueError(f"validation must be between 0 and {len(train[0])} examples, got {validation}")
    return (train[0][:-validation], train[1][:-validation]), (train[0][-validation:], train[1][-validation:])


def train_val_test(dataset: str, seed: int, train_examples: int, validation: int, test_examples: int | None = None):
    """``(train, val, test)``: the first ``train_examples`` training images, the next
    ``validation`` (where every setting is chosen), and the first ``test_examples`` test
    images (all: ``None``)."""
    train, test = splits(dataset, False, seed, train_examples + validation, test_examples)
    return (*train_val(train, validation), test)


def dense_config(model_name: str, dataset: str = "fashion_mnist", seed: int = 0, quick: bool = False,
                 epochs: int | None = None, train_examples: int | None = None) -> dict:
    """The full config of a dense reference net: the key of its row in the baseline store.

    The recipe's epochs and training examples (all of them: ``None``) follow ``quick``
    unless given (a smoke test's net: a few hundred examples, one epoch).
    """
    if epochs is None:
        epochs = (QUICK_EPOCHS if quick else DENSE_EPOCHS)[model_name]
    if train_examples is None and quick:
        train_examples = QUICK_TRAIN_EXAMPLES
    return {"kind": "dense", "model": model_name, "dataset": dataset, "seed": seed, "epochs": epochs,
            "train_examples": train_examples, "optimizer": "adam",
            "lr": 1e-3, "schedule": "cosine", "final_lr_fraction": 0.01, "batch_size": 100}


def _train_dense(config: dict, progress: bool):
    import jax
    import optax

    from wsjax.train import classifier, evaluate, fit

    model = model_by_name(config["model"])
    train, test = splits(config["dataset"], False, config["seed"], train_examples=config["train_examples"])
    params = model.init(jax.random.key(config["seed"]), train[0][:1])["params"]
    steps = config["epochs"] * (len(train[0]) // config["batch_size"])
    opt = optax.adam(optax.cosine_decay_schedule(config["lr"], steps, alpha=config["final_lr_fraction"]))
    loss_fn, eval_fn = classifier(lambda th, x: model.apply({"params": th}, x))
    t0 = time.perf_counter()
    result = fit(loss_fn, params, opt, train, eval=test, eval_fn=eval_fn, epochs=config["epochs"],
                 batch_size=config["batch_size"], seed=config["seed"], progress=progress,
                 desc=f"dense {config['model']}", loop=loop_for(config["model"]))
    seconds = time.perf_counter() - t0
    params = jax.device_get(result.theta)
    from wsjax.sharing import count_params

    return params, {"test_accuracy": evaluate(eval_fn, params, *test)["accuracy"], "seconds": seconds,
                    "free_params": count_params(params), "history": result.history}


def baseline_store(quick: bool) -> Store:
    """The ``baseline`` study's store (its default folder, or ``$WSJAX_STUDY_DIR/baseline``)."""
    from wsjax.study.args import study_folder

    return Store(study_folder("baseline", quick))


def pretrained(model_name: str, dataset: str = "fashion_mnist", seed: int = 0, quick: bool = False,
               store: Store | None = None, train_if_missing: bool = True, progress: bool = True,
               epochs: int | None = None, train_examples: int | None = None):
    """``(model, params, row)`` of the dense reference net of :func:`dense_config` (``epochs``
    and ``train_examples`` as there).

    Read from ``store`` (default: :func:`baseline_store`); when it has no row for exactly
    that config the net is trained and added (or, with ``train_if_missing=False``, a
    FileNotFoundError says which config is missing).
    """
    import jax
    from flax import serialization

    check_input(model_name, dataset)
    store = store if store is not None else baseline_store(quick)
    config = dense_config(model_name, dataset, seed, quick, epochs, train_examples)
    model = model_by_name(model_name)
    template = model.init(jax.random.key(0), jax.numpy.zeros((1, *data_.SHAPES[dataset])))["params"]
    row = store.get(config)
    path = store.artifact(config, ".msgpack")
    if row is not None:
        with open(path, "rb") as f:
            return model, serialization.from_bytes(template, f.read()), row
    if not train_if_missing:
        raise FileNotFoundError(f"no dense {model_name} for {json.dumps(config)} in {store.folder} "
                                "(run `wsjax run baseline` first)")
    params, metrics = _train_dense(config, progress)
    store.write_artifact(config, ".msgpack", serialization.to_bytes(params))
    row = store.put(config, metrics)
    return model, params, row


def trained_net(config: dict, quick: bool, progress: bool = False):
    """``(model, params)`` (params on the host) of the dense reference net whose full config
    (:func:`dense_config`) is ``config``, from the baseline store (trained there if missing).
    ValueError when ``config`` is not such a config."""
    import jax

    if not isinstance(config, dict) or set(config) != set(dense_config("lenet300100")) or config["kind"] != "dense":
        raise ValueError(f"not the config of a dense reference net (see dense_config): {config!r}")
    model, params, row = pretrained(config["model"], config["dataset"], config["seed"], quick, progress=progress,
                                    epochs=config["epochs"], train_examples=config["train_examples"])
    if row["config"] != config:
        raise ValueError(f"the baseline store has {row['config']}, not {config}")
    return model, jax.device_get(params)
