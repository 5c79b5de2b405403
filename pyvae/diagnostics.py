"""Diagnostics for fitted models: the spread of the stochastic gradient."""

import numpy as np
from sklearn.utils import Bunch, check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _core
from ._vae import _check_hyperparameter, _resolve_threads

_ESTIMATORS = ("reparameterization", "score_function")


def gradient_variance(model, X, *, estimator="reparameterization", n_draws=100, dtype=np.float64,
                      random_state=None):
    """Per-parameter mean and variance of a gradient estimator over noise draws.

    Builds an engine with the fitted model's configuration but the chosen
    ``estimator``, and evaluates the gradient of the training objective (the
    mean over the rows of X of the negative beta-ELBO, or of the negative
    importance-weighted bound for a model fitted with ``objective="iwae"``,
    as in one minibatch step) at ``model.params_`` once per draw, each time with fresh noise for
    every row. The score-function estimator uses the model's fitted baseline
    (the running mean of the learning signal). Both estimators are unbiased
    for the same gradient; they differ in variance.

    Parameters
    ----------
    model : VAE
        A fitted estimator.
    X : array-like of shape (n_samples, n_features)
        The rows of the gradient's batch (NaN allowed when the model was fitted
        with ``missing="mask"``).
    estimator : {"reparameterization", "score_function"}, default="reparameterization"
        The gradient estimator for the encoder's parameters.
    n_draws : int, default=100
        Independent gradient estimates (calls with fresh noise); at least 2.
    dtype : {numpy.float64, numpy.float32}, default=numpy.float64
        Precision of the engine.
    random_state : int, RandomState instance or None, default=None
        Seeds the noise.

    Returns
    -------
    result : Bunch
        ``mean`` and ``var`` (arrays of shape (n_params,)): the sample mean and
        unbiased sample variance of each parameter's gradient over the draws;
        ``n_draws``; ``estimator``; ``loss`` (mean objective over the draws);
        ``layout``, the list of (name, offset, shape) of the parameter
        tensors; and ``tensors``, a dict from tensor name to the slice of its
        entries in ``mean`` and ``var``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyvae import VAE, gradient_variance
    >>> X = np.random.default_rng(0).normal(size=(100, 4))
    >>> vae = VAE(n_components=2, hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X)
    >>> g = gradient_variance(vae, X[:32], estimator="score_function", n_draws=20, random_state=0)
    >>> g.mean.shape == g.var.shape == vae.params_.shape
    True
    """
    check_is_fitted(model, "params_")
    _check_hyperparameter("estimator", estimator, "str", _ESTIMATORS)
    _check_hyperparameter("n_draws", n_draws, "int", (2, None))
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64; got {dtype}.")
    X = model._validate_X(X, reset=False)
    config = dict(model._fit_config, gradient_estimator=estimator)
    cls = _core.Model64 if dtype == np.float64 else _core.Model32
    engine = cls(n_threads=_resolve_threads(model.n_threads), **config)

    x_obs = model._model_units(X, dtype=dtype)
    x_enc = np.nan_to_num(x_obs, nan=0.0)
    params = np.ascontiguousarray(model.params_, dtype=dtype)
    baseline = float(model._baseline)
    N, S, Z = x_obs.shape[0], config["n_mc_samples"], config["n_components"]
    uniform = config["posterior"] != "gaussian"
    rng = check_random_state(random_state)
    below_one = np.nextafter(dtype.type(1), dtype.type(0))

    # Welford's running mean and sum of squared deviations, in float64.
    mean = np.zeros(engine.n_params)
    m2 = np.zeros(engine.n_params)
    loss = 0.0
    for k in range(1, int(n_draws) + 1):
        if uniform:  # open interval (0, 1), as the core draws it
            noise = np.minimum((rng.randint(0, 2**53, size=(S, N, Z), dtype=np.int64) + 0.5) * 2.0**-53, below_one)
        else:
            noise = rng.standard_normal(size=(S, N, Z))
        out = engine.loss_and_grad(params, x_obs, x_enc, noise.astype(dtype), baseline)
        g = np.asarray(out["grad"], dtype=np.float64)
        delta = g - mean
        mean += delta / k
        m2 += delta * (g - mean)
        loss += (out["loss"] - loss) / k

    layout = list(engine.layout())
    tensors = {name: slice(offset, offset + int(np.prod(shape))) for name, offset, shape in layout}
    return Bunch(mean=mean, var=m2 / (int(n_draws) - 1), n_draws=int(n_draws), estimator=estimator, loss=loss,
                 layout=layout, tensors=tensors)
