"""Against references nobody here wrote: with no hidden layers and a Gaussian
likelihood the VAE is a classical linear-Gaussian model,

    z ~ N(0, I),  x | z ~ N(W z + b, Psi)  =>  x ~ N(b, W W^T + Psi),

factor analysis with a per-feature Psi (likelihood="gaussian") and
probabilistic PCA with Psi = sigma^2 I (likelihood="gaussian_isotropic").
scikit-learn computes the maximum-likelihood fit of each
(FactorAnalysis / PCA .score_samples); for the VAE's own parameters log p(x),
the ELBO and log p of the observed entries alone are closed-form here.

A diagonal Gaussian q can match the exact posterior (a constant full
covariance (I + W^T Psi^-1 W)^-1) only in the rotation of W that diagonalizes
W^T Psi^-1 W; the ELBO's optimum picks that rotation, so it coincides with the
likelihood's: the trained VAE should match scikit-learn's held-out
log-likelihood closely, with an ELBO a little below it and importance-weighted
bounds in between."""

import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.decomposition import PCA, FactorAnalysis
from threadpoolctl import threadpool_limits

from pyvae import VAE

D, K = 6, 2
N_TRAIN, N_TEST = 4000, 2000


def tensors(vae):
    return {name: vae.params_[o:o + int(np.prod(s))].reshape(s).astype(np.float64)
            for name, o, s in vae._engine().layout()}


def noise_variance(vae):
    """Psi (D,): the learned variance above the floor, in the model's (standardized) units."""
    return vae.variance_floor + np.exp(tensors(vae)["decoder.noise_logvar"]) * np.ones(D)


def model_moments(vae):
    """Mean b (D,) and covariance W W^T + Psi (D, D) of the VAE's marginal p(x),
    in the data's units: the model sees (x - mean_) / scale_."""
    t = tensors(vae)
    W = t["decoder.0.weight"].T  # (D, K): x = z @ decoder weight + bias
    cov = W @ W.T + np.diag(noise_variance(vae))
    return vae.mean_ + vae.scale_ * t["decoder.0.bias"], cov * np.outer(vae.scale_, vae.scale_)


def exact_log_likelihood(vae, X):
    """log p(x) of each row, marginalizing z; NaN entries are unobserved."""
    b, cov = model_moments(vae)
    observed = ~np.isnan(X)
    out = np.empty(len(X))
    for pattern in np.unique(observed, axis=0):  # one Gaussian marginal per missingness pattern
        rows = (observed == pattern).all(1)
        out[rows] = multivariate_normal(b[pattern], cov[np.ix_(pattern, pattern)]).logpdf(X[rows][:, pattern])
    return out


def exact_elbo(vae, X):
    """E_q[log p(x|z)] - KL(q || N(0, I)) in closed form, with q = N(mu, diag(exp(logvar)))
    from the linear encoder."""
    t = tensors(vae)
    X = (X - vae.mean_) / vae.scale_
    head = X @ t["encoder.0.weight"] + t["encoder.0.bias"]
    mu, logvar = head[:, :K], head[:, K:]
    Wd, bd = t["decoder.0.weight"], t["decoder.0.bias"]
    psi = noise_variance(vae)
    mean = mu @ Wd + bd
    spread = np.exp(logvar) @ Wd**2  # (N, D): variance of the decoder mean under q
    recon = -0.5 * (np.log(2 * np.pi) + np.log(psi) + ((X - mean) ** 2 + spread) / psi).sum(1)
    kl = 0.5 * (mu**2 + np.exp(logvar) - 1 - logvar).sum(1)
    return recon - kl - np.log(vae.scale_).sum()  # the density of x, not of the standardized x


def draw(isotropic, seed):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(D, K))
    psi = np.full(D, 0.3) if isotropic else rng.uniform(0.1, 1.0, size=D)
    b = rng.normal(size=D)
    n = N_TRAIN + N_TEST
    X = rng.normal(size=(n, K)) @ W.T + b + rng.normal(size=(n, D)) * np.sqrt(psi)
    return X[:N_TRAIN], X[N_TRAIN:]


