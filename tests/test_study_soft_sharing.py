"""The soft_sharing study (Nowlan & Hinton 1992) end to end on its smoke config, and the library
pieces it moved into wsjax: the shift-detection and sunspot data (wsjax.data.shift,
wsjax.data.sunspots), the vmapped full-batch trainer (wsjax.train.lanes) and the switchable
penalty chain (wsjax.penalties.switchable)."""

from __future__ import annotations

import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsjax import penalties as P
from wsjax.data import shift, sunspots
from wsjax.penalties import switchable
from wsjax.results import Store
from wsjax.study import discover
from wsjax.train import lanes as L

# ----------------------------------------------------------------------------- the study


def test_smoke_run_writes_rows_artifacts_and_report_then_resumes_without_training(tmp_path, monkeypatch):
    monkeypatch.setenv("WSJAX_STUDY_DIR", str(tmp_path))
    run, config = discover.load("soft_sharing"), discover.load("soft_sharing", "config")
    cfg, out = config.smoke(), str(tmp_path / "out")
    units = cfg.units(0)
    assert [(u["task"], u["role"]) for u in units] == [("shift", "comparison"), ("sunspots", "comparison"),
                                                        ("shift", "pilot")]
    rows = run.run(cfg, "fashion_mnist", 0, out)
    assert [r["config"] for r in rows] == [Store(out).get(u)["config"] for u in units]
    for r in rows:
        c = r["config"]
        assert len(r["scores"]) == len(c["lanes"]) and r["seconds"] > 0
        for s in r["scores"]:
            assert len(s["val"]) == len(c["selection_seeds"])
            tests = {k: v for k, v in s.items() if k != "val"}
            assert tests and all(len(v) == len(c["test_seeds"]) and np.all(np.isfinite(v)) for v in tests.values())
        assert os.path.getsize(Store(out).artifact(c, ".msgpack")) > 0
    shift_row = rows[0]["scores"][0]
    assert all(0.0 <= a <= 1.0 for a in shift_row["test_accuracy"] + shift_row["val"])
    for name in ("results.md", "results.json", "grid.json", "soft_sharing_mixture.png", "soft_sharing_sweep.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    md = open(os.path.join(out, "results.md")).read()
    for section in ("## The paper's claim beside our measurement", "## Why our numbers may differ",
                    "## Protocol", "in a pilot (same net, 100 cases, 2 draws)"):
        assert section in md, section
    assert "?" not in md.split("## Why our numbers")[1] and "{" not in md
    table = json.load(open(os.path.join(out, "results.json")))["rows"]
    assert [(r["task"], r["method"]) for r in table] == [
        (t, m) for t in ("shift", "sunspots") for m in ("none", "l2", "weight_elimination", "soft_sharing_K3")]
    grid = json.load(open(os.path.join(out, "grid.json")))
    assert {t: len(v) for t, v in grid.items()} == {t: len(units[i]["lanes"]) for i, t in enumerate(("shift", "sunspots"))}

    def no_training(unit, store):
        raise AssertionError("a cached unit was trained again")

    monkeypatch.setattr(run, "compute", no_training)
    again = run.run(cfg, "fashion_mnist", 0, out)
    assert [(r["key"], r["written"]) for r in again] == [(r["key"], r["written"]) for r in rows]
    # another seed shares no unit with this folder: nothing would be reused
    assert all(Store(out).get(u) is None for u in cfg.units(1))


def test_full_config_keeps_the_committed_recipe():
    config = discover.load("soft_sharing", "config")
    cfg = config.full()
    units = cfg.units(0)
    comparison = [u for u in units if u["role"] == "comparison"]
    assert [(u["task"], u["components"], len(u["lanes"])) for u in comparison] == [
        ("shift", 3, 37), ("shift", 5, 18), ("shift", 10, 18), ("sunspots", 3, 45), ("sunspots", 5, 22),
        ("sunspots", 10, 22)]
    sh, sun = comparison[0], comparison[3]
    assert (sh["steps"], sh["warm"], sh["data"]["n_train"], len(sh["selection_seeds"]), len(sh["test_seeds"])) == (
        3000, 500, 50, 10, 10)
    assert (sun["steps"], sun["warm"], len(sun["selection_seeds"])) == (5000, 1000, 5)
    assert sh["selection_seeds"][0] == 1000 and sh["test_seeds"] == list(range(10))


# ----------------------------------------------------------------------------- data


def test_shift_cases_are_every_unambiguous_rotation():
    x, y = shift.shift_cases(10)
    assert x.shape == (2040, 20) and y.shape == (2040,)
    assert len({row.tobytes() for row in x}) == 2040
    for row, label in zip(x, y):
        p, q = row[:10], row[10:]
        assert np.array_equal(q, np.roll(p, 1 if label == 1 else -1))
        assert not np.array_equal(np.roll(p, 1), np.roll(p, -1))
    small, _ = shift.shift_cases(4)  # 16 patterns less 0000, 1111, 0101, 1010
    assert small.shape == (24, 8)
    with pytest.raises(ValueError):
        shift.shift_cases(2)


def test_shift_draws_are_disjoint_and_reproducible():
    x, y, train, val, test_mask = shift.shift_draws([3, 4], 50, 500)
    assert train.shape == (2, 50) and val.shape == (2, 500) and test_mask.shape == (2, 2040)
    for s in range(2):
        assert not set(train[s]) & set(val[s])
        assert test_mask[s].sum() == 1990 and not test_mask[s][train[s]].any()
    again = shift.shift_draws([4], 50, 500)
    np.testing.assert_array_equal(again[2][0], train[1])
    assert not np.array_equal(train[0], train[1])
    with pytest.raises(ValueError):
        shift.shift_draws([0], 2000, 500)


def test_sunspot_windows_lag_scale_and_variance():
    years, values = np.arange(1700, 1720), np.arange(20, dtype=np.float64) + 1.0
    x, y, target_years, variance = sunspots.windows(years, values, lag=3, train_until=1709)
    z = values / 10.0  # the maximum up to 1709
    assert x.shape == (17, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], z[:3]) and np.testing.assert_allclose(x[5], z[5:8])
    np.testing.assert_allclose(y, z[3:], rtol=1e-6)
    np.testing.assert_array_equal(target_years, years[3:])
    assert variance == pytest.approx(np.var(z))


