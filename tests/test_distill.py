"""wsjax.distill: the losses against hand-computed values, their gradients against finite
differences and Hinton's T^2 argument, bad input, the cached teacher and the fit glue."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from wsjax import distill
from wsjax.models import MLP
from wsjax.sharing import hashed, masked
from wsjax.train import classifier, fit

S = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.5, -1.0]])
T_ = jnp.array([[3.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
Y = jnp.array([2, 0])


def _softmax(row, temp=1.0):
    e = [math.exp(v / temp) for v in row]
    return [v / sum(e) for v in e]


def _hand_hinton(s, t, y, temp, alpha):
    soft = hard = 0.0
    for si, ti, yi in zip(s.tolist(), t.tolist(), y.tolist()):
        ps, pt = _softmax(si, temp), _softmax(ti, temp)
        soft += -sum(a * math.log(b) for a, b in zip(pt, ps))
        hard += -math.log(_softmax(si)[yi])
    n = len(y)
    return alpha * hard / n + (1 - alpha) * temp**2 * soft / n


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize("temp,alpha", [(1.0, 0.0), (2.0, 0.3), (20.0, 0.1), (0.5, 1.0)])
def test_hinton_loss_equals_the_hand_computed_value(temp, alpha):
    got = distill.hinton_loss(S, T_, Y, temperature=temp, alpha=alpha)
    np.testing.assert_allclose(got, _hand_hinton(S, T_, Y, temp, alpha), rtol=1e-5)


def test_alpha_one_is_plain_cross_entropy_and_alpha_zero_the_scaled_soft_term():
    plain, _ = classifier(lambda th, x: x)
    for temp in (1.0, 4.0, 20.0):
        chex.assert_trees_all_close(distill.hinton_loss(S, T_, Y, temperature=temp, alpha=1.0), plain(None, S, Y),
                                    rtol=1e-6)
        chex.assert_trees_all_close(distill.hinton_loss(S, T_, Y, temperature=temp, alpha=0.0),
                                    temp**2 * distill.soft_cross_entropy(S, T_, temp), rtol=1e-6)


def test_soft_cross_entropy_is_kl_plus_the_teachers_entropy():
    p, q = distill.soft_targets(T_, 2.0), distill.soft_targets(S, 2.0)
    kl = jnp.mean(jnp.sum(p * (jnp.log(p) - jnp.log(q)), -1))
    entropy = -jnp.mean(jnp.sum(p * jnp.log(p), -1))
    np.testing.assert_allclose(distill.soft_cross_entropy(S, T_, 2.0), kl + entropy, rtol=1e-5)
    np.testing.assert_allclose(distill.soft_cross_entropy(T_, T_, 2.0), entropy, rtol=1e-5)


def test_logit_regression_is_half_the_summed_squared_error_per_example():
    hand = 0.5 * ((2**2 + 1 + 3**2) + (1 + 0.25 + 4)) / 2
    np.testing.assert_allclose(distill.logit_regression_loss(S, T_), hand, rtol=1e-6)
    np.testing.assert_allclose(distill.logit_regression_loss(S, T_), 0.5 * 3 * jnp.mean((S - T_) ** 2), rtol=1e-6)
    assert float(distill.logit_regression_loss(T_, T_)) == 0.0


# ----------------------------------------------------------------------------- gradients


def test_gradients_match_finite_differences():
    with jax.enable_x64(True):
        s = jnp.asarray(np.random.default_rng(0).normal(size=(4, 5)))
        t = jnp.asarray(np.random.default_rng(1).normal(size=(4, 5)))
        y = jnp.array([0, 3, 4, 1])
        for temp in (1.0, 4.0, 20.0):
            check_grads(lambda s: distill.hinton_loss(s, t, y, temperature=temp, alpha=0.2), (s,), order=2,
                        modes=["rev"])
        check_grads(lambda s: distill.logit_regression_loss(s, t), (s,), order=2, modes=["rev"])


def test_soft_gradient_is_p_student_minus_p_teacher_over_t():
    g = jax.grad(lambda s: distill.soft_cross_entropy(s, T_, 3.0))(S)
    want = (distill.soft_targets(S, 3.0) - distill.soft_targets(T_, 3.0)) / 3.0 / len(S)
    chex.assert_trees_all_close(g, want, atol=1e-6)
    assert float(jnp.abs(jax.grad(lambda t: distill.soft_cross_entropy(S, t, 3.0))(T_)).sum()) == 0.0  # a target


def test_t_squared_keeps_the_soft_gradient_independent_of_t():
    """Hinton Sec. 2.1: for a large T the soft term's gradient is ~ (s - t) / (K T^2), so with
    the T^2 factor it tends to (s - t) / K (zero-mean logits): logit matching."""
    rng = np.random.default_rng(2)
    s = jnp.asarray(rng.normal(size=(8, 10)), jnp.float32)
    t = jnp.asarray(rng.normal(size=(8, 10)), jnp.float32)
    s, t = s - s.mean(-1, keepdims=True), t - t.mean(-1, keepdims=True)
    y = jnp.zeros(8, int)
    grad = lambda temp: jax.grad(lambda s: distill.hinton_loss(s, t, y, temperature=temp, alpha=0.0))(s)
    norms = {temp: float(jnp.linalg.norm(grad(temp))) for temp in (10.0, 20.0, 40.0)}
    assert norms[20.0] / norms[40.0] == pytest.approx(1.0, abs=0.02)
    assert norms[10.0] / norms[40.0] == pytest.approx(1.0, abs=0.05)
    unscaled = {temp: float(jnp.linalg.norm(jax.grad(lambda s: distill.soft_cross_entropy(s, t, temp))(s)))
                for temp in (20.0, 40.0)}
    assert unscaled[20.0] / unscaled[40.0] == pytest.approx(4.0, rel=0.02)  # 1 / T^2 without the factor
    chex.assert_trees_all_close(grad(200.0), (s - t) / 10 / 8, atol=2e-4)
    chex.assert_trees_all_close(grad(200.0), jax.grad(lambda s: distill.logit_regression_loss(s, t))(s) / 10,
                                atol=2e-4)


def test_temperature_can_be_traced():
    temps = jnp.array([1.0, 2.0, 20.0])
    got = jax.jit(jax.vmap(lambda T: distill.hinton_loss(S, T_, Y, temperature=T, alpha=0.1)))(temps)
    np.testing.assert_allclose(got, [_hand_hinton(S, T_, Y, float(T), 0.1) for T in temps], rtol=1e-5)


# ----------------------------------------------------------------------------- hidden states, attention


def test_hidden_state_loss_value_and_gradients_into_the_projection():
    h = jnp.array([[1.0, 2.0], [0.0, -1.0]])
    g = jnp.array([[1.0, 0.0, 2.0], [0.5, 0.5, 0.5]])
    proj = {"kernel": jnp.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]), "bias": jnp.array([0.0, 0.0, 1.0])}
    # h @ W + b = [[1, 2, 2], [0, -1, 1]]; residuals [[0, 2, 0], [-0.5, -1.5, 0.5]]
    hand = 0.5 * ((0 + 4 + 0) + (0.25 + 2.25 + 0.25)) / 2
    np.testing.assert_allclose(distill.hidden_state_loss(h, g, proj), hand, rtol=1e-6)
    grads = jax.grad(distill.hidden_state_loss, argnums=(0, 2))(h, g, proj)
    r = distill.project(proj, h) - g
    chex.assert_trees_all_close(grads[1], {"kernel": h.T @ r / 2, "bias": r.sum(0) / 2}, atol=1e-6)
    assert float(jnp.abs(grads[0]).sum()) > 0  # and into the student
    with jax.enable_x64(True):
        p = distill.init_projection(jax.random.key(0), 2, 3, jnp.float64)
        h64, g64 = jnp.asarray(h, jnp.float64), jnp.asarray(g, jnp.float64)
        check_grads(lambda p, h: distill.hidden_state_loss(h, g64, p), (p, h64), order=2, modes=["rev"])
    with pytest.raises(ValueError, match="do not map student width 2 to teacher width 4"):
        distill.hidden_state_loss(h, jnp.zeros((2, 4)), proj)
    with pytest.raises(ValueError, match="share every axis"):
        distill.hidden_state_loss(h, jnp.zeros((3, 3)), proj)
    with pytest.raises(TypeError, match="'kernel' and 'bias'"):
        distill.hidden_state_loss(h, g, (proj["kernel"], proj["bias"]))


def test_attention_map_loss_is_the_mean_row_kl():
    a_t = jnp.array([0.5, 0.5, 0.0])
    a_s = jnp.array([0.25, 0.25, 0.5])
    row_kl = 0.5 * math.log(0.5 / 0.25) * 2  # 0 log 0 = 0
    teacher = jnp.stack([a_t, a_s, a_s]).reshape(1, 1, 3, 3)
    student = jnp.stack([a_s, a_s, a_s]).reshape(1, 1, 3, 3)
    np.testing.assert_allclose(distill.attention_map_loss(student, teacher), row_kl / 3, rtol=1e-6)
    assert float(distill.attention_map_loss(teacher, teacher)) == 0.0
    rng = np.random.default_rng(3)
    zs, zt = (jnp.asarray(rng.normal(size=(2, 4, 5, 5)), jnp.float32) for _ in range(2))
    probs = distill.attention_map_loss(jax.nn.softmax(zs), jax.nn.softmax(zt))
    np.testing.assert_allclose(distill.attention_map_loss(zs, zt, logits=True), probs, rtol=1e-5)
    with jax.enable_x64(True):
        zs64, zt64 = jnp.asarray(zs, jnp.float64), jnp.asarray(zt, jnp.float64)
        check_grads(lambda z: distill.attention_map_loss(z, zt64, logits=True), (zs64,), order=2, modes=["rev"])
        check_grads(lambda a: distill.attention_map_loss(a, jax.nn.softmax(zt64)), (jax.nn.softmax(zs64),),
                    order=1, modes=["rev"])
    with pytest.raises(ValueError, match=r"\(batch, heads, N, N\)"):
        distill.attention_map_loss(zs[0], zt[0], logits=True)
    with pytest.raises(ValueError, match="summing to 1"):
        distill.attention_map_loss(zs, zt)  # scores passed as probabilities
    with pytest.raises(ValueError, match="must match"):
        distill.attention_map_loss(zs, zt[:, :2], logits=True)
    with pytest.raises(TypeError, match="logits must be True or False"):
        distill.attention_map_loss(zs, zt, logits=1)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("temp,error", [(0.0, ValueError), (-1.0, ValueError), (float("nan"), ValueError),
                                        (float("inf"), ValueError), (True, TypeError), ("2", TypeError),
                                        (None, TypeError)])
def test_bad_temperatures_are_named(temp, error):
    with pytest.raises(error, match=r"temperature must be .* got " + repr(temp).replace("(", r"\(")[:4]):
        distill.hinton_loss(S, T_, Y, temperature=temp, alpha=0.5)


@pytest.mark.parametrize("alpha,error", [(-0.1, ValueError), (1.5, ValueError), (float("nan"), ValueError),
                                         (True, TypeError)])
def test_bad_alphas_are_named(alpha, error):
    with pytest.raises(error, match=r"alpha must be a number \[0.0, 1.0\], got " + repr(alpha)[:3]):
        distill.hinton_loss(S, T_, Y, temperature=2.0, alpha=alpha)


def test_mismatched_or_mistyped_logits_and_labels():
    with pytest.raises(ValueError, match=r"student_logits has shape \(2, 3\) but teacher_logits has shape \(2, 4\)"):
        distill.hinton_loss(S, jnp.zeros((2, 4)), Y, temperature=2.0, alpha=0.5)
    with pytest.raises(ValueError, match="must match"):
        distill.logit_regression_loss(S, T_[:1])
    with pytest.raises(TypeError, match="floating-point array, got dtype bool"):
        distill.logit_regression_loss(S > 0, T_)
    with pytest.raises(TypeError, match="floating-point array, got dtype int32"):
        distill.soft_cross_entropy(S, T_.astype(jnp.int32))
    with pytest.raises(TypeError, match="labels must be integer"):
        distill.hinton_loss(S, T_, Y.astype(jnp.float32), temperature=2.0, alpha=0.5)
    with pytest.raises(ValueError, match=r"labels have shape \(3,\)"):
        distill.hard_label_loss(S, jnp.array([0, 1, 2]))
    with pytest.raises(ValueError, match="method must be one of"):
        distill.method_loss("kl")
    with pytest.raises(ValueError, match="needs a temperature"):
        distill.method_loss("hinton", temperature=2.0)
    with pytest.raises(ValueError, match="takes no temperature"):
        distill.method_loss("logits", temperature=2.0)
    with pytest.raises(ValueError, match="temperature must be"):
        distill.method_loss("hinton", temperature=-2.0, alpha=0.1)


# ----------------------------------------------------------------------------- teacher and fit


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6, 6, 1)).astype(np.float32)
    return x, (x.reshape(n, -1)[:, :3].argmax(-1)).astype(np.int32)


def test_cached_targets_round_trip_and_reject_bad_labels():
    x, y = _data()
    teacher = MLP((16, 3))
    tp = teacher.init(jax.random.key(1), x[:1])["params"]
    apply = lambda p, x: teacher.apply({"params": p}, x)
    z = distill.teacher_logits(apply, tp, x, batch_size=64)
    chex.assert_trees_all_close(z, apply(tp, x), atol=1e-5)
    labels, logits = distill.unpack_targets(distill.pack_targets(y, z))
    np.testing.assert_array_equal(labels, y)
    np.testing.assert_array_equal(logits, z)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        distill.pack_targets(y + 1, z)
    with pytest.raises(TypeError, match="labels must be integer"):
        distill.pack_targets(y.astype(np.float32), z)
    with pytest.raises(ValueError, match="NaN or infinite"):
        distill.teacher_logits(lambda p, x: apply(p, x) * jnp.nan, tp, x)


@pytest.mark.parametrize("method,settings", [("hard", {}), ("hinton", {"temperature": 4.0, "alpha": 0.1}),
                                             ("logits", {})])
def test_cached_and_on_the_fly_losses_agree(method, settings):
    x, y = _data()
    teacher, student = MLP((16, 3)), MLP((4, 3))
    tp = teacher.init(jax.random.key(1), x[:1])["params"]
    sp = student.init(jax.random.key(2), x[:1])["params"]
    t_apply = lambda p, x: teacher.apply({"params": p}, x)
    s_apply = lambda p, x: student.apply({"params": p}, x)
    loss = distill.method_loss(method, **settings)
    packed = distill.pack_targets(y, distill.teacher_logits(t_apply, tp, x))
    cached = jax.value_and_grad(distill.cached_loss_fn(s_apply, loss))(sp, x[:50], packed[:50])
    fly = jax.value_and_grad(distill.on_the_fly_loss_fn(s_apply, t_apply, tp, loss))(sp, x[:50], y[:50])
    chex.assert_trees_all_close(cached, fly, atol=1e-5)


@pytest.mark.parametrize("make", [lambda p: hashed(1 / 4), lambda p: masked(jax.tree.map(lambda w: w != 0, p))],
                         ids=["hashed", "pruned"])
def test_a_transformed_student_distils_in_fit(make):
    x, y = _data(400)
    teacher, student = MLP((32, 3)), MLP((16, 3))
    tp = teacher.init(jax.random.key(1), x[:1])["params"]
    t_apply = lambda p, x: teacher.apply({"params": p}, x)
    tp = fit(*classifier(t_apply)[:1], tp, optax.adam(1e-2), (x, y), epochs=5, batch_size=50, progress=False,
             loop="python").theta
    params = student.init(jax.random.key(2), x[:1])["params"]
    params = jax.tree.map(lambda w: w.at[..., 0].set(0.0) if w.ndim == 2 else w, params)  # some "pruned" zeros
    t = make(params)
    state = t.init(jax.random.key(3), params)
    apply = distill.transformed_apply(lambda p, x: student.apply({"params": p}, x), t, state)
    loss_fn = distill.cached_loss_fn(apply, distill.method_loss("hinton", temperature=2.0, alpha=0.1))
    packed = distill.pack_targets(y, distill.teacher_logits(t_apply, tp, x))
    agree = lambda th: float(jnp.mean(apply(th, x).argmax(-1) == packed[:, 1:].argmax(-1)))
    before, agree_before = float(loss_fn(state.theta, x, packed)), agree(state.theta)
    theta = fit(loss_fn, state.theta, optax.adam(1e-2), (x, packed), epochs=5, batch_size=50, progress=False,
                loop="python").theta
    assert float(loss_fn(theta, x, packed)) < before
    assert agree(theta) > max(0.6, agree_before + 0.2)  # the student now follows the teacher
    w = t.apply(state._replace(theta=theta))["Dense_0"]["kernel"]
    assert (float(jnp.abs(w[..., 0]).max()) == 0.0) == (t.codec is None)  # the pruned student keeps its zeros
