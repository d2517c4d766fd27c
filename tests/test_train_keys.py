"""Per-step PRNG keys for random losses: ``fit(..., loss_takes_key=True)``, fit_seeds, lanes."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import wsjax.train.loop as train_loop
from wsjax import data
from wsjax.train import NonFiniteLossError, classifier, evaluate, fit, step_key
from wsjax.train import lanes as L
from wsjax.train.seeds import fit_seeds, init_seeds, stack_seeds

N, BATCH, DIM = 40, 4, 5  # the toy problem: 10 steps an epoch


def _key_bits(key):
    return tuple(np.asarray(jax.random.key_data(key)).tolist())


def _toy():
    x = np.arange(N, dtype=np.float32)[:, None]
    return x, np.zeros(N, np.int32)


def _noise(key):
    return jax.random.normal(key, (DIM,))


def _pull_loss(theta, x, y, key):
    """0.5 |w - n|^2 with n ~ N(0, I) drawn from the step's key: with SGD(lr) the update is
    w <- w - lr (w - n), an order-dependent recursion that names every step's key."""
    return 0.5 * jnp.sum(jnp.square(theta["w"] - _noise(key))) + 0.0 * jnp.mean(x)


def _pull_reference(seed, epochs, lr, steps=N // BATCH, last_steps=None):
    w = np.zeros(DIM)
    for e in range(epochs):
        for s in range(steps if e < epochs - 1 or last_steps is None else last_steps):
            w = w - lr * (w - np.asarray(_noise(step_key(seed, e, s)), np.float64))
    return w


def test_step_keys_differ_per_step_epoch_and_seed_and_are_jittable():
    bits = {_key_bits(step_key(seed, e, s)) for seed in (0, 1) for e in range(3) for s in range(10)}
    assert len(bits) == 2 * 3 * 10
    # a stream apart from the shuffles' keys fold_in(key(seed), epoch) and the keys they split
    shuffle = set()
    for seed in (0, 1):
        for e in range(3):
            k = jax.random.fold_in(jax.random.key(seed), e)
            shuffle |= {_key_bits(k)} | {_key_bits(c) for c in jax.random.split(k, 10)}
    assert not bits & shuffle
    traced = jax.jit(step_key, static_argnums=0)(3, jnp.int32(2), jnp.int32(7))
    assert _key_bits(traced) == _key_bits(step_key(3, 2, 7))


def test_fit_gives_the_loss_the_documented_key_every_step_under_every_loop(monkeypatch):
    monkeypatch.setattr(train_loop, "_AUTO_CHOICE", {})  # 'auto' measures on its first epoch's steps
    monkeypatch.delenv(train_loop.LOOP_ENV, raising=False)  # the suite fixes it (tests/conftest.py)
    theta = {"w": jnp.zeros(DIM)}
    kw = dict(epochs=3, batch_size=BATCH, progress=False, scan_chunk=3, loss_takes_key=True)
    want = _pull_reference(4, 3, 0.5)
    runs = {loop: fit(_pull_loss, theta, optax.sgd(0.5), _toy(), seed=4, loop=loop, **kw)
            for loop in ("python", "scan", "auto")}
    for r in runs.values():
        np.testing.assert_allclose(r.theta["w"], want, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(runs["python"].theta, runs["scan"].theta, runs["auto"].theta, rtol=1e-6)
    assert runs["auto"].history[0]["loop"] in ("python", "scan")
    other = fit(_pull_loss, theta, optax.sgd(0.5), _toy(), seed=5, loop="scan", **kw)
    np.testing.assert_allclose(other.theta["w"], _pull_reference(5, 3, 0.5), rtol=1e-5, atol=1e-6)
    assert not np.allclose(other.theta["w"], want, atol=1e-2)


def _flat(split, n=None):
    x, y = data.load("digits", split)
    return x.reshape(len(x), -1)[:n], y[:n]


def _mlp_apply(theta, x):
    return jnp.tanh(x @ theta["w1"] + theta["b1"]) @ theta["w2"] + theta["b2"]


def _digits(width=16, n=640):
    train, test = _flat("train", n), _flat("test")
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {"w1": jax.random.normal(k1, (64, width)) / 8.0, "b1": jnp.zeros(width),
              "w2": jax.random.normal(k2, (width, 10)) / np.sqrt(width), "b2": jnp.zeros(10)}
    return train, test, params, _mlp_apply


def _dropout_loss(apply, rate=0.2):
    def loss(theta, x, y, key):
        keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
        logits = apply(theta, jnp.where(keep, x / (1.0 - rate), 0.0))
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return loss


def test_dropout_loss_trains_alike_across_loops_and_eval_is_deterministic():
    train, test, params, apply = _digits()
    loss = _dropout_loss(apply)
    _, eval_fn = classifier(apply)  # eval_fn(theta, x, y): no key, no dropout
    kw = dict(epochs=4, batch_size=32, seed=2, progress=False, scan_chunk=6, loss_takes_key=True,
              eval=test, eval_fn=eval_fn)
    scan = fit(loss, params, optax.adam(1e-2), train, loop="scan", **kw)
    python = fit(loss, params, optax.adam(1e-2), train, loop="python", **kw)
    chex.assert_trees_all_close(scan.theta, python.theta, rtol=1e-4, atol=1e-5)
    assert scan.history[-1]["train_loss"] < 0.5 * scan.history[0]["train_loss"]
    assert scan.history[-1]["eval_accuracy"] > 0.85
    assert evaluate(eval_fn, scan.theta, *test)["accuracy"] == scan.history[-1]["eval_accuracy"]


def test_resumed_keyed_run_equals_the_uninterrupted_one(tmp_path):
    theta = {"w": jnp.zeros(DIM)}
    kw = dict(batch_size=BATCH, seed=9, loop="scan", scan_chunk=3, progress=False, loss_takes_key=True)
    full = fit(_pull_loss, theta, optax.adam(0.1), _toy(), epochs=3, **kw)
    fit(_pull_loss, theta, optax.adam(0.1), _toy(), epochs=1, checkpoint_dir=str(tmp_path), **kw)
    resumed = fit(_pull_loss, theta, optax.adam(0.1), _toy(), epochs=3, checkpoint_dir=str(tmp_path), **kw)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    chex.assert_trees_all_equal(full.theta, resumed.theta)
    chex.assert_trees_all_equal(full.opt_state, resumed.opt_state)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]


def _dynamic_net(kind, counter):
    """Seed 002's DynamicNet: one hidden layer applied a random 0-3 times per forward pass."""

    def loss(theta, x, y, key):
        counter.append(1)  # runs when the loss is traced, not when it is executed
        layer = lambda h: jnp.tanh(h @ theta["shared"])
        h = jnp.tanh(x @ theta["inp"])
        depth = jax.random.randint(key, (), 0, 4)
        if kind == "switch":
            branches = [lambda h, k=k: functools.reduce(lambda a, _: layer(a), range(k), h) for k in range(4)]
            h = jax.lax.switch(depth, branches, h)
        else:  # a fixed trip count, masked: a traced trip count (a while_loop) has no reverse mode
            h = jax.lax.fori_loop(0, 3, lambda i, h: jnp.where(i < depth, layer(h), h), h)
        return optax.softmax_cross_entropy_with_integer_labels(h @ theta["out"], y).mean()

    return loss


@pytest.mark.parametrize("kind, loops", [("switch", ("python", "scan")), ("fori_loop", ("scan",))])
def test_random_depth_trains_without_a_retrace_per_step(kind, loops):
    x, y = _flat("train", 320)
    ks = jax.random.split(jax.random.key(1), 3)
    theta = {"inp": jax.random.normal(ks[0], (x.shape[1], 16)) / 8.0,
             "shared": jax.random.normal(ks[1], (16, 16)) / 4.0,
             "out": jax.random.normal(ks[2], (16, 10)) / 4.0}
    traces, results = {}, {}
    for loop in loops:  # 3 epochs of 10 steps
        counter = []
        results[loop] = fit(_dynamic_net(kind, counter), theta, optax.adam(1e-2), (x, y), epochs=3,
                            batch_size=32, seed=0, loop=loop, scan_chunk=4, progress=False,
                            loss_takes_key=True)
        traces[loop] = len(counter)
    # 30 steps, 2 traces: the input check (eval_shape) and the step; 'scan' adds its chunk
    # (10 = 2 x 4 + 2 left over for the step)
    assert traces == {loop: {"python": 2, "scan": 3}[loop] for loop in loops}
    if len(loops) == 2:
        chex.assert_trees_all_close(results["python"].theta, results["scan"].theta, rtol=1e-4, atol=1e-5)
    history = results["scan"].history
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_nonfinite_replay_uses_the_epochs_own_keys():
    x, y = _toy()
    marker = 17.0  # a batch holding this input has a NaN loss
    loss = lambda th, xb, yb, key: _pull_loss(th, xb, yb, key) + jnp.where(jnp.any(xb == marker), jnp.nan, 0.0)
    with pytest.raises(NonFiniteLossError) as err:
        fit(loss, {"w": jnp.zeros(DIM)}, optax.sgd(0.5), (x, y), epochs=2, batch_size=BATCH, seed=6,
            loop="scan", scan_chunk=3, progress=False, loss_takes_key=True)
    e = err.value
    assert e.epoch == 1 and 1 <= e.step <= N // BATCH
    want = _pull_reference(6, 1, 0.5, last_steps=e.step - 1)  # the steps before the bad one
    np.testing.assert_allclose(e.theta["w"], want, rtol=1e-5, atol=1e-6)


def test_old_style_losses_are_unchanged_and_the_flag_decides():
    train, _, params, apply = _digits(8, 400)
    loss, _ = classifier(apply)
    ignore_key = lambda th, x, y, key: loss(th, x, y)
    # 'scan': a chunk of 3 steps, then the jitted step for the 4th
    kw = dict(epochs=2, batch_size=100, seed=1, progress=False, loop="scan", scan_chunk=3)
    plain = fit(loss, params, optax.sgd(0.1), train, **kw)
    keyed = fit(ignore_key, params, optax.sgd(0.1), train, loss_takes_key=True, **kw)
    chex.assert_trees_all_equal(plain.theta, keyed.theta)
    assert [h["train_loss"] for h in plain.history] == [h["train_loss"] for h in keyed.history]

    # one function, two behaviours: the keyword decides, never the signature (the default key=None)
    def maybe_noisy(theta, x, y, key=None, scale=1.0):
        base = _pull_loss(theta, x, y, jax.random.key(0))
        return base if key is None else scale * _pull_loss(theta, x, y, key)

    kw = dict(epochs=1, batch_size=BATCH, seed=4, progress=False, loop="python")
    off = fit(functools.partial(maybe_noisy, scale=1.0), {"w": jnp.zeros(DIM)}, optax.sgd(0.5), _toy(), **kw)
    on = fit(functools.partial(maybe_noisy, scale=1.0), {"w": jnp.zeros(DIM)}, optax.sgd(0.5), _toy(),
             loss_takes_key=True, **kw)
    np.testing.assert_allclose(on.theta["w"], _pull_reference(4, 1, 0.5), rtol=1e-5, atol=1e-6)
    fixed = 0.0
    for _ in range(N // BATCH):
        fixed = fixed - 0.5 * (fixed - np.asarray(_noise(jax.random.key(0)), np.float64))
    np.testing.assert_allclose(off.theta["w"], fixed, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "loss, flag, error, match",
    [
        (_pull_loss, False, TypeError, "loss_takes_key=True"),  # a keyed loss without the flag
        (lambda th, x, y: jnp.sum(th["w"]), True, TypeError, "calls loss_fn\\(theta, x, y, key\\)"),
        (_pull_loss, 1, TypeError, "loss_takes_key must be True or False, got int"),
    ],
)
def test_mismatched_losses_fail_before_training(loss, flag, error, match):
    with pytest.raises(error, match=match):
        fit(loss, {"w": jnp.zeros(DIM)}, optax.sgd(0.5), _toy(), epochs=1, batch_size=BATCH,
            progress=False, loss_takes_key=flag)


def _seed_split(seed, n=48):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5).astype(np.int32)


def _seed_init(key):
    return {"w": 0.1 * jax.random.normal(key, (6, 3)), "b": jnp.zeros(3)}


def _seed_dropout_loss(theta, x, y, key):
    keep = jax.random.bernoulli(key, 0.7, x.shape)
    logits = jnp.where(keep, x / 0.7, 0.0) @ theta["w"] + theta["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def test_fit_seeds_gives_each_seed_its_own_keys():
    seeds = [0, 1]
    train = stack_seeds([_seed_split(s) for s in seeds])
    thetas = init_seeds(_seed_init, seeds)
    kw = dict(epochs=1, batch_size=8, seed=5, progress=False, loop="python", loss_takes_key=True)
    together = fit_seeds(_seed_dropout_loss, thetas, optax.adam(1e-2), train, **kw)
    i = 1  # seed 1 of the stack, trained alone on fold_in(step key, 1)
    own = lambda th, x, y, key: _seed_dropout_loss(th, x, y, jax.random.fold_in(key, i))
    alone = fit(own, jax.tree.map(lambda a: a[i], thetas), optax.adam(1e-2), _seed_split(seeds[i]), **kw)
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], together.theta), alone.theta, rtol=1e-5, atol=1e-6)
    assert not np.allclose(together.theta["w"][0], together.theta["w"][1])
    with pytest.raises(TypeError, match="True or False"):
        fit_seeds(_seed_dropout_loss, thetas, optax.adam(1e-2), train, **{**kw, "loss_takes_key": "yes"})


