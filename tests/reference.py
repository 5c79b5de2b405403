"""An independent NumPy reference of the VAE's forward pass, for tests.

Written from the formulas in the tutorial, not from the C++ code: it reads the
flat parameter buffer through the layout the core reports, and recomputes the
per-draw log-likelihood, the KL terms and the loss in float64.
"""

import numpy as np
from scipy import special, stats

LOG2PI = np.log(2 * np.pi)


def unpack(model, params):
    return {name: params[offset:offset + int(np.prod(shape))].reshape(shape) for name, offset, shape in model.layout()}


def activate(h, activation):
    return np.maximum(h, 0) if activation == "relu" else np.tanh(h)


def activation_grad(y, activation):
    """d act / d pre-activation, from the activation's output y."""
    return (y > 0).astype(y.dtype) if activation == "relu" else 1 - y**2


def dense(x, W, b, activation=None):
    """x @ W + b, activated unless activation is None."""
    h = x @ W + b
    return h if activation is None else activate(h, activation)


def bernoulli_log_prob(x, logits):
    """log p(x | logits) per entry; NaN in x (missing) gives 0."""
    observed = ~np.isnan(x)
    x = np.where(observed, x, 0.0)
    return np.where(observed, x * logits - np.logaddexp(0, logits), 0.0)


def bernoulli_grad(x, logits):
    """d(-log p)/d logits per entry: sigmoid(logits) - x; 0 where x is missing."""
    observed = ~np.isnan(x)
    return np.where(observed, 1 / (1 + np.exp(-logits)) - np.where(observed, x, 0.0), 0.0)


def gaussian_log_prob(x, mean, logvar, variance_floor=0.0):
    """log N(x; mean, variance_floor + e^logvar) per entry; NaN in x (missing) gives 0."""
    observed = ~np.isnan(x)
    x = np.where(observed, x, 0.0)
    var = variance_floor + np.exp(logvar)
    return np.where(observed, -0.5 * (LOG2PI + np.log(var) + (x - mean) ** 2 / var), 0.0)


def gaussian_grads(x, mean, logvar, variance_floor=0.0):
    """(d(-log p)/d mean, d(-log p)/d logvar) per entry; 0 where x is missing."""
    observed = ~np.isnan(x)
    x = np.where(observed, x, 0.0)
    var = variance_floor + np.exp(logvar)
    d_mean = -(x - mean) / var
    d_logvar = 0.5 * (1 - (x - mean) ** 2 / var) * np.exp(logvar) / var
    return np.where(observed, d_mean, 0.0), np.where(observed, d_logvar, 0.0)


def heteroscedastic_log_prob(x, out, variance_floor=0.0, bound=30.0):
    """log N(x; m, variance_floor + e^clip(lv, -bound, bound)) per entry for the decoder's
    output out = [m | lv] (width 2D) against x (width D); NaN in x (missing) gives 0."""
    D = x.shape[-1]
    return gaussian_log_prob(x, out[..., :D], np.clip(out[..., D:], -bound, bound), variance_floor)


def mixed_log_prob(x, out, columns, logvar, variance_floor=0.0):
    """sum of log p(x | out) over the column blocks [(kind, width), ...] per row
    (scipy's distributions); NaN in x (missing) gives 0, a categorical block is
    missing when its first column is. A gaussian_heteroscedastic column's
    log-variance is in out past the D means, in column order."""
    total = np.zeros(np.broadcast_shapes(x.shape[:-1], out.shape[:-1]))
    start, logvar_start = 0, x.shape[-1]  # the heteroscedastic columns' log-variances follow the D means
    for kind, width in columns:
        cols = slice(start, start + width)
        xb, ob = x[..., cols], out[..., cols]
        observed = ~np.isnan(xb)
        xb0 = np.where(observed, xb, 0.0)
        if kind == "gaussian":
            term = gaussian_log_prob(xb, ob, logvar[cols], variance_floor)
        elif kind == "gaussian_heteroscedastic":
            lv = np.clip(out[..., logvar_start:logvar_start + width], -30.0, 30.0)
            term = gaussian_log_prob(xb, ob, lv, variance_floor)
            logvar_start += width
        elif kind == "bernoulli":
            term = np.where(observed, stats.bernoulli.logpmf(xb0, special.expit(ob)), 0.0)
        elif kind == "poisson":
            term = np.where(observed, stats.poisson.logpmf(xb0, np.exp(ob)), 0.0)
        else:  # categorical: one-hot x against softmax(out)
            term = np.where(observed[..., :1], xb0 * special.log_softmax(ob, axis=-1), 0.0)
        total = total + term.sum(-1)
        start += width
    return total


