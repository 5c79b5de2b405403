"""The CPU kernels one by one (pyvae._core._kernels) against the NumPy
reference (tests/reference.py), at MNIST's shapes: 784 features, 400 hidden
units, 20 latent dimensions, batches of 128 and 1024 rows. These are the
shapes where the products are blocked (and transposed in the backward pass)
and the Bernoulli pass is vectorized, which tiny shapes never reach.

Tolerances are float32's: elementwise kernels rtol 1e-5 entry by entry; sums
over hundreds of terms rtol 1e-4 relative to the largest magnitude (close_sum).
"""

import numpy as np
import pytest

import reference
from pyvae import _core

K = _core._kernels
D, H, Z = 784, 400, 20
THREADS = 2


@pytest.fixture(params=[128, pytest.param(1024, marks=pytest.mark.slow)], ids=["batch128", "batch1024"])
def N(request):
    return request.param


def f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def close_sum(got, want, rtol=1e-4):
    """A float32 sum against its float64 reference: |got - want| <= rtol * (|want| +
    max|want|), i.e. relative to the largest magnitude, the scale a sum whose
    terms cancel is rounded at. Elementwise results use assert_allclose instead."""
    want = np.asarray(want, np.float64)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=rtol * max(1.0, np.abs(want).max()))


def inputs(N, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((N, D)) < 0.2).astype(np.float32)
    W1 = f32(rng.normal(scale=1 / np.sqrt(D), size=(D, H)))
    b1 = f32(rng.normal(scale=0.1, size=H))
    return rng, x, W1, b1


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)])
def test_matmul_blocked_and_transposed(N, trans_a, trans_b):
    rng = np.random.default_rng(1)
    A = f32(rng.normal(size=(N, D)))
    B = f32(rng.normal(size=(D, H)))
    # Stored transposed where asked, so that op(stored) is always A (N, D) and B (D, H).
    C = K.matmul(f32(A.T) if trans_a else A, f32(B.T) if trans_b else B, trans_a, trans_b, THREADS)
    close_sum(C, A.astype(np.float64) @ B.astype(np.float64))


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_dense_forward(N, activation):
    _, x, W1, b1 = inputs(N)
    close_sum(K.dense_forward(x, W1, b1, True, activation, THREADS), reference.dense(x, W1, b1, activation))
    close_sum(K.dense_forward(x, W1, b1, False, activation, THREADS), reference.dense(x, W1, b1))


def ulps(got, exact):
    """|got - exact| in units in the last place of the float32 nearest to exact."""
    exact = np.asarray(exact, np.float64)
    unit = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs(np.asarray(got, np.float64) - exact) / unit


def test_tanh_within_2_5_ulp_over_the_float_range():
    """The vectorized tanh of the forward epilogue against float64's, on every
    97th float from 0 to 20 and its negation (11 million values: expm1's
    polynomial alone below 0.17, its range reduction above, the worst error
    near 4.5, the saturation near 9), then the edge values. b = -0.0 leaves the
    input exact (x + -0.0 = x)."""
    positive = np.arange(0, np.float32(20.0).view(np.uint32), 97, dtype=np.uint32).view(np.float32)
    x = np.concatenate([positive, -positive])
    width = 1024  # rows of 1024 columns: the vector loop, as in a hidden layer
    padded = np.concatenate([x, np.zeros(-len(x) % width, np.float32)]).reshape(-1, width)
    got = K.bias_activation(padded, f32(np.full(width, -0.0)), True, "tanh").ravel()[: len(x)]
    err = ulps(got, np.tanh(x.astype(np.float64)))
    assert err.max() <= 2.5, f"max error {err.max():.2f} ulp at x = {x[err.argmax()]!r}"
    assert np.array_equal(got[len(positive):], -got[: len(positive)])  # odd, exactly

    tiny = np.float32(np.finfo(np.float32).smallest_subnormal)
    edges = f32([0.0, -0.0, np.inf, -np.inf, np.nan, tiny, -tiny, 1e-30, 0.1732868, np.nextafter(np.float32(0.1732868), 0), 4.5050926,
                 9.0, -9.0, 9.01, 12.0, 50.0, 100.0, 1e30, np.finfo(np.float32).max, -np.finfo(np.float32).max])
    got = K.bias_activation(edges.reshape(1, -1), f32(np.full(len(edges), -0.0)), True, "tanh").ravel()
    with np.errstate(invalid="ignore"):
        exact = np.tanh(edges.astype(np.float64))
    np.testing.assert_array_equal(np.signbit(got), np.signbit(exact.astype(np.float32)))  # -0 stays -0
    assert np.isnan(got[4]) and not np.isnan(np.delete(got, 4)).any()
    assert (ulps(np.delete(got, 4), np.delete(exact, 4)) <= 2.5).all(), list(zip(edges, got, exact))
    assert got[5] == tiny and got[6] == -tiny  # a subnormal comes back unchanged


