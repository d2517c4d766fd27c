"""The multi-exit CNN and early-exit inference (wsjax.models.early_exit)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsjax.models import MultiExitCNN, accuracy_vs_macs, early_exit_predict, joint_loss
from wsjax.models import counting as C
from wsjax.models import early_exit as E

SHAPE = (12, 12, 1)
N = 8


def _size(tree):
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


@pytest.fixture(scope="module")
def setup():
    """A tiny 3-exit model, numpy-drawn params (no init compile), a batch, labels, every
    exit's logits and a threshold that sends examples to all three exits."""
    model = MultiExitCNN(widths=(4, 8, 8))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(N,) + SHAPE), jnp.float32)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x[:1])["params"]
    rng = np.random.default_rng(3)  # a draw whose exits split the batch 4 / 2 / 2 at some threshold
    params = jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape), jnp.float32), shapes)
    y = np.random.default_rng(2).integers(0, 10, N)
    logits = E.all_exit_logits(model, params, x)
    conf = np.stack([np.asarray(E.confidence(jnp.asarray(z))) for z in logits])
    # candidate thresholds halfway between neighbouring confidences of exits 0 and 1
    c = np.unique(conf[:2])
    best = None
    for t in (c[1:] + c[:-1]) / 2:
        exits = E._first_confident(conf, np.float32(t), np)
        used = np.bincount(exits, minlength=3)
        margin = np.abs(conf - t).min()
        if margin > 1e-4 and (best is None or used.min() > best[1]):
            best = (float(t), used.min())
    assert best is not None and best[1] >= 2, "the fixture should reach every exit at some threshold"
    return model, params, x, y, logits, conf, best[0]


def _reference(model, params, x, threshold):
    """Per-example Python loop: run block by block on one example, stop at the first
    confident exit."""
    stage = jax.jit(lambda v, h, i: model.apply(v, h, i, method=MultiExitCNN.stage), static_argnums=2)
    preds, exits = [], []
    for n in range(x.shape[0]):
        h = x[n: n + 1]
        for i in range(len(model.widths)):
            h, logits = stage({"params": params}, h, i)
            p = np.asarray(jax.nn.softmax(logits[0]))
            if p.max() >= threshold or i == len(model.widths) - 1:
                preds.append(int(p.argmax()))
                exits.append(i)
                break
    return np.asarray(preds), np.asarray(exits)


# ----------------------------------------------------------------------------- counts and shapes


def test_exit_costs_are_exact():
    model = MultiExitCNN(widths=(4, 8, 8))
    costs = E.exit_costs(model, SHAPE)
    blocks = (12 * 12 * 9 * 1 * 4, 6 * 6 * 9 * 4 * 8, 3 * 3 * 9 * 8 * 8)
    heads = (4 * 10, 8 * 10, 8 * 10)
    assert costs.block_macs == blocks and costs.head_macs == heads
    assert costs.cumulative == (5184 + 40, 5184 + 40 + 10368 + 80, 5184 + 40 + 10368 + 80 + 5184 + 80)
    total = C.count(model, SHAPE)
    assert costs.cumulative[-1] == total.macs and costs.params == total.params
    assert total.params == (9 * 4 + 4) + (9 * 4 * 8 + 8) + (9 * 8 * 8 + 8) + (4 * 10 + 10) + 2 * (8 * 10 + 10)
    assert total.params == _size(jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1,) + SHAPE)))
    # separable blocks and conv heads count through the same function
    sep = MultiExitCNN(widths=(4, 8), block="separable", head_width=6, num_classes=3)
    s = E.exit_costs(sep, (8, 8, 1))
    assert s.block_macs == (64 * (9 * 1 + 1 * 4), 16 * (9 * 4 + 4 * 8))
    assert s.head_macs == (64 * 9 * 4 * 6 + 6 * 3, 16 * 9 * 8 * 6 + 6 * 3)
    assert s.cumulative[-1] == C.count(sep, (8, 8, 1)).macs


def test_exits_shapes_and_stages(setup):
    model, params, x, _, logits, _, _ = setup
    assert len(logits) == 3
    chex.assert_shape(list(logits), [(N, 10)] * 3)
    direct = model.apply({"params": params}, x)
    chex.assert_trees_all_close(tuple(direct), tuple(jnp.asarray(z) for z in logits), atol=1e-5)
    h = x
    for i in range(3):  # stage(h, i) is block i then exit i
        h, z = model.apply({"params": params}, h, i, method=MultiExitCNN.stage)
        chex.assert_trees_all_close(z, jnp.asarray(logits[i]), atol=1e-5)
    chex.assert_shape(h, (N, 3, 3, 8))


