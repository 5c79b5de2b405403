"""Diagnostics for fitted models: the spread of the stochastic gradient."""

import numpy as np
from sklearn.utils import Bunch, check_random_state
from sklearn.utils.validation import check_is_fitted

from ._validation import INT, STR, check_hyperparameter

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
    check_hyperparameter("estimator", estimator, STR, _ESTIMATORS)
    check_hyperparameter("n_draws", n_draws, INT, (2, None))
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64; got {dtype}.")
    draw, layout = model._gradient_draws(X, estimator, dtype, check_random_state(random_state))

    # Welford's running mean and sum of squared deviations, in float64.
    mean = np.zeros(model.params_.size)
    m2 = np.zeros(model.params_.size)
    loss = 0.0
    for k in range(1, int(n_draws) + 1):
        draw_loss, g = draw()
        delta = g - mean
        mean += delta / k
        m2 += delta * (g - mean)
        loss += (draw_loss - loss) / k

    tensors = {name: slice(offset, offset + int(np.prod(shape))) for name, offset, shape in layout}
    return Bunch(mean=mean, var=m2 / (int(n_draws) - 1), n_draws=int(n_draws), estimator=estimator, loss=loss,
                 layout=layout, tensors=tensors)
