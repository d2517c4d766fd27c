import json
import os
import subprocess
import sys

import chex
import jax
import numpy as np
import optax
import pytest

from wsjax import data
from wsjax.models import MLP, LeNet300100
from wsjax.train import classifier, evaluate, fit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _digits_setup(width=32):
    train, test = data.load("digits", "train"), data.load("digits", "test")
    model = MLP((width, 10))
    params = model.init(jax.random.key(0), train[0][:1])["params"]
    loss_fn, eval_fn = classifier(lambda th, x: model.apply({"params": th}, x))
    return train, test, params, loss_fn, eval_fn


def test_fit_learns_digits_and_history_is_complete(tmp_path):
    train, test, params, loss_fn, eval_fn = _digits_setup()
    log = tmp_path / "metrics.jsonl"
    r = fit(loss_fn, params, optax.adam(1e-2), train, eval=test, eval_fn=eval_fn,
            epochs=8, batch_size=64, loop="scan", log_path=str(log), progress=False)
    assert [h["epoch"] for h in r.history] == list(range(1, 9))
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]
    assert r.history[-1]["eval_accuracy"] > 0.9
    lines = [json.loads(l) for l in log.read_text().splitlines()]
    assert lines == r.history
    # the caller's params are untouched (the engine donates only its own copy)
    chex.assert_trees_all_equal(params, _digits_setup()[2])


def test_scan_and_python_loops_agree_and_runs_are_deterministic():
    train, _, params, loss_fn, _ = _digits_setup()
    kw = dict(epochs=3, batch_size=50, seed=7, progress=False, scan_chunk=4)
    a = fit(loss_fn, params, optax.sgd(0.1, momentum=0.9), train, loop="python", **kw)
    b = fit(loss_fn, params, optax.sgd(0.1, momentum=0.9), train, loop="scan", **kw)
    c = fit(loss_fn, params, optax.sgd(0.1, momentum=0.9), train, loop="scan", **kw)
    chex.assert_trees_all_close(a.theta, b.theta, atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_equal(b.theta, c.theta)
    d = fit(loss_fn, params, optax.sgd(0.1, momentum=0.9), train, loop="scan", **{**kw, "seed": 8})
    assert not np.allclose(d.theta["Dense_0"]["kernel"], c.theta["Dense_0"]["kernel"])


def test_auto_loop_picks_a_mode_and_the_environment_can_fix_it(monkeypatch):
    from wsjax.train import loop as train_loop

    monkeypatch.delenv(train_loop.LOOP_ENV, raising=False)  # the suite fixes it (tests/conftest.py)
    monkeypatch.setattr(train_loop, "_AUTO_CHOICE", {})
    train, _, params, loss_fn, _ = _digits_setup(8)
    r = fit(loss_fn, params, optax.sgd(0.1), train, epochs=1, batch_size=100, progress=False)
    assert r.history[0]["loop"] in ("scan", "python") and len(train_loop._AUTO_CHOICE) == 1  # measured
    monkeypatch.setattr(train_loop, "_AUTO_CHOICE", {})
    for fixed in ("scan", "python"):
        monkeypatch.setenv(train_loop.LOOP_ENV, fixed)
        r = fit(loss_fn, params, optax.sgd(0.1), train, epochs=1, batch_size=100, progress=False)
        assert r.history[0]["loop"] == fixed and not train_loop._AUTO_CHOICE  # nothing measured
    monkeypatch.setenv(train_loop.LOOP_ENV, "unrolled")
    with pytest.raises(ValueError, match="WSJAX_LOOP must be one of"):
        fit(loss_fn, params, optax.sgd(0.1), train, epochs=1, batch_size=100, progress=False)


def test_resume_gives_the_uninterrupted_result(tmp_path):
    train, test, params, loss_fn, eval_fn = _digits_setup()
    kw = dict(batch_size=64, seed=3, loop="python", progress=False, eval=test, eval_fn=eval_fn)
    full = fit(loss_fn, params, optax.adam(3e-3), train, epochs=4, checkpoint_dir=str(tmp_path / "a"), **kw)
    fit(loss_fn, params, optax.adam(3e-3), train, epochs=2, checkpoint_dir=str(tmp_path / "b"), **kw)
    resumed = fit(loss_fn, params, optax.adam(3e-3), train, epochs=4, checkpoint_dir=str(tmp_path / "b"), **kw)
    chex.assert_trees_all_equal(full.theta, resumed.theta)
    chex.assert_trees_all_equal(full.opt_state, resumed.opt_state)
    assert [h["eval_accuracy"] for h in resumed.history] == [h["eval_accuracy"] for h in full.history]


def test_optimizer_update_receives_params():
    train, _, params, loss_fn, _ = _digits_setup(8)
    # add_decayed_weights needs params: it fails if the engine does not pass them.
    opt = optax.chain(optax.add_decayed_weights(1e-3), optax.sgd(0.1))
    r = fit(loss_fn, params, opt, train, epochs=1, batch_size=100, loop="python", progress=False)
    assert np.isfinite(r.history[0]["train_loss"])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(epochs=0), ValueError, "epochs must be a positive int"),
        (dict(batch_size=10_000), ValueError, "exceeds the 1437 training"),
        (dict(batch_size=2.5), ValueError, "batch_size must be a positive int"),
        (dict(loop="unrolled"), ValueError, "loop must be one of"),
        (dict(eval=(np.zeros((3, 8, 8, 1)), np.zeros(3, np.int32))), ValueError, "without an eval_fn"),
        (dict(train=(np.zeros((5, 8, 8, 1)), np.zeros(4, np.int32))), ValueError, "5 inputs but 4 targets"),
        (dict(train=[1, 2, 3]), TypeError, "pair"),
    ],
)
def test_bad_config_values_are_clear_errors(kwargs, error, match):
    train, _, params, loss_fn, _ = _digits_setup(8)
    args = dict(epochs=1, batch_size=32, progress=False)
    args.update(kwargs)
    train = args.pop("train", train)
    with pytest.raises(error, match=match):
        fit(loss_fn, params, optax.sgd(0.1), train, **args)