def double_ulps(got, exact):
    """|got - exact| in units in the last place of the float64 nearest to exact (exact: long double)."""
    unit = np.spacing(np.abs(exact.astype(np.float64))).astype(np.longdouble)
    return np.abs((np.asarray(got, np.longdouble) - exact) / unit).astype(np.float64)


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 60, reason="needs an extended-precision long double")
def test_box_muller_log_and_cos_within_2_double_ulp():
    """The vector Box-Muller's log (of every value rng.h's uniform_open gives:
    [2^-54, 1), uniform and log-uniform, and next to 1 and sqrt(1/2) where the
    range reduction switches) and cos (on [0, 2 pi], and next to each multiple of
    pi/2 where the quadrant changes) against long double's."""
    rng = np.random.default_rng(0)
    u = np.concatenate([rng.uniform(0, 1, 400_000), np.exp(-rng.uniform(0, 37.4, 400_000)),
                        1 - rng.uniform(0, 1e-6, 50_000), np.sqrt(0.5) + rng.uniform(-1e-9, 1e-9, 50_000),
                        [2.0**-54, 1 - 2.0**-53, 1 - 2.0**-54, 0.5, np.sqrt(0.5), np.nextafter(np.sqrt(0.5), 0)]])
    u = u[(u > 0) & (u < 1)]
    err = double_ulps(K.log_positive_normal(u), np.log(u.astype(np.longdouble)))
    assert err.max() <= 2.0, f"log: {err.max():.2f} ulp at u = {u[err.argmax()]!r}"

    quarter_turns = np.pi / 2 * np.arange(5)
    p = np.concatenate([rng.uniform(0, 2 * np.pi, 800_000), 6.283185307179586 * rng.uniform(0, 1, 200_000),
                        (quarter_turns[:, None] + rng.uniform(-1e-6, 1e-6, (5, 20_000))).ravel(), quarter_turns])
    p = p[(p >= 0) & (p <= 2 * np.pi)]
    exact = np.cos(p.astype(np.longdouble))
    got = K.cos_zero_to_two_pi(p)
    err = double_ulps(got, exact)
    assert err.max() <= 1.5, f"cos: {err.max():.2f} ulp at p = {p[err.argmax()]!r}"
    assert got[-5:][[0, 2, 4]].tolist() == [1.0, -1.0, 1.0]


