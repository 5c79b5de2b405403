"""Per-column likelihoods (likelihood="mixed") in the core: the hand-derived
gradients against central finite differences (float64), the forward pass
against scipy's distributions, and the means and draws of each kind."""

import numpy as np
import pytest
from scipy import special, stats

from pyvae import _core
from reference import forward
from test_gradients import finite_difference_check, random_params

# One block of every kind, two Gaussian runs and two categorical groups.
COLUMNS = [("gaussian", 1), ("bernoulli", 1), ("poisson", 1), ("categorical", 3), ("gaussian", 1),
           ("poisson", 1), ("categorical", 2)]
D = sum(width for _, width in COLUMNS)
Z, N, S = 2, 4, 2


def make_model(kl="analytic", activation="tanh", hidden=(4, 3), missing=False, dtype=np.float64, variance_floor=0.0,
               columns=COLUMNS, n_features=D, n_mc_samples=S):
    cls = _core.Model64 if dtype == np.float64 else _core.Model32
    return cls(n_features=n_features, n_components=Z, hidden_layer_sizes=list(hidden), activation=activation,
               likelihood="mixed", kl=kl, posterior="gaussian", gradient_estimator="reparameterization",
               n_mc_samples=n_mc_samples, beta=1.0, missing=missing, variance_floor=variance_floor,
               columns=columns, n_threads=1)


def mixed_rows(n, rng, columns=COLUMNS):
    """n rows of data of the blocks' kinds: normals, 0/1, counts, one-hot groups."""
    parts = []
    for kind, width in columns:
        if kind in ("gaussian", "gaussian_heteroscedastic"):
            parts.append(rng.normal(size=(n, width)))
        elif kind == "bernoulli":
            parts.append(rng.integers(0, 2, size=(n, width)).astype(float))
        elif kind == "poisson":
            parts.append(rng.poisson(2.0, size=(n, width)).astype(float))
        else:
            parts.append(np.eye(width)[rng.integers(0, width, size=n)])
    return np.hstack(parts)


def make_batch(seed=0, missing=False, columns=COLUMNS):
    rng = np.random.default_rng(seed)
    x = mixed_rows(N, rng, columns)
    if missing:
        x[0, 0] = x[1, 2] = x[3, 1] = np.nan  # a Gaussian, a count, a binary entry
        x[2, 3:6] = np.nan  # a whole categorical group
    x_enc = np.nan_to_num(x, nan=0.0)
    noise = rng.normal(size=(S, N, Z))
    return x, x_enc, noise