def test_lenet300100_on_real_fashion_mnist_beats_a_floor():
    x, y = data.load("fashion_mnist", "train")
    test = data.load("fashion_mnist", "test")
    model = LeNet300100()
    params = model.init(jax.random.key(0), x[:1])["params"]
    loss_fn, eval_fn = classifier(lambda th, xb: model.apply({"params": th}, xb))
    r = fit(loss_fn, params, optax.adam(1e-3), (x[:20000], y[:20000]), epochs=1,
            batch_size=100, loop="scan", progress=False)
    assert evaluate(eval_fn, r.theta, *test)["accuracy"] > 0.80


_DP_SCRIPT = """
import json, sys, jax, optax
from wsjax import data
from wsjax.models import MLP
from wsjax.train import classifier, fit
train = data.load("digits", "train")
model = MLP((32, 10))
params = model.init(jax.random.key(0), train[0][:1])["params"]
loss_fn, _ = classifier(lambda th, x: model.apply({"params": th}, x))
r = fit(loss_fn, params, optax.adam(1e-2), train, epochs=3, batch_size=64, loop="python",
        progress=False, data_parallel=sys.argv[1] == "1")
print(json.dumps({"devices": jax.local_device_count(), "loss": [h["train_loss"] for h in r.history]}))
"""


def test_data_parallel_over_four_forced_cpu_devices_matches_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    out = {}
    for dp in ("1", "0"):
        proc = subprocess.run([sys.executable, "-c", _DP_SCRIPT, dp], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out[dp] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["1"]["devices"] == 4
    np.testing.assert_allclose(out["1"]["loss"], out["0"]["loss"], rtol=1e-4)
    check = (
        "from wsjax.train.sharding import DataParallel\n"
        "try:\n    DataParallel.create(True, 30)\nexcept ValueError as e:\n    print(e)"
    )
    proc = subprocess.run([sys.executable, "-c", check], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert "batch_size 30 must be divisible by the 4 local devices" in proc.stdout
