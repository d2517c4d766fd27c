"""Bad inputs at every public boundary: one table, each row a clear error naming the value.

Every row is ``(id, call, expected type, fragment)``: ``call()`` must raise ``expected``
(or, for a warning class, warn with it) with a message containing ``fragment`` verbatim,
normally the offending value itself. The command-line rows run an experiment's
``parse_args``; their message is argparse's one ``error:`` line.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wsjax import checks, compress, data, penalties, pruning, sharing, storage, study
from wsjax.storage import StorageError
from wsjax.models import MLP, LeNet5, lecun89_net
from wsjax.sharing.kmeans import kmeans_1d
from wsjax.train import NonFiniteLossError, classifier, fit

NAN, INF = float("nan"), float("inf")
KEY = jax.random.key(0)
PARAMS = {
    "Dense_0": {"kernel": np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3), "bias": np.zeros(3, np.float32)},
    "Dense_1": {"kernel": np.linspace(-2, 2, 6, dtype=np.float32).reshape(3, 2), "bias": np.zeros(2, np.float32)},
}
TMP = {}  # the current test's tmp_path (set by the autouse fixture)


@pytest.fixture(autouse=True)
def _tmp(tmp_path):
    TMP["path"] = tmp_path
    yield
    TMP.clear()


# ----------------------------------------------------------------------------- helpers


def _mixture(**fields):
    m = {"means": [0.0, 0.5], "log_vars": [-2.0, -2.0], "logits": [0.0, 0.0]}
    m.update(fields)
    return penalties.Mixture(*(jnp.asarray(v, jnp.float32) for v in m.values()))


def _init(transform, params=PARAMS):
    return transform.init(KEY, params)


# A tiny classifier: MLP (8, 3) on 4x4x1 images, 3 classes.
_NET = MLP((8, 3))
_X = np.random.default_rng(0).random((40, 4, 4, 1)).astype(np.float32)
_Y = (np.arange(40) % 3).astype(np.int32)
_THETA = _NET.init(KEY, _X[:1])["params"]
_LOSS, _ = classifier(lambda th, x: _NET.apply({"params": th}, x))


def _fit(x=_X, y=_Y, loss=_LOSS, theta=_THETA, **kw):
    kw = {"epochs": 1, "batch_size": 10, "progress": False, **kw}
    return fit(loss, theta, optax.sgd(0.1), (x, y), **kw)


def _with(a, index, value):
    a = np.array(a)
    a[index] = value
    return a


def _blowup_loss(w, x, y):
    """Squared error that overflows to inf on the one batch holding the huge target."""
    return jnp.mean((x @ w - y) ** 2)


_RX = np.random.default_rng(1).normal(size=(40, 3)).astype(np.float32)
_RY = _with(_RX @ np.array([1.0, 2.0, 3.0], np.float32), 17, 1e30)


def _fit_blowup(on_nonfinite, loop="scan"):
    return fit(_blowup_loss, jnp.zeros(3), optax.sgd(0.01), (_RX, _RY), epochs=2, batch_size=10,
               progress=False, loop=loop, on_nonfinite=on_nonfinite)


def _cli(*argv, models=()):
    """Run an experiment's parse_args; a rejected command line raises SystemExit(its error line)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            study.parse_args("bad_inputs", "test", argv=list(argv), models=models)
    except SystemExit as e:
        assert e.code == 2, err.getvalue()
        lines = err.getvalue().strip().splitlines()
        assert lines and "error:" in lines[-1], err.getvalue()
        raise SystemExit(lines[-1]) from None


def _a_file():
    path = TMP["path"] / "results.json"
    path.write_text("{}")
    return str(path)


# ----------------------------------------------------------------------------- the table