@pytest.mark.parametrize("kl", ["analytic", "mc"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("missing", [False, True])
@pytest.mark.parametrize("variance_floor", [0.0, 0.7])
def test_gradient_matches_finite_differences(kl, activation, missing, variance_floor):
    model = make_model(kl, activation, missing=missing, variance_floor=variance_floor)
    x, x_enc, noise = make_batch(missing=missing)
    errors = finite_difference_check(model, random_params(model), x, x_enc, noise)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, f"{worst}: relative error {errors[worst]:.2e}"


# Heteroscedastic columns in two separate blocks (their log-variances follow the means
# in column order), beside every other kind; missing entries in each (make_batch).
HETERO_COLUMNS = [("gaussian_heteroscedastic", 1), ("bernoulli", 1), ("poisson", 1), ("categorical", 3),
                  ("gaussian", 1), ("gaussian_heteroscedastic", 1), ("categorical", 2)]


@pytest.mark.parametrize("kl", ["analytic", "mc"])
@pytest.mark.parametrize("missing", [False, True])
def test_heteroscedastic_columns_gradient_matches_finite_differences(kl, missing):
    model = make_model(kl, missing=missing, variance_floor=0.2, columns=HETERO_COLUMNS)
    shapes = {name: shape for name, _, shape in model.layout()}
    assert shapes["decoder.2.bias"] == (D + 2,)  # the decoder's output: D means, then 2 log-variances
    x, x_enc, noise = make_batch(missing=missing, columns=HETERO_COLUMNS)
    errors = finite_difference_check(model, random_params(model), x, x_enc, noise)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("columns", [COLUMNS, HETERO_COLUMNS], ids=["kinds", "heteroscedastic"])
@pytest.mark.parametrize("missing", [False, True])
def test_forward_matches_scipy_reference(missing, columns):
    model = make_model("mc", missing=missing, variance_floor=0.3, columns=columns)
    x, x_enc, noise = make_batch(seed=3, missing=missing, columns=columns)
    params = random_params(model)
    got = model.loss_and_grad(params, x, x_enc, noise)
    loss, recon, _, _ = forward(model, params, x, x_enc, noise, activation="tanh", likelihood="mixed", kl="mc",
                                variance_floor=0.3, columns=columns)
    np.testing.assert_allclose(got["recon"], recon, rtol=1e-10)
    np.testing.assert_allclose(got["loss"], loss, rtol=1e-10)


def test_only_gaussian_columns_learn_a_variance():
    model = make_model()
    x, x_enc, noise = make_batch()
    grad = model.loss_and_grad(random_params(model), x, x_enc, noise)["grad"]
    (offset, shape), = [(o, s) for name, o, s in model.layout() if name.endswith("noise_logvar")]
    d_lv = grad[offset:offset + shape[0]]
    gaussian = np.array([kind == "gaussian" for kind, width in COLUMNS for _ in range(width)])
    assert np.all(d_lv[gaussian] != 0) and np.all(d_lv[~gaussian] == 0)


def test_float32_core_matches_float64_core():
    x, x_enc, noise = make_batch(seed=5, missing=True)
    m64, m32 = make_model(missing=True), make_model(missing=True, dtype=np.float32)
    params = random_params(m64)
    g64 = m64.loss_and_grad(params, x, x_enc, noise)
    g32 = m32.loss_and_grad(params.astype(np.float32), x.astype(np.float32), x_enc.astype(np.float32),
                            noise.astype(np.float32))
    np.testing.assert_allclose(g32["loss"], g64["loss"], rtol=1e-5)
    np.testing.assert_allclose(g32["grad"], g64["grad"], rtol=1e-3, atol=1e-5)


def linear_decoder_with_outputs(outputs, dtype=np.float64, columns=COLUMNS):
    """A linear model whose decoder puts out `outputs` (D,) for every z."""
    model = make_model(hidden=(), dtype=dtype, columns=columns, n_features=len(outputs))
    params = model.init_params(0)
    tensors = {name: (offset, shape) for name, offset, shape in model.layout()}
    offset, shape = tensors["decoder.0.weight"]
    params[offset:offset + int(np.prod(shape))] = 0
    offset, _ = tensors["decoder.0.bias"]
    params[offset:offset + len(outputs)] = outputs
    offset, shape = tensors["decoder.noise_logvar"]
    params[offset:offset + shape[0]] = np.log(0.25)  # sd 0.5 for the Gaussian columns
    return model, params


OUTPUTS = np.array([0.3, 1.2, np.log(3.5), 0.5, -1.0, 1.5, -2.0, np.log(45.0), 0.2, -0.4])


def test_decode_gives_each_kinds_mean():
    model, params = linear_decoder_with_outputs(OUTPUTS)
    mean = model.decode(params, np.zeros((2, Z)))
    expected = np.concatenate([[0.3, special.expit(1.2), 3.5], special.softmax(OUTPUTS[3:6]), [-2.0, 45.0],
                               special.softmax(OUTPUTS[8:10])])
    np.testing.assert_allclose(mean, np.tile(expected, (2, 1)), rtol=1e-12)


def test_draws_follow_each_kinds_distribution():
    n = 40_000
    model, params = linear_decoder_with_outputs(OUTPUTS)
    x = model.sample_observations(params, np.zeros((n, Z)), 7)
    # Gaussian columns: mean and sd 0.5.
    for k, mean in [(0, 0.3), (6, -2.0)]:
        assert abs(x[:, k].mean() - mean) < 4 * 0.5 / np.sqrt(n)
        assert abs(x[:, k].std() - 0.5) < 0.02
    # Binary: 0/1 with P(1) = sigmoid(1.2).
    assert set(np.unique(x[:, 1])) == {0.0, 1.0}
    p = special.expit(1.2)
    assert abs(x[:, 1].mean() - p) < 4 * np.sqrt(p * (1 - p) / n)
    # Counts below and above the sampler's switch at rate 30: a chi-square test of the histogram.
    for k, rate in [(2, 3.5), (7, 45.0)]:
        assert np.all(x[:, k] == np.round(x[:, k])) and x[:, k].min() >= 0
        edges = np.arange(stats.poisson.ppf(1e-4, rate), stats.poisson.ppf(1 - 1e-4, rate) + 1)
        observed = np.array([(x[:, k] == e).sum() for e in edges])
        expected = n * stats.poisson.pmf(edges, rate)
        keep = expected > 5
        chi2 = (((observed - expected)[keep]) ** 2 / expected[keep]).sum()
        assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4, f"rate {rate}: chi2 {chi2:.1f}"
    # Categorical groups: one-hot rows with softmax frequencies.
    for cols in [slice(3, 6), slice(8, 10)]:
        block = x[:, cols]
        assert np.all(block.sum(1) == 1) and set(np.unique(block)) == {0.0, 1.0}
        probs = special.softmax(OUTPUTS[cols])
        counts = block.sum(0)
        chi2 = ((counts - n * probs) ** 2 / (n * probs)).sum()
        assert stats.chi2.sf(chi2, len(probs) - 1) > 1e-4


def test_draws_are_deterministic_per_seed():
    model, params = linear_decoder_with_outputs(OUTPUTS)
    a = model.sample_observations(params, np.zeros((50, Z)), 3)
    b = model.sample_observations(params, np.zeros((50, Z)), 3)
    c = model.sample_observations(params, np.zeros((50, Z)), 4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("columns,message", [
    ([("gaussian", 1)] * (D - 1), "cover"),
    ([("categorical", 1)] + [("gaussian", 1)] * (D - 1), "categorical"),
    ([("poisson", 2)] + [("gaussian", 1)] * (D - 2), "one column"),
    ([("student", 1)] * D, "column kind"),
])
def test_column_blocks_are_checked(columns, message):
    with pytest.raises(ValueError, match=message):
        make_model(columns=columns)


def test_column_blocks_need_the_mixed_likelihood():
    with pytest.raises(ValueError, match="mixed"):
        _core.Model64(n_features=2, n_components=1, hidden_layer_sizes=[], activation="tanh",
                      likelihood="gaussian", kl="analytic", posterior="gaussian",
                      gradient_estimator="reparameterization", n_mc_samples=1, beta=1.0, missing=False,
                      columns=[("gaussian", 1), ("poisson", 1)])
    with pytest.raises(ValueError, match="mixed"):
        make_model(columns=[])


# ---------------------------------------------------------------- the estimator
# (short fits: max_iter is reached on purpose)
few_epochs = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

def mixed_table(n=600, seed=0):
    """Columns driven by two latent factors: 2 Gaussian (in large units), a
    binary, a count, and a 3-category one-hot group."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    gaussian = z @ rng.normal(size=(2, 2)) + 0.3 * rng.normal(size=(n, 2))
    binary = (rng.random(n) < special.expit(2 * z[:, 0])).astype(float)
    counts = rng.poisson(np.exp(0.5 + 0.5 * z[:, 1])).astype(float)
    category = np.argmax(z @ rng.normal(size=(2, 3)) + rng.gumbel(size=(n, 3)), axis=1)
    X = np.column_stack([100 + 20 * gaussian, binary, counts, np.eye(3)[category]])
    return X, ["gaussian", "gaussian", "bernoulli", "poisson", ("categorical", 3)]


@few_epochs
def test_vae_with_per_column_likelihoods():
    from pyvae import VAE

    X, likelihood = mixed_table()
    vae = VAE(n_components=2, hidden_layer_sizes=(16,), likelihood=likelihood, max_iter=40, random_state=0,
              n_threads=1).fit(X)
    # Only the Gaussian columns are standardized.
    assert np.all(vae.scale_[:2] > 5) and np.all(vae.scale_[2:] == 1) and np.all(vae.mean_[2:] == 0)
    mean = vae.inverse_transform(vae.transform(X))
    assert np.all((mean[:, 2] > 0) & (mean[:, 2] < 1)) and np.all(mean[:, 3] > 0)
    np.testing.assert_allclose(mean[:, 4:].sum(1), 1, rtol=1e-5)
    draws = vae.sample(200, random_state=0)
    assert set(np.unique(draws[:, 2])) <= {0, 1}
    assert np.all(draws[:, 3] == np.round(draws[:, 3])) and draws[:, 3].min() >= 0
    assert np.all(draws[:, 4:].sum(1) == 1)
    assert np.isfinite(vae.score(X))
    # The bound beats the exact log-likelihood of independent columns (each
    # kind's own maximum-likelihood fit): the latent factors are found.
    independent = (stats.norm.logpdf(X[:, :2], X[:, :2].mean(0), X[:, :2].std(0)).sum(1)
                   + stats.bernoulli.logpmf(X[:, 2], X[:, 2].mean())
                   + stats.poisson.logpmf(X[:, 3], X[:, 3].mean())
                   + X[:, 4:] @ np.log(X[:, 4:].mean(0)))
    assert vae.score(X) > independent.mean() + 0.5


@few_epochs
def test_vae_per_column_likelihoods_round_trip(tmp_path):
    from sklearn.base import clone

    from pyvae import VAE, load

    X, likelihood = mixed_table(200)
    vae = VAE(n_components=2, hidden_layer_sizes=(8,), likelihood=likelihood, max_iter=3, random_state=0).fit(X)
    vae.save(tmp_path / "mixed.npz")
    again = load(tmp_path / "mixed.npz")
    np.testing.assert_array_equal(again.score_samples(X), vae.score_samples(X))
    refit = clone(again).fit(X)
    np.testing.assert_array_equal(refit.params_, vae.params_)


@few_epochs
@pytest.mark.parametrize("change,message", [
    (lambda X: X.__setitem__((0, 2), 0.5) or X, None),  # binary column: values in [0, 1] are fine
    (lambda X: X.__setitem__((0, 2), 2.0) or X, r"column 2 \(bernoulli\) needs values in \[0, 1\]"),
    (lambda X: X.__setitem__((1, 3), 1.5) or X, r"column 3 \(poisson\) needs counts"),
    (lambda X: X.__setitem__((1, 3), -1.0) or X, r"column 3 \(poisson\) needs counts"),
    (lambda X: X.__setitem__((4, 4), 1 - X[4, 4]) or X, r"columns 4-6 \(categorical\) need one-hot rows.*; row 4"),
    (lambda X: X[:, :6], "lists 7 columns"),
])
def test_vae_checks_each_columns_kind(change, message):
    from pyvae import VAE

    X, likelihood = mixed_table(100)
    X = change(X.copy())
    vae = VAE(n_components=2, hidden_layer_sizes=(4,), likelihood=likelihood, max_iter=2, random_state=0)
    if message is None:
        vae.fit(X)
        return
    with pytest.raises(ValueError, match=message):
        vae.fit(X)
    assert not hasattr(vae, "params_")


@few_epochs
def test_vae_missing_categorical_is_the_whole_group():
    from pyvae import VAE

    X, likelihood = mixed_table(100)
    X[3, 4:] = np.nan  # the whole group: fine
    X[5, 3] = np.nan
    vae = VAE(n_components=2, hidden_layer_sizes=(4,), likelihood=likelihood, missing="mask", max_iter=2,
              random_state=0).fit(X)
    X[7, 5] = np.nan  # part of a group
    with pytest.raises(ValueError, match="row 7 has NaN in some only"):
        vae.score_samples(X)


@pytest.mark.parametrize("likelihood", [["gaussian", "student"], [("categorical", 1)], [], "mixed",
                                        [("categorical", 2.0)]])
def test_vae_rejects_bad_column_lists(likelihood):
    from pyvae import VAE

    with pytest.raises(ValueError, match="'likelihood' parameter"):
        VAE(likelihood=likelihood).fit(np.eye(3))


@few_epochs
def test_counts_up_to_ten_thousand_fit_at_default_settings():
    """A Poisson column of counts in the thousands beside a Gaussian one and a
    column of small counts, at the default learning rate: the log-rates start
    at the columns' mean counts and the encoder sees the counts standardized
    (entering as they were, the first epoch diverged)."""
    from pyvae import VAE

    rng = np.random.default_rng(0)
    g = rng.normal(size=400)
    counts = np.minimum(rng.poisson(np.minimum(3000 * np.exp(0.5 * g), 10_000)), 10_000)
    X = np.column_stack([g, counts, rng.poisson(5.0, 400)]).astype(float)
    assert X[:, 1].max() == 10_000
    model = VAE(likelihood=["gaussian", "poisson", "poisson"], random_state=0).fit(X)
    rates = model.inverse_transform(model.transform(X))
    np.testing.assert_allclose(rates[:, 1:].mean(axis=0), X[:, 1:].mean(axis=0), rtol=0.1)
    assert np.corrcoef(rates[:, 1], X[:, 1])[0, 1] > 0.95  # the rate follows each row's count
    draws = model.sample(2000, random_state=0)
    np.testing.assert_allclose(draws[:, 1].mean(), X[:, 1].mean(), rtol=0.25)


def test_divergence_advice_for_counts_names_neither_standardizing_nor_the_variance_floor():
    from pyvae import VAE

    rng = np.random.default_rng(0)
    X = rng.poisson(800.0, size=(200, 2)).astype(float)
    with pytest.raises(FloatingPointError, match="learning_rate") as info:
        VAE(likelihood=["poisson", "poisson"], learning_rate=1.0, random_state=0).fit(X)
    assert "standardized" not in str(info.value) and "variance_floor" not in str(info.value)