def test_blocked_folds_hold_out_blocks_and_the_lag_after_them():
    weights, held = sunspots.blocked_folds(20, 4, lag=2)
    assert weights.shape == held.shape == (4, 20)
    np.testing.assert_array_equal(held.sum(0), np.ones(20))  # the blocks partition the targets
    np.testing.assert_array_equal(np.flatnonzero(weights[1] == 0), np.arange(5, 12))  # block 5-9, then 2
    np.testing.assert_array_equal(np.flatnonzero(weights[3] == 0), np.arange(15, 20))
    assert not (weights * held).any()
    with pytest.raises(ValueError):
        sunspots.blocked_folds(20, 1)


def test_arv():
    t = np.array([0.1, 0.5, 0.9])
    assert sunspots.arv(t, t, 0.3) == 0.0
    assert sunspots.arv(np.full(3, t.mean()), t, np.var(t)) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        sunspots.arv(t[:2], t, 1.0)


def test_sunspot_series_from_statsmodels():
    pytest.importorskip("statsmodels")
    years, values = sunspots.sunspot_series()
    np.testing.assert_array_equal(years, np.arange(1700, 1980))
    assert (values >= 0).all()
    x, y, target_years, _ = sunspots.sunspot_windows()
    assert x.shape == (268, 12) and target_years[0] == 1712 and y.max() > 1.0  # later maxima exceed 1700-1920's


# ----------------------------------------------------------------------------- trainer and penalties


def test_mlp_is_logistic_hidden_linear_output():
    params = L.init_mlp(jax.random.key(0), (4, 3, 1))
    assert jax.tree.map(np.shape, params) == {"Dense_0": {"kernel": (4, 3), "bias": (3,)},
                                              "Dense_1": {"kernel": (3, 1), "bias": (1,)}}
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    k0, k1 = (np.asarray(params[f"Dense_{i}"]["kernel"]) for i in range(2))
    want = (1 / (1 + np.exp(-(x @ k0))) @ k1)[:, 0]
    np.testing.assert_allclose(np.asarray(L.mlp(params, x)), want, rtol=1e-5, atol=1e-6)
    loss = L.weighted_loss("mse", apply=lambda p, x: x[:, 0])
    w = np.array([1.0, 0.0, 1.0], np.float32)  # a zero weight leaves the case out
    assert float(loss(None, np.array([[1.0], [9.0], [3.0]]), np.zeros(3), w)) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        L.weighted_loss("hinge")


