"""The Yeo-Johnson power transform (Yeo & Johnson, Biometrika 2000) of standardized
columns, which the VAE applies to its Gaussian columns with ``standardize="auto"``.

A Gaussian decoder fits a skewed or heavy-tailed column badly: its mean must track
a few far rows while its variance covers them, and on tables whose columns are
near-exact functions of one another up to a long tail (populations and densities
across census years, incomes and loans) the ELBO then stays tens of nats per row
below even a linear Gaussian model (benchmarks/POWER.md). Each such column's
exponent lambda is chosen by maximum likelihood of a Gaussian for the transformed
values, as scikit-learn's PowerTransformer does; the density of the data itself
keeps the transform's log-derivative, so scores stay comparable with any model's.
"""

import numpy as np
from scipy.optimize import minimize_scalar

# The exponents searched: beyond these the inverse overflows float64 within a few
# standard deviations of the training data.
LAMBDA_BOUNDS = (-3.0, 5.0)
# A column is transformed only if it looks continuous: more than this many distinct
# values among the rows used for its lambda, and no value in more than this fraction
# of them (an atom has no density to even out; benchmarks/suite.py's rule for a
# continuous column).
MIN_DISTINCT = 10
MAX_POINT_MASS = 0.10
# A column is transformed only if that raises its Gaussian log-likelihood by more than
# this many nats per row: a nearly Gaussian column is left as it is (benchmarks/POWER.md).
MIN_GAIN = 0.02
# lambda is estimated on at most this many rows (evenly spaced in the data): its
# sampling error is then far below what changes a fit.
MAX_ROWS = 2_000


# Yeo-Johnson is a Box-Cox transform of 1 + |z| on each side of 0: exponent lambda for
# z >= 0, and 2 - lambda, mirrored, for z < 0. These two are that transform and its inverse.
def _box_cox_of_log1p(u, lam):
    """((1 + u)^lam - 1) / lam for u >= 0; log(1 + u) at lam = 0."""
    return np.log1p(u) if abs(lam) < 1e-12 else np.expm1(lam * np.log1p(u)) / lam


def _box_cox_of_log1p_inverse(v, lam):
    """The u >= 0 that _box_cox_of_log1p maps to v (NaN or inf beyond its range)."""
    return np.expm1(v) if abs(lam) < 1e-12 else np.expm1(np.log1p(lam * v) / lam)


def yeo_johnson(Z, lambdas):
    """Z (n, d) transformed column by column; NaN stays NaN, lambda == 1 is the identity."""
    Y = np.array(Z, dtype=np.float64)
    for j, lam in enumerate(lambdas):
        if lam == 1.0:
            continue
        z = Y[:, j]
        positive, negative = z >= 0, z < 0
        z[positive] = _box_cox_of_log1p(z[positive], lam)
        z[negative] = -_box_cox_of_log1p(-z[negative], 2.0 - lam)
    return Y


def yeo_johnson_inverse(Y, lambdas):
    """The inverse of yeo_johnson. A value beyond the transform's range (above 1 / -lambda
    for lambda < 0, below -1 / (lambda - 2) for lambda > 2: a Gaussian draw can land there)
    maps to the largest finite value on its side."""
    Z = np.array(Y, dtype=np.float64)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        for j, lam in enumerate(lambdas):
            if lam == 1.0:
                continue
            y = Z[:, j]
            positive, negative = y >= 0, y < 0
            y[positive] = _box_cox_of_log1p_inverse(y[positive], lam)
            y[negative] = -_box_cox_of_log1p_inverse(-y[negative], 2.0 - lam)
            beyond = ~np.isfinite(y) & ~np.isnan(Y[:, j])
            y[beyond] = np.copysign(np.finfo(np.float64).max, Y[:, j][beyond])
    return Z


def yeo_johnson_log_derivative(Z, lambdas):
    """Per entry, log dy/dz of yeo_johnson at Z: (lambda - 1) sign(z) log(1 + |z|); 0 where Z is NaN."""
    lambdas = np.asarray(lambdas, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = (lambdas - 1.0) * np.sign(Z) * np.log1p(np.abs(Z))
    return np.nan_to_num(out, nan=0.0)


def _log_likelihood(z, lam):
    """Profile log-likelihood (per row) of a Gaussian for yeo_johnson(z, lam), with the log-derivative."""
    y = yeo_johnson(z[:, None], [lam])[:, 0]
    variance = y.var()
    if not variance > 0 or not np.isfinite(variance):
        return -np.inf
    return -0.5 * np.log(variance) + (lam - 1.0) * np.mean(np.sign(z) * np.log1p(np.abs(z)))


def fit_lambdas(Z, eligible):
    """lambda per column of the standardized Z (n, d): maximum likelihood over LAMBDA_BOUNDS for the
    eligible columns that look continuous (see MIN_DISTINCT, MAX_POINT_MASS); 1.0 (no transform) elsewhere."""
    lambdas = np.ones(Z.shape[1])
    for j in np.flatnonzero(eligible):
        z = Z[:, j][~np.isnan(Z[:, j])]
        _, counts = np.unique(z, return_counts=True)
        if len(counts) <= MIN_DISTINCT or counts.max() > MAX_POINT_MASS * len(z):
            continue
        result = minimize_scalar(lambda lam: -_log_likelihood(z, lam), bounds=LAMBDA_BOUNDS, method="bounded",
                                 options={"xatol": 1e-4})
        if np.isfinite(result.fun) and -result.fun > _log_likelihood(z, 1.0) + MIN_GAIN:
            lambdas[j] = float(result.x)
    return lambdas


# ---------------------------------------------------------------- the VAE's units
# state: the estimator's __dict__ (mean_, scale_, lambdas_, power_mean_, power_scale_; absent or None when unused).

def to_model_units(state, X):
    """X (float64, user units) as the model sees it: standardized, then power-transformed where fitted."""
    mean, scale, lambdas = state.get("mean_"), state.get("scale_"), state.get("lambdas_")
    if mean is None:
        return X
    if lambdas is None:
        return (X - mean) / scale
    return (yeo_johnson((X - mean) / scale, lambdas) - state["power_mean_"]) / state["power_scale_"]


def to_user_units(state, X_model):
    """Model-unit values (decoder means or draws) back in the user's units, float64."""
    mean, scale, lambdas = state.get("mean_"), state.get("scale_"), state.get("lambdas_")
    if mean is None:
        return X_model
    if lambdas is not None:
        X_model = yeo_johnson_inverse(X_model * state["power_scale_"] + state["power_mean_"], lambdas)
    return X_model * scale + mean


def log_jacobian(state, X, has_missing):
    """Per row, log |d x_model / d x| over the observed entries: what turns a density of the
    model's units into a density of X (in nats)."""
    scale, lambdas = state.get("scale_"), state.get("lambdas_")
    if scale is None:
        return np.zeros(X.shape[0])
    log_scale = np.log(scale)
    if lambdas is not None:
        log_scale = log_scale + np.log(state["power_scale_"])
    out = -((~np.isnan(X)) @ log_scale) if has_missing else np.full(X.shape[0], -log_scale.sum())
    if lambdas is not None:
        out += yeo_johnson_log_derivative((X - state["mean_"]) / scale, lambdas).sum(axis=1)
    return out