def test_gaussian_noise_is_the_c_library_draw_rounded():
    """fill_noise in float32 (the vector Box-Muller where the CPU has FMA) against
    the float64 draw (the C library's log and cos) rounded to float32: on 2.1
    million draws, each equal or 1 ulp apart, and at most 2 apart at all (about
    1 in 10^8 lands close enough to a rounding boundary to differ); the same for
    every thread count."""
    keys = np.random.default_rng(1).integers(0, 2**63, 100_000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    for S, Z in ((1, 10), (3, 7)):
        got = K.fill_noise(keys, S, Z, False, 1)
        want = K.fill_noise_float64(keys, S, Z, False).astype(np.float32)
        differ = got != want
        assert differ.sum() <= 2, f"{differ.sum()} of {got.size} draws differ"
        assert (np.abs(got[differ] - want[differ]) <= np.spacing(np.abs(want[differ]))).all()
        np.testing.assert_array_equal(K.fill_noise(keys, S, Z, False, 2), got)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_dense_backward(N, activation):
    """The encoder's second layer (H -> 2Z) below a hidden layer: dW = inp^T d,
    db = colsum(d), d_inp = (d W^T) * act'(inp), the transposed products."""
    rng, x, W1, b1 = inputs(N)
    h = f32(reference.dense(x, W1, b1, activation))  # the input: a hidden layer's output
    W2 = f32(rng.normal(scale=1 / np.sqrt(H), size=(H, 2 * Z)))
    d_pre = f32(rng.normal(size=(N, 2 * Z)))
    d_inp, dW, db = K.dense_backward(d_pre, h, W2, True, activation, THREADS)
    h64, d64 = h.astype(np.float64), d_pre.astype(np.float64)
    close_sum(dW, h64.T @ d64)
    close_sum(db, d64.sum(0))
    close_sum(d_inp, (d64 @ W2.T.astype(np.float64)) * reference.activation_grad(h64, activation))
    # The first layer: the data below needs no activation's derivative, and a
    # wide weight gradient (784 x 400) over the batch.
    d_pre = f32(rng.normal(size=(N, H)))
    d_inp, dW, db = K.dense_backward(d_pre, x, W1, False, activation, THREADS)
    close_sum(dW, x.T.astype(np.float64) @ d_pre.astype(np.float64))
    close_sum(d_inp, d_pre.astype(np.float64) @ W1.T.astype(np.float64))


@pytest.mark.parametrize("width", [5, 8, 18, 77, 200])
def test_bias_gradient_sums_rows_in_order(width):
    """db is each column's sum over the rows in order, in float32, whatever the
    column's place in the kernel's register strips (64 and 8 columns, then the
    rest) and the thread count: the bits of a sequential sum."""
    rng = np.random.default_rng(4)
    x, W = f32(rng.normal(size=(115, 3))), f32(rng.normal(size=(3, width)))
    d_pre = f32(rng.normal(size=(115, width)) * np.exp(rng.normal(scale=3, size=(115, 1))))
    want = np.cumsum(d_pre, axis=0, dtype=np.float32)[-1]
    for threads in (1, 2):
        np.testing.assert_array_equal(K.dense_backward(d_pre, x, W, False, "tanh", threads)[2], want)


@pytest.mark.parametrize("rows, width", [(33, 7), (128, 784)])
def test_dense_backward_into_zeros_is_accumulating_into_zeros(rows, width):
    """A training step's gradient buffer holds zeros, and a small weight product
    writes it (beta = 0, what OpenBLAS's small-matrix kernels need) instead of
    adding to it: the same bits, at a small table's shape and at MNIST's."""
    rng = np.random.default_rng(3)
    x, W = f32(rng.normal(size=(rows, width))), f32(rng.normal(size=(width, H)))
    d_pre = f32(rng.normal(size=(rows, H)))
    accumulated = K.dense_backward(d_pre, x, W, False, "tanh", THREADS)
    written = K.dense_backward(d_pre, x, W, False, "tanh", THREADS, into_zeros=True)
    for want, got in zip(accumulated, written):
        np.testing.assert_array_equal(got, want)


def sparse_batch(rng, N, density):
    """Grey levels where a pixel is lit, zeros elsewhere (MNIST: ~19% lit), and a
    few rows with no pixel lit at all."""
    x = np.where(rng.random((N, D)) < density, rng.random((N, D)), 0.0)
    x[[0, N // 2]] = 0.0
    x[:, :28] = 0.0  # features no row holds, as MNIST's border pixels
    return f32(x)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_sparse_first_layer_matches_the_dense_one(N, activation):
    """The first encoder layer from the input's nonzeros (sparse_input.h): forward,
    dW and db against the float64 reference, and bit-identical across thread counts."""
    rng, _, W1, b1 = inputs(N)
    x = sparse_batch(rng, N, 0.19)
    assert K.sparse_input_used(x) and not K.sparse_input_used(f32(rng.random((N, D))))
    x64 = x.astype(np.float64)
    for hidden in (True, False):
        out = K.sparse_dense_forward(x, W1, b1, hidden, activation, THREADS)
        close_sum(out, reference.dense(x64, W1, b1, activation if hidden else None))
        assert np.array_equal(out, K.sparse_dense_forward(x, W1, b1, hidden, activation, 1))
    d_pre = f32(rng.normal(size=(N, H)))
    dW, db = K.sparse_dense_backward(d_pre, x, THREADS)
    close_sum(dW, x64.T @ d_pre.astype(np.float64))
    close_sum(db, d_pre.astype(np.float64).sum(0))
    dW1, db1 = K.sparse_dense_backward(d_pre, x, 1)
    assert np.array_equal(dW, dW1) and np.array_equal(db, db1)
    # Widths that leave every narrower block and a scalar tail (8 floats a vector).
    for O in (1, 7, 8, 24, 40, 100):
        W = f32(rng.normal(size=(D, O)))
        close_sum(K.sparse_dense_forward(x, W, b1[:O], False, activation, THREADS), x64 @ W + b1[:O])
        d = f32(rng.normal(size=(N, O)))
        close_sum(K.sparse_dense_backward(d, x, THREADS)[0], x64.T @ d.astype(np.float64))


def test_sparse_first_layer_propagates_nan():
    rng, _, W1, b1 = inputs(8)
    x = sparse_batch(rng, 8, 0.1)
    x[3, 100] = np.nan
    out = K.sparse_dense_forward(x, W1, b1, False, "relu", THREADS)
    assert np.isnan(out[3]).all() and np.isfinite(np.delete(out, 3, axis=0)).all()


@pytest.mark.parametrize("n_in", [1, 7, 9, 29, 64])
def test_sparse_first_layer_any_input_width(n_in):
    """The row compression takes 8 features at a time, then the rest one by one:
    widths around a multiple of 8, -0.0 counted as a zero, NaN in the last
    feature (the scalar tail) as a nonzero."""
    rng = np.random.default_rng(n_in)
    x = np.where(rng.random((40, n_in)) < 0.2, rng.random((40, n_in)), 0.0)
    x[5] = -0.0
    x = f32(x)
    W, b = f32(rng.normal(size=(n_in, 24))), f32(rng.normal(size=24))
    out = K.sparse_dense_forward(x, W, b, False, "relu", THREADS)
    close_sum(out, x.astype(np.float64) @ W + b)
    d = f32(rng.normal(size=(40, 24)))
    close_sum(K.sparse_dense_backward(d, x, THREADS)[0], x.T.astype(np.float64) @ d.astype(np.float64))
    x[7, -1] = np.nan
    out = K.sparse_dense_forward(x, W, b, False, "relu", THREADS)
    assert np.isnan(out[7]).all() and np.isfinite(np.delete(out, 7, axis=0)).all()


def test_sparse_rows_built_in_parallel():
    """Enough rows that the compression splits them over the team. A row's
    compression may write a few slots past its end, which the next row then
    overwrites; the last row of a chunk must not, or it would overwrite the next
    chunk's first row written by another thread. Rows made to spill (one
    nonzero, then zeros) sit before each boundary, empty rows after it, so a
    spill would reach the first row holding nonzeros."""
    rng = np.random.default_rng(5)
    n_rows, n_in = 24000, 29  # 696,000 entries: above the parallel threshold
    x = np.where(rng.random((n_rows, n_in)) < 0.2, rng.random((n_rows, n_in)), 0.0)
    chunk = (n_rows + 7) // 8
    for start in range(chunk, n_rows, chunk):
        x[start - 1] = 0.0
        x[start - 1, 0] = 1.0
        x[start:start + 3] = 0.0
    x = f32(x)
    W, b = f32(rng.normal(size=(n_in, 24))), f32(rng.normal(size=24))
    expected = K.sparse_dense_forward(x, W, b, False, "relu", 1)
    close_sum(expected, x.astype(np.float64) @ W + b)
    for _ in range(10):  # the helpers stay awake between calls: chunks run at once
        assert np.array_equal(K.sparse_dense_forward(x, W, b, False, "relu", THREADS), expected)


@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian_isotropic"])
@pytest.mark.parametrize("rows, columns, draws", [(33, 7, 1), (33, 7, 2), (2000, 9, 1)],
                         ids=["small-table", "two-draws", "parallel-size"])
def test_gaussian_single_pass_is_the_two_passes(likelihood, rows, columns, draws):
    """The training step's single pass over a Gaussian batch gives the two
    passes' results bit for bit, missing entries included; a batch of more than
    16,384 entries takes the two (parallel) passes themselves."""
    rng = np.random.default_rng(4)
    x = f32(rng.normal(size=(rows, columns)))
    x[rng.random(x.shape) < 0.2] = np.nan
    out = f32(rng.normal(size=(draws * rows, columns)))
    lv = f32(rng.normal(scale=0.3, size=columns if likelihood == "gaussian" else 1))
    weight = 1 / (draws * rows)
    recon = K.likelihood_forward(likelihood, out, x, lv, 1e-6, True, THREADS)
    d_out, d_lv = K.likelihood_backward(likelihood, out, x, lv, 1e-6, weight, True, THREADS)
    fused = K.gaussian_forward_backward(out, x, lv, likelihood == "gaussian_isotropic", 1e-6, weight, True, THREADS)
    for want, got in zip((recon, d_out, d_lv), fused):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli", "gaussian", "gaussian_isotropic"])
@pytest.mark.parametrize("missing", [False, True], ids=["observed", "missing"])
def test_likelihood_forward_and_backward(N, likelihood, missing):
    rng, x, _, _ = inputs(N, seed=2)
    S = 2
    if likelihood == "continuous_bernoulli":
        x = f32(rng.random(x.shape))  # grey levels in [0, 1]
    elif likelihood != "bernoulli":
        x = f32(rng.normal(size=x.shape))
    if missing:
        x[rng.random(x.shape) < 0.1] = np.nan
    out = f32(rng.normal(scale=2.0, size=(S * N, D)))
    out[0, :8] = [0.0, 1e-4, -1e-3, 0.2, -0.3, 5.0, -12.0, 15.0]  # the continuous Bernoulli's series and tails
    lv = f32(rng.normal(scale=0.3, size=D if likelihood == "gaussian" else 1))
    floor = 0.05 if likelihood.startswith("gaussian") else 0.0
    x_rows = np.tile(x, (S, 1)).astype(np.float64)  # row (s, i) is s * N + i
    out64 = out.astype(np.float64)
    weight = 1 / (S * N)
    recon = K.likelihood_forward(likelihood, out, x, lv, floor, missing, THREADS)
    d_out, d_lv = K.likelihood_backward(likelihood, out, x, lv, floor, weight, missing, THREADS)
    if likelihood == "bernoulli":
        close_sum(recon, reference.bernoulli_log_prob(x_rows, out64).sum(-1))
        np.testing.assert_allclose(d_out, weight * reference.bernoulli_grad(x_rows, out64), rtol=1e-5,
                                   atol=1e-6 * weight)
        # The training step's single pass gives the two passes' results, bit for bit.
        recon_1, d_out_1 = K.bernoulli_forward_backward(out, x, weight, missing, THREADS)
        assert np.array_equal(recon_1, recon) and np.array_equal(d_out_1, d_out)
        return
    if likelihood == "continuous_bernoulli":
        def log_prob(a):
            norm = np.where(np.isnan(x_rows), 0.0, reference.continuous_bernoulli_log_norm(a))
            return reference.bernoulli_log_prob(x_rows, a) + norm

        close_sum(recon, log_prob(out64).sum(-1))
        h = 1e-6  # central differences of the reference, entry by entry
        numeric = -(log_prob(out64 + h) - log_prob(out64 - h)) / (2 * h)
        np.testing.assert_allclose(d_out, weight * numeric, rtol=1e-4, atol=1e-5 * weight)
        return
    lv_full = np.broadcast_to(lv.astype(np.float64), (D,))
    close_sum(recon, reference.gaussian_log_prob(x_rows, out64, lv_full, floor).sum(-1))
    d_mean, d_logvar = reference.gaussian_grads(x_rows, out64, lv_full, floor)
    # Elementwise, one division each: relative 1e-5 entry by entry (atol only for
    # the entries the mask or x = mean make exactly zero).
    np.testing.assert_allclose(d_out, weight * d_mean, rtol=1e-5, atol=1e-7 * weight)
    d_lv_want = weight * d_logvar.sum(0)
    close_sum(d_lv, d_lv_want if likelihood == "gaussian" else [d_lv_want.sum()])


def test_posterior_exp_within_1_05_ulp():
    """The posterior's exp(logvar / 2), one vector pass over a batch's entries:
    z = mu + exp(logvar / 2) * e with mu = 0 and e = 1 is the exp itself. Every
    1,001st float of logvar / 2 in [-43.5, 43.5] (|logvar| <= 30 after the clamp,
    with room) and a row of each odd width (the pass runs over rows x Z), against
    float64; then overflow to inf, NaN, and a subnormal's e^x = 1."""
    positive = np.arange(0, np.float32(43.5).view(np.uint32), 1001, dtype=np.uint32).view(np.float32)
    half_lv = np.concatenate([positive, -positive])
    for Z in (7, 64):
        values = np.concatenate([half_lv, np.zeros(-len(half_lv) % Z, np.float32)]).reshape(-1, Z)
        head = np.hstack([np.zeros_like(values), 2 * values])  # 2x: exact, so lv / 2 is the value itself
        _, z = K.reparameterize_forward(head, np.ones((1,) + values.shape, np.float32), "gaussian", THREADS)
        err = ulps(z.ravel(), np.exp(values.ravel().astype(np.float64)))
        assert err.max() <= 1.05, f"max error {err.max():.3f} ulp at {values.ravel()[err.argmax()]!r}"
    edges = f32([100.0, 88.8, np.inf, np.nan, -0.0, np.float32(np.finfo(np.float32).smallest_subnormal)])
    head = np.hstack([np.zeros_like(edges), 2 * edges]).reshape(1, -1)
    _, z = K.reparameterize_forward(head, np.ones((1, 1, len(edges)), np.float32), "gaussian", THREADS)
    z = z.ravel()
    assert np.isposinf(z[:3]).all() and np.isnan(z[3]) and z[4] == 1.0 and z[5] == 1.0, z


@pytest.mark.parametrize("posterior", ["gaussian", "logistic", "laplace"])
def test_reparameterization_and_kl(N, posterior):
    rng = np.random.default_rng(3)
    S = 2
    head = f32(np.hstack([rng.normal(size=(N, Z)), rng.normal(scale=0.5, size=(N, Z))]))
    noise = f32(rng.normal(size=(S, N, Z)) if posterior == "gaussian" else rng.uniform(0.01, 0.99, (S, N, Z)))
    eps, z = K.reparameterize_forward(head, noise, posterior, THREADS)
    want_eps, log_density = reference.standardized(posterior, noise.astype(np.float64))
    mu, logvar = head[:, :Z].astype(np.float64), head[:, Z:].astype(np.float64)
    np.testing.assert_allclose(eps, want_eps, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z, mu + np.exp(0.5 * logvar) * want_eps, rtol=1e-5, atol=1e-5)
    # Pathwise: d mu = sum_s dz, d logvar = sum_s dz * exp(logvar / 2) * eps / 2.
    dz = f32(rng.normal(size=(S, N, Z)))
    d_head = K.reparameterize_backward(dz, head, eps, THREADS)
    dz64, eps64 = dz.astype(np.float64), eps.astype(np.float64)
    close_sum(d_head[:, :Z], dz64.sum(0), rtol=1e-5)
    close_sum(d_head[:, Z:], (dz64 * 0.5 * np.exp(0.5 * logvar) * eps64).sum(0), rtol=1e-5)
    # Monte Carlo KL: log q(z|x) - log p(z) per draw.
    kl = K.kl_mc_forward(head, eps, z, posterior, THREADS).reshape(S, N)
    z64 = z.astype(np.float64)
    want = (log_density(eps64) - 0.5 * logvar).sum(-1) - (-0.5 * z64**2 - 0.5 * reference.LOG2PI).sum(-1)
    close_sum(kl, want, rtol=1e-5)


def test_kl_analytic_forward_and_backward(N):
    rng = np.random.default_rng(4)
    head = f32(np.hstack([rng.normal(size=(N, Z)), rng.normal(scale=0.5, size=(N, Z))]))
    mu, logvar = head[:, :Z].astype(np.float64), head[:, Z:].astype(np.float64)
    close_sum(K.kl_analytic_forward(head), reference.kl_analytic(mu, logvar), rtol=1e-5)
    d_head = K.kl_analytic_backward(head, 0.5)
    np.testing.assert_allclose(d_head[:, :Z], 0.5 * mu, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(d_head[:, Z:], 0.5 * 0.5 * (np.exp(logvar) - 1), rtol=1e-5, atol=1e-7)