def kl_analytic(mu, logvar):
    return 0.5 * (mu**2 + np.exp(logvar) - 1 - logvar).sum(-1)


def mlp(tensors, prefix, h, activation):
    n_layers = sum(1 for k in tensors if k.startswith(prefix) and k.endswith(".weight"))
    for layer in range(n_layers):
        hidden = layer + 1 < n_layers
        h = dense(h, tensors[f"{prefix}{layer}.weight"], tensors[f"{prefix}{layer}.bias"],
                  activation if hidden else None)
    return h


def standardized(posterior, u):
    if posterior == "logistic":
        return np.log(u) - np.log1p(-u), lambda e: -e - 2 * np.logaddexp(0, -e)
    if posterior == "laplace":
        e = np.where(u < 0.5, np.log(2 * u), -np.log(2 * (1 - u)))
        return e, lambda e: -np.abs(e) - np.log(2)
    return u, lambda e: -0.5 * e**2 - 0.5 * LOG2PI


def continuous_bernoulli_log_norm(a):
    """log C(lambda) for lambda = sigmoid(a), from its definition 2 atanh(1 - 2 lambda) / (1 - 2 lambda)."""
    lam = 1 / (1 + np.exp(-a))
    near_half = np.abs(1 - 2 * lam) < 1e-4
    safe = np.where(near_half, 0.25, 1 - 2 * lam)
    return np.where(near_half, np.log(2.0) + a**2 / 12, np.log(2 * np.arctanh(safe) / safe))


def forward(model, params, x_obs, x_enc, noise, *, activation, likelihood, kl, posterior="gaussian", beta=1.0,
            variance_floor=0.0, columns=None):
    """Returns (loss, recon (S, N), kl_draws (S, N), kl_analytic (N))."""
    t = unpack(model, np.asarray(params, dtype=np.float64))
    head = mlp(t, "encoder.", np.asarray(x_enc, np.float64), activation)
    Z = head.shape[1] // 2
    mu, logvar = head[:, :Z], head[:, Z:]
    eps, log_density = standardized(posterior, np.asarray(noise, np.float64))
    z = mu + np.exp(0.5 * logvar) * eps  # (S, N, Z)
    out = mlp(t, "decoder.", z, activation)  # (S, N, D)
    if likelihood in ("bernoulli", "continuous_bernoulli"):
        recon = bernoulli_log_prob(x_obs, out).sum(-1)
        if likelihood == "continuous_bernoulli":
            observed = ~np.isnan(x_obs)
            recon = recon + np.where(observed, continuous_bernoulli_log_norm(out), 0.0).sum(-1)
    elif likelihood == "mixed":
        recon = mixed_log_prob(x_obs, out, columns, t["decoder.noise_logvar"], variance_floor)
    elif likelihood == "gaussian_heteroscedastic":
        recon = heteroscedastic_log_prob(x_obs, out, variance_floor).sum(-1)
    else:
        recon = gaussian_log_prob(x_obs, out, t["decoder.noise_logvar"], variance_floor).sum(-1)
    log_q = (log_density(eps) - 0.5 * logvar).sum(-1)
    log_prior = (-0.5 * z**2 - 0.5 * LOG2PI).sum(-1)
    kl_draws = log_q - log_prior
    kl_row = kl_analytic(mu, logvar) if kl == "analytic" else kl_draws.mean(0)
    loss = np.mean(-recon.mean(0) + beta * kl_row)
    return loss, recon, kl_draws, kl_analytic(mu, logvar)


def importance_bound(recon, kl_draws, beta=1.0):
    """Per row, log (1/K) sum_k w_k with log w_k = recon_k - beta * kl_k over the K draws (axis 0)."""
    return special.logsumexp(recon - beta * kl_draws, axis=0) - np.log(recon.shape[0])