ROWS = [
    # data
    ("data: unknown name", lambda: data.load("imagenet", "train"), ValueError, "'imagenet'"),
    ("data: unknown split", lambda: data.load("digits", "validation"), ValueError, "'validation'"),
    ("data: negative seed", lambda: data.load("digits", "train", seed=-1), ValueError, "-1"),
    ("data: bool seed", lambda: data.load("digits", "train", seed=True), TypeError, "True"),
    ("data: float seed", lambda: data.load("digits", "train", seed=1.5), TypeError, "1.5"),
    ("data: string seed", lambda: data.load("digits", "train", seed="0"), TypeError, "'0'"),
    # sharing
    ("hashed: bool compression", lambda: sharing.hashed(True), TypeError, "True"),
    ("hashed: NaN compression", lambda: sharing.hashed(NAN), ValueError, "nan"),
    ("hashed: inf compression", lambda: sharing.hashed(INF), ValueError, "inf"),
    ("hashed: compression 0", lambda: sharing.hashed(0), ValueError, "got 0"),
    ("hashed: compression 1.5", lambda: sharing.hashed(np.float32(1.5)), ValueError, "1.5"),
    ("hashed: string compression", lambda: sharing.hashed("0.5"), TypeError, "'0.5'"),
    ("hashed: bool seed", lambda: sharing.hashed(0.5, seed=True), TypeError, "True"),
    ("hashed: negative seed", lambda: sharing.hashed(0.5, seed=-1), ValueError, "-1"),
    ("hashed: seed 2**32", lambda: sharing.hashed(0.5, seed=2**32), ValueError, str(2**32)),
    ("hashed: bad include regex", lambda: sharing.hashed(0.5, include="["), ValueError, "'['"),
    ("select: bad regex", lambda: sharing.select("[", sharing.identity()), ValueError, "'['"),
    ("codebook: 0 bits", lambda: sharing.codebook(0), ValueError, "got 0"),
    ("codebook: bool bits", lambda: sharing.codebook(True), TypeError, "True"),
    ("codebook: per-layer 40 bits", lambda: _init(sharing.quantize(bits={"Dense_0": 40})), ValueError, "40"),
    ("quantize: bad regex key", lambda: _init(sharing.quantize(bits={"(": 4})), ValueError, "'('"),
    ("low_rank: rank 0", lambda: sharing.low_rank(0), ValueError, "got 0"),
    ("low_rank: float rank", lambda: sharing.low_rank(2.0), TypeError, "2.0"),
    ("low_rank: NaN compression", lambda: sharing.low_rank(compression=NAN), ValueError, "nan"),
    ("random_edges: inf compression", lambda: sharing.random_edges(INF), ValueError, "inf"),
    ("tied: rank True", lambda: sharing.tied(("Dense_0", "Dense_1"), multiplex="lowrank", rank=True), TypeError, "True"),
    ("kmeans: bool k", lambda: kmeans_1d(np.arange(5.0), True), TypeError, "True"),
    ("kmeans: inf tol", lambda: kmeans_1d(np.arange(5.0), 2, tol=INF), ValueError, "inf"),
    # pruning
    ("threshold: NaN quality", lambda: pruning.threshold_masks(PARAMS, NAN), ValueError, "nan"),
    ("threshold: inf quality", lambda: pruning.threshold_masks(PARAMS, INF), ValueError, "inf"),
    ("threshold: negative quality", lambda: pruning.threshold_masks(PARAMS, -0.5), ValueError, "-0.5"),
    ("threshold: bool quality", lambda: pruning.threshold_masks(PARAMS, True), TypeError, "True"),
    ("threshold: per-layer NaN", lambda: pruning.threshold_masks(PARAMS, {"Dense_1": NAN}), ValueError, "nan"),
    ("sparsity: 1.5", lambda: pruning.sparsity_masks(PARAMS, 1.5), ValueError, "1.5"),
    ("sparsity: NaN", lambda: pruning.sparsity_masks(PARAMS, np.float32(NAN)), ValueError, "nan"),
    ("sparsity: global inf", lambda: pruning.sparsity_masks(PARAMS, INF, scope="global"), ValueError, "inf"),
    ("sparsity: bad include regex", lambda: pruning.sparsity_masks(PARAMS, 0.5, include="["), ValueError, "'['"),
    ("sparsity: bad per-layer key", lambda: pruning.sparsity_masks(PARAMS, {"[": 0.5}), ValueError, "'['"),
    ("gradual: NaN target", lambda: pruning.gradual_pruning(NAN, pruning.one_shot()), ValueError, "nan"),
    ("gradual: every True", lambda: pruning.gradual_pruning(0.5, pruning.one_shot(), every=True), TypeError, "True"),
    ("iterative: 0 rounds", lambda: pruning.iterative(0), ValueError, "got 0"),
    ("polynomial: inf power", lambda: pruning.polynomial(0, 10, power=INF), ValueError, "inf"),
    # penalties
    ("soft sharing: NaN strength", lambda: penalties.soft_weight_sharing(NAN), ValueError, "nan"),
    ("soft sharing: inf strength", lambda: penalties.soft_weight_sharing(INF), ValueError, "inf"),
    ("soft sharing: bool strength", lambda: penalties.soft_weight_sharing(True), TypeError, "True"),
    ("soft sharing: bad include regex", lambda: penalties.soft_weight_sharing(1e-3, include="["), ValueError, "'['"),
    ("soft sharing: pi_zero 1", lambda: penalties.soft_weight_sharing(1e-3, pi_zero=1.0), ValueError, "1.0"),
    ("soft sharing: NaN learning rate",
     lambda: penalties.soft_weight_sharing(1e-3, mixture_learning_rate=NAN), ValueError, "nan"),
    ("soft sharing: bool components", lambda: penalties.soft_weight_sharing(1e-3, True), TypeError, "True"),
    ("l2: negative strength", lambda: penalties.l2(-1.0), ValueError, "-1.0"),
    ("weight elimination: NaN w0", lambda: penalties.weight_elimination_penalty(PARAMS, NAN), ValueError, "nan"),
    ("mixture: NaN mean in log_prior", lambda: penalties.log_prior(PARAMS, _mixture(means=[0.0, NAN])), ValueError, "nan"),
    ("mixture: inf logit", lambda: penalties.log_prior(PARAMS, _mixture(logits=[0.0, INF])), ValueError, "inf"),
    ("init_mixture: NaN pi_zero", lambda: penalties.init_mixture(PARAMS, 3, pi_zero=NAN), ValueError, "nan"),
    ("hyper-prior: NaN shape", lambda: penalties.Gamma(NAN, 1.0), ValueError, "nan"),
    # storage (per-layer options go through wsjax.sharing.paths.per_layer)
    ("storage: unknown encoding", lambda: storage.encode(PARAMS, encoding="zip"), ValueError, "'zip'"),
    ("storage: index_bits 0", lambda: storage.encode(PARAMS, index_bits=0), ValueError, "got 0"),
    ("storage: bool index_bits", lambda: storage.encode(PARAMS, index_bits=True), TypeError, "True"),
    ("storage: bad index_bits regex", lambda: storage.encode(PARAMS, index_bits={"[": 5}), ValueError, "'['"),
    ("storage: bad encoding regex", lambda: storage.encode(PARAMS, encoding={"(": "raw"}), ValueError, "'('"),
    ("storage: save into a missing folder",
     lambda: storage.save(TMP["path"] / "nowhere" / "m.wsjax", PARAMS), FileNotFoundError, "nowhere"),
    ("storage: a file of another model (like=)",
     lambda: storage.decode(storage.encode(PARAMS), like={**PARAMS, "Dense_1": {
         "kernel": np.zeros((3, 4), np.float32), "bias": np.zeros(2, np.float32)}}),
     StorageError, "(3, 4)"),
    ("storage: like= with a non-array leaf",
     lambda: storage.decode(storage.encode(PARAMS), like={"Dense_0": {"kernel": "w", "bias": 0}}),
     TypeError, "'Dense_0/kernel'"),
    # the training engine
    ("fit: float labels", lambda: _fit(y=_Y.astype(np.float32)), TypeError, "float32"),
    ("fit: label = num_classes", lambda: _fit(y=_with(_Y, 5, 3)), ValueError, "to 3"),
    ("fit: negative label", lambda: _fit(y=_with(_Y, 5, -1)), ValueError, "from -1"),
    ("fit: NaN input", lambda: _fit(x=_with(_X, (3, 1, 1, 0), NAN)), ValueError, "NaN"),
    ("fit: wrong input shape", lambda: _fit(x=np.zeros((40, 5, 5, 1), np.float32)), ValueError, "(40, 5, 5, 1)"),
    ("fit: NaN loss, raise", lambda: _fit_blowup("raise"), NonFiniteLossError, "epoch 1, step"),
    ("fit: NaN loss, raise (python loop)", lambda: _fit_blowup("raise", "python"), FloatingPointError, "epoch 1"),
    ("fit: NaN loss, skip", lambda: _fit_blowup("skip"), RuntimeWarning, "updates were dropped"),
    ("fit: NaN loss, continue", lambda: _fit_blowup("continue"), RuntimeWarning, "non-finite loss"),
    ("fit: unknown on_nonfinite", lambda: _fit(on_nonfinite="ignore"), ValueError, "'ignore'"),
    ("fit: bool seed", lambda: _fit(seed=True), TypeError, "True"),
    ("fit: epochs 0", lambda: _fit(epochs=0), ValueError, "got 0"),
    ("fit: float batch size", lambda: _fit(batch_size=2.5), TypeError, "2.5"),
    # compression stages and models
    ("retrain: NaN lr", lambda: compress.Retrain(1, NAN), ValueError, "nan"),
    ("retrain: 0 epochs", lambda: compress.Retrain(0, 1e-3), ValueError, "got 0"),
    ("retrain: bool seed", lambda: compress.Retrain(1, 1e-3, seed=True), TypeError, "True"),
    ("prune stage: inf sparsity", lambda: compress.Prune(INF), ValueError, "inf"),
    ("soft share stage: NaN tau", lambda: compress.SoftShare(tau=NAN, epochs=1), ValueError, "nan"),
    ("LeNet-5 on 8x8 images", lambda: LeNet5().init(KEY, jnp.zeros((1, 8, 8, 1))), ValueError, "(1, 8, 8, 1)"),
    ("lecun89 net True", lambda: lecun89_net(True), ValueError, "n=True"),
    # the command line
    ("cli: --out ''", lambda: _cli("--out", ""), SystemExit, "--out must name a folder, got ''"),
    ("cli: --out FILE", lambda: _cli("--out", _a_file()), SystemExit, "results.json' is a file"),
    ("cli: --seed -1", lambda: _cli("--seed", "-1"), SystemExit, "got -1"),
    ("cli: --seed True", lambda: _cli("--seed", "True"), SystemExit, "'True'"),
    ("cli: unknown dataset", lambda: _cli("--dataset", "imagenet"), SystemExit, "'imagenet'"),
    ("cli: digits too small for LeNet-5",
     lambda: _cli("--dataset", "digits", models=("lenet5",)), SystemExit, "digits (8x8x1 images) is too small for lenet5"),
]