# ----------------------------------------------------------------------------- early exits


@pytest.mark.parametrize("schedule", E.SCHEDULES)
def test_threshold_0_exits_first_and_above_1_exits_last(setup, schedule):
    model, params, x, _, logits, _, _ = setup
    costs = E.exit_costs(model, SHAPE)
    first = early_exit_predict(model, params, x, 0.0, schedule)
    np.testing.assert_array_equal(first.exits, np.zeros(N))
    np.testing.assert_array_equal(first.predictions, logits[0].argmax(-1))
    assert first.avg_macs == costs.cumulative[0] and first.exit_fractions == (1.0, 0.0, 0.0)
    for t in (1.01, float("inf")):
        last = early_exit_predict(model, params, x, t, schedule)
        np.testing.assert_array_equal(last.exits, np.full(N, 2))
        np.testing.assert_array_equal(last.predictions, logits[2].argmax(-1))
        assert last.avg_macs == costs.cumulative[-1] and last.exit_fractions == (0.0, 0.0, 1.0)
        assert last.computed_macs == costs.cumulative[-1]
    if schedule == "masked":
        assert first.computed_macs == costs.cumulative[-1]  # everything ran
    else:
        assert first.computed_macs == costs.cumulative[0] and first.bucket_sizes == (N,)


def test_masked_and_compacting_equal_a_per_example_loop(setup):
    model, params, x, _, _, conf, t = setup
    costs = np.asarray(E.exit_costs(model, SHAPE).cumulative)
    preds, exits = _reference(model, params, x, t)
    assert len(set(exits.tolist())) == 3  # all three exits taken
    masked = early_exit_predict(model, params, x, t, "masked")
    compact = early_exit_predict(model, params, x, t, "compacting")
    for r in (masked, compact):
        np.testing.assert_array_equal(r.exits, exits)
        np.testing.assert_array_equal(r.predictions, preds)
        assert r.avg_macs == pytest.approx(costs[exits].mean(), rel=1e-12)
        assert r.exit_fractions == tuple(np.bincount(exits, minlength=3) / N)
    # compacting: buckets are powers of two (capped at the batch) holding the examples left
    left = [N, int((exits >= 1).sum()), int((exits >= 2).sum())]
    sizes = compact.bucket_sizes
    assert sizes[0] == N and all(s >= k and (s & (s - 1) == 0 or s == N) for s, k in zip(sizes, left))
    assert all(s < 2 * k for s, k in zip(sizes[1:], left[1:]))
    blocks = np.asarray(E.exit_costs(model, SHAPE).block_macs) + np.asarray(E.exit_costs(model, SHAPE).head_macs)
    assert compact.computed_macs == pytest.approx(sum(s * b for s, b in zip(sizes, blocks)) / N, rel=1e-12)
    assert compact.computed_macs < masked.computed_macs


def test_select_exits_under_jit_with_a_traced_threshold(setup):
    _, _, _, _, logits, conf, t = setup
    fn = jax.jit(E.select_exits)
    for thr in (0.0, t, 0.999999, 2.0):
        preds, exits = fn(tuple(jnp.asarray(z) for z in logits), thr)
        hit = conf >= np.float32(thr)
        hit[-1] = True
        want = hit.argmax(0)
        np.testing.assert_array_equal(np.asarray(exits), want)
        np.testing.assert_array_equal(np.asarray(preds), np.stack([z.argmax(-1) for z in logits])[want, np.arange(N)])


def test_accuracy_vs_macs_agrees_with_early_exit_predict(setup):
    model, params, x, y, logits, _, t = setup
    rows = accuracy_vs_macs(model, params, x, y, [0.0, t, 5.0], batch_size=3)
    costs = E.exit_costs(model, SHAPE).cumulative
    assert [r.threshold for r in rows] == [0.0, t, 5.0]
    assert rows[0].avg_macs == costs[0] and rows[-1].avg_macs == costs[-1]
    assert rows[0].accuracy == float((logits[0].argmax(-1) == y).mean())
    assert rows[-1].accuracy == float((logits[2].argmax(-1) == y).mean())
    r = early_exit_predict(model, params, x, t)
    assert rows[1].accuracy == float((r.predictions == y).mean())
    assert rows[1].avg_macs == pytest.approx(r.avg_macs, rel=1e-12)
    assert rows[1].exit_fractions == r.exit_fractions