def fit_linear_vae(likelihood, X, missing="error"):
    """Adam with a decaying step, in minibatches of 500, warm-started between
    stages: about 0.5 s for 400 epochs of 4,000 rows."""
    vae = VAE(n_components=K, hidden_layer_sizes=(), likelihood=likelihood, batch_size=500, tol=0.0,
              early_stopping=False, learning_rate_schedule="constant",
              missing=missing, standardize=True, random_state=0, n_threads=1)  # no power transform: linear
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the schedule is fixed on purpose
        for learning_rate in (1e-2, 3e-3, 1e-3, 3e-4):
            vae.set_params(learning_rate=learning_rate, max_iter=100, warm_start=True).fit(X)
    return vae


CASES = [("gaussian", lambda: FactorAnalysis(n_components=K, svd_method="lapack")),
         ("gaussian_isotropic", lambda: PCA(n_components=K))]


@pytest.fixture(scope="module", autouse=True)
def single_threaded_blas():
    """NumPy's BLAS threads crawl on a busy 2-core machine (FactorAnalysis: 2 s
    instead of 0.1 s); these problems are tiny."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module", params=CASES, ids=["factor analysis", "probabilistic PCA"])
def fitted(request):
    likelihood, reference = request.param
    X_train, X_test = draw(likelihood == "gaussian_isotropic", seed=0)
    vae = fit_linear_vae(likelihood, X_train)
    ref = reference().fit(X_train)
    return vae, ref, X_train, X_test


def test_held_out_log_likelihood_matches_scikit_learn(fitted):
    vae, ref, _, X_test = fitted
    ours, theirs = exact_log_likelihood(vae, X_test).mean(), ref.score_samples(X_test).mean()
    assert abs(ours - theirs) < 0.02, (ours, theirs)
    # Same model, same answer: the closed form agrees with scikit-learn's own
    # formula when handed the VAE's parameters.
    b, cov = model_moments(vae)
    np.testing.assert_allclose(multivariate_normal(b, cov).logpdf(X_test[:50]),
                               exact_log_likelihood(vae, X_test[:50]), rtol=1e-12)


def test_elbo_is_below_the_importance_weighted_bound_which_converges_to_log_p(fitted):
    vae, _, _, X_test = fitted
    log_p = exact_log_likelihood(vae, X_test).mean()
    elbo = exact_elbo(vae, X_test)
    # The core's K = 1 score is an unbiased one-draw estimate of that ELBO.
    score = vae.score_samples(X_test)
    assert abs(score.mean() - elbo.mean()) < 4 * np.std(score - elbo) / np.sqrt(N_TEST)
    # The gap log p - ELBO is KL(q || p(z|x)) > 0, small for a converged model.
    gap = log_p - elbo.mean()
    assert 0 < gap < 0.1, gap
    bounds = {k: vae.score_samples(X_test, n_importance=k).mean() for k in (10, 100, 1000)}
    assert elbo.mean() < bounds[10]
    errors = [abs(log_p - bounds[k]) for k in (10, 100, 1000)]
    assert errors[0] < gap and errors[2] < 0.005 * gap + 2e-4, (gap, errors)
    assert bounds[10] < log_p + 2e-3 and bounds[1000] < log_p + 2e-3  # a bound, within float32 noise


def test_masked_likelihood_is_factor_analysis_of_the_observed_columns():
    """missing="mask" counts only observed entries: trained on rows whose first
    column is always NaN, the VAE is factor analysis of the other columns. With
    one missingness pattern the linear encoder can represent the posterior, so
    the importance-weighted bound converges to the exact log p(x_observed)."""
    X_train, X_test = draw(False, seed=1)
    X_train[:, 0] = X_test[:, 0] = np.nan
    vae = fit_linear_vae("gaussian", X_train, missing="mask")
    ref = FactorAnalysis(n_components=K, svd_method="lapack").fit(X_train[:, 1:])
    exact = exact_log_likelihood(vae, X_test)
    assert abs(exact.mean() - ref.score_samples(X_test[:, 1:]).mean()) < 0.02
    bound = vae.score_samples(X_test, n_importance=1000).mean()
    assert exact.mean() - 0.01 < bound < exact.mean() + 2e-3
    assert vae.score(X_test) < bound