def test_the_table_is_big_and_unique():
    assert len(ROWS) >= 50
    assert len({r[0] for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("call, expected, fragment", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input(call, expected, fragment):
    if issubclass(expected, Warning):
        with pytest.warns(expected, match=re.escape(fragment)):
            call()
    else:
        with pytest.raises(expected, match=re.escape(fragment)):
            call()


# ----------------------------------------------------------------------------- the documented behaviour


@pytest.mark.parametrize("value", [np.float32(0.125), np.float64(0.125), 0.125, np.array(0.125)])
def test_numpy_scalars_are_numbers(value):
    state = _init(sharing.hashed(value))
    assert sharing.free_params(state) < sharing.virtual_params(sharing.hashed(value), state)
    assert checks.number(value, "x") == 0.125
    assert checks.integer(np.int64(3), "k") == 3 and checks.seed(np.uint32(7)) == 7


def test_type_errors_are_also_value_errors_for_older_callers():
    with pytest.raises(ValueError):
        checks.positive_int(True, "k")
    assert issubclass(checks.ArgumentTypeError, TypeError)


def test_raise_names_the_first_bad_step_and_keeps_the_parameters_before_it():
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.key(0), 0), 40))
    bad_batch = int(np.flatnonzero(perm == 17)[0]) // 10  # the batch holding the huge target
    for loop in ("scan", "python"):
        with pytest.raises(NonFiniteLossError) as info:
            _fit_blowup("raise", loop)
        err = info.value
        assert (err.epoch, err.step, err.steps, err.history) == (1, bad_batch + 1, 4, [])
        w = np.zeros(3, np.float32)  # plain SGD over the batches before the bad one
        for b in range(bad_batch):
            idx = perm[b * 10 : (b + 1) * 10]
            w = w - 0.01 * np.asarray(jax.grad(_blowup_loss)(jnp.asarray(w), _RX[idx], _RY[idx]))
        np.testing.assert_allclose(np.asarray(err.theta), w, rtol=1e-5, atol=1e-6)