# ----------------------------------------------------------------------------- the joint loss


def test_joint_loss_is_the_weighted_sum_and_trains(setup):
    model, params, x, y, logits, _, _ = setup
    y = jnp.asarray(y)
    def ce_np(z):  # cross-entropy by hand, float64
        z = np.asarray(z, np.float64)
        lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
        return float((lse - z[np.arange(N), np.asarray(y)]).mean())

    ce = [ce_np(z) for z in logits]
    zs = [jnp.asarray(z) for z in logits]
    assert float(joint_loss(zs, y)) == pytest.approx(sum(ce), rel=1e-5)
    assert float(joint_loss(zs, y, (0.5, 0.0, 2.0))) == pytest.approx(0.5 * ce[0] + 2 * ce[2], rel=1e-5)
    assert float(joint_loss(zs, y, jnp.asarray([1.0, 1.0, 0.0]))) == pytest.approx(ce[0] + ce[1], rel=1e-5)
    small = jax.tree.map(lambda a: a * 0.3, params)  # a milder start than the fixture's unit-variance draws

    grad = jax.jit(jax.value_and_grad(lambda p: joint_loss(model.apply({"params": p}, x), y)))
    before, g = grad(small)
    leaves = [np.asarray(a) for a in jax.tree.leaves(g)]
    assert all(np.isfinite(a).all() for a in leaves) and all(np.abs(a).max() > 0 for a in leaves)
    after, _ = grad(jax.tree.map(lambda w, d: jnp.asarray(np.asarray(w) - 0.05 * np.asarray(d)), small, g))
    assert float(after) < float(before)


# ----------------------------------------------------------------------------- bad inputs


def test_bad_inputs(setup):
    model, params, x, y, logits, _, _ = setup
    zs = [jnp.asarray(z) for z in logits]
    for bad in (float("nan"), -0.1, "0.5", True, None):
        with pytest.raises(ValueError, match="threshold"):
            early_exit_predict(model, params, x, bad)
    with pytest.raises(ValueError, match="schedule must be one of"):
        early_exit_predict(model, params, x, 0.5, "sorted")
    with pytest.raises(ValueError, match="min_bucket"):
        early_exit_predict(model, params, x, 0.5, "compacting", min_bucket=0)
    with pytest.raises(ValueError, match="NHWC"):
        early_exit_predict(model, params, x[:, :, :, 0], 0.5)
    with pytest.raises(ValueError, match="at least 4x4"):
        early_exit_predict(model, params, x[:, :3, :3], 0.5)
    with pytest.raises(ValueError, match="non-empty"):
        early_exit_predict(model, params, x[:0], 0.5)
    with pytest.raises(ValueError, match="MultiExitCNN"):
        early_exit_predict(C, params, x, 0.5)
    with pytest.raises(ValueError, match="params"):
        early_exit_predict(model, [params], x, 0.5)
    with pytest.raises(ValueError, match="one entry per exit|one per exit"):
        joint_loss(zs, y, (1.0, 1.0))
    with pytest.raises(ValueError, match="weights"):
        joint_loss(zs, y, (1.0, -1.0, 1.0))
    with pytest.raises(ValueError, match="logits_list"):
        joint_loss([], y)
    with pytest.raises(ValueError, match="one .batch, classes. shape"):
        joint_loss([zs[0], zs[1][:, :5]], y)
    with pytest.raises(ValueError, match="integer labels"):
        joint_loss(zs, y.astype(np.float32))
    with pytest.raises(ValueError, match="integer labels"):
        joint_loss(zs, y[:3])
    with pytest.raises(ValueError, match="thresholds"):
        accuracy_vs_macs(model, params, x, y, [])
    with pytest.raises(ValueError, match="block must be one of"):
        jax.eval_shape(MultiExitCNN(block="dense").init, jax.random.key(0), x)
    with pytest.raises(ValueError, match="widths"):
        jax.eval_shape(MultiExitCNN(widths=()).init, jax.random.key(0), x)