def test_lane_trainer_lanes_are_independent_runs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 16, 4)).astype(np.float32)
    y = rng.normal(size=(2, 16)).astype(np.float32)
    w = np.ones((2, 16), np.float32)
    make = lambda: L.lane_trainer(L.weighted_loss("mse"), lambda k: L.init_mlp(k, (4, 3, 1)),
                                  lambda h: P.l2(h[0], include="kernel"), steps=30, warm=10, lr=1e-2)
    keys = jnp.stack([jax.random.key(0), jax.random.key(1)])
    params, (on, _), _ = make()(keys, jnp.asarray([[0.0], [0.5]]), x, y, w)
    # before the switch-on the settings do not matter; after it the L2 lane has smaller kernels
    chex.assert_trees_all_close(L.lane(on, 0, 0), L.lane(on, 0, 1))
    norm = lambda p: sum(float(np.sum(np.square(p[k]["kernel"]))) for k in p)
    assert norm(L.lane(params, 1, 1)) < norm(L.lane(params, 1, 0))
    alone, _, _ = make()(keys[1:], jnp.asarray([[0.5]]), x[1:], y[1:], w[1:])
    chex.assert_trees_all_close(L.lane(alone, 0, 0), L.lane(params, 1, 1), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        L.lane_trainer(None, None, None, steps=5, warm=6, lr=1e-2)


def test_switchable_applies_only_the_penalty_it_is_given():
    assert switchable.hyper("none", 0.3, 1.0) == (0.0, 0.0, 0.0, 1.0)
    assert switchable.hyper("weight_elimination", 0.3, 1.0) == (0.0, 0.3, 0.0, 1.0)
    assert switchable.hyper("soft_sharing_K5", 0.3, 2.0) == (0.0, 0.0, 0.3, 2.0)
    with pytest.raises(ValueError):
        switchable.hyper("dropout", 0.1, 1.0)
    rng = np.random.default_rng(1)
    params = {"Dense_0": {"kernel": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32), "bias": jnp.ones((3,))}}
    grads = jax.tree.map(jnp.zeros_like, params)

    @jax.jit
    def updates(h):
        tx = switchable.penalty_chain(h, 3)
        state = tx.init(params)
        return tx.update(grads, state, params)[0], switchable.mixture_of(state)

    def alone(tx):
        return jax.jit(lambda: tx.update(grads, tx.init(params), params)[0])()

    none, mixture = updates(jnp.asarray([0.0, 0.0, 0.0, 1.0]))
    chex.assert_trees_all_close(none, grads)
    assert mixture.means.shape == (3,)
    chex.assert_trees_all_close(updates(jnp.asarray([0.2, 0.0, 0.0, 1.0]))[0], alone(P.l2(0.2, include="kernel")))
    chex.assert_trees_all_close(updates(jnp.asarray([0.0, 0.2, 0.0, 1.0]))[0],
                                alone(P.weight_elimination(0.2, 1.0, include="kernel")), rtol=1e-6)
    gamma = P.Gamma(1.0, 2.0)
    soft = P.soft_weight_sharing(0.2, 3, init="even", include="kernel", zero_component=True, pi_zero=0.5,
                                 learn_pi_zero=True, hyper_prior=P.HyperPrior(precision=gamma, zero_precision=gamma),
                                 mixture_learning_rate=1e-2)
    got = updates(jnp.asarray([0.0, 0.0, 0.2, 2.0]))[0]
    chex.assert_trees_all_close(got, alone(soft), rtol=1e-6)
    assert float(np.abs(np.asarray(got["Dense_0"]["kernel"])).sum()) > 0 and not np.any(np.asarray(got["Dense_0"]["bias"]))