def test_skip_drops_the_bad_steps_and_trains_on():
    with pytest.warns(RuntimeWarning):
        r = _fit_blowup("skip")
    assert all(h["skipped_steps"] == 1 for h in r.history)
    assert all(math.isfinite(h["train_loss"]) for h in r.history)
    assert np.all(np.isfinite(np.asarray(r.theta)))


def test_continue_trains_on_and_counts():
    with pytest.warns(RuntimeWarning):
        r = _fit_blowup("continue")
    assert r.history[0]["nonfinite_steps"] >= 1 and not math.isfinite(r.history[0]["train_loss"])


def test_finite_runs_record_no_new_keys():
    r = _fit(epochs=2)
    assert all(set(h) == {"epoch", "train_loss", "seconds", "loop"} for h in r.history)


def test_cli_empty_out_writes_nothing(monkeypatch):
    made = []
    monkeypatch.setattr(os, "makedirs", lambda *a, **k: made.append(a))
    with pytest.raises(SystemExit):
        with contextlib.redirect_stderr(io.StringIO()):
            study.parse_args("baseline", "test", argv=["--out", ""])
    assert made == []


def test_cli_accepts_a_model_that_fits():
    args = study.parse_args("bad_inputs", "test", argv=["--dataset", "lecun89", "--out", str(TMP["path"])],
                             models=("lenet5", "lenet300100"))
    assert args.dataset == "lecun89" and os.path.isdir(args.out)