def test_lane_trainer_keyed_lanes_match_a_hand_loop():
    sizes, steps, warm, lr = (4, 3, 1), 6, 2, 1e-2
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 12, 4)).astype(np.float32)
    y = rng.normal(size=(2, 12)).astype(np.float32)
    w = np.ones((2, 12), np.float32)
    plain = L.weighted_loss("mse")

    def noisy(params, x, y, w, key):  # input dropout
        keep = jax.random.bernoulli(key, 0.75, x.shape)
        return plain(params, jnp.where(keep, x / 0.75, 0.0), y, w)

    init = lambda k: L.init_mlp(k, sizes)
    penalty = lambda h: optax.add_decayed_weights(h[0])
    keys = jnp.stack([jax.random.key(3), jax.random.key(4)])
    hypers = jnp.array([[0.0], [0.5]])
    out = L.lane_trainer(noisy, init, penalty, steps=steps, warm=warm, lr=lr, loss_takes_key=True)(
        keys, hypers, x, y, w)[0]

    @jax.jit
    def by_hand(key, hyper, x, y, w):  # one lane, its steps unrolled
        params = init(key)
        for tx, ts in ((optax.adam(lr), range(warm)),
                       (optax.chain(penalty(hyper), optax.adam(lr)), range(warm, steps))):
            state = tx.init(params)
            for t in ts:
                g = jax.grad(noisy)(params, x, y, w, L.lane_step_key(key, t))
                updates, state = tx.update(g, state, params)
                params = optax.apply_updates(params, updates)
        return params

    for s in range(2):
        for c in range(2):
            chex.assert_trees_all_close(L.lane(out, s, c), by_hand(keys[s], hypers[c], x[s], y[s], w[s]),
                                        rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="True or False"):
        L.lane_trainer(noisy, init, penalty, steps=steps, warm=warm, lr=lr, loss_takes_key=None)
