"""Missing-value imputation with a VAE with arbitrary conditioning (VAEAC)."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._imputer import resolved_n_components
from ._threads import _core, resolve_threads
from ._training import DECAYING_SCHEDULES, resolved_batch_size
from ._validation import (CONSTRAINTS, INT, REAL, check_hyperparameter, draw_seed, hidden_layer_tuple,
                          unchanged_on_failure, validate_imputer_input)

# VAE's constraints where the name means the same; the conditional model's own.
_CONSTRAINTS = {
    **{name: CONSTRAINTS[name] for name in ("activation", "max_iter", "variance_floor")},
    "hide_rate": (REAL, (0, 1, "open")),
    "n_draws": (INT, (1, None)),
    "n_bins": (INT, (0, None)),
    "learning_rate": (REAL, (0, None, "open")),
}


def quantile_edges(values, n_bins):
    """The distinct quantiles 0, 1/n_bins, ..., 1 of values (standardized units); none when n_bins is 0."""
    if n_bins == 0:
        return np.empty(0)
    return np.unique(np.quantile(values.astype(np.float64), np.linspace(0.0, 1.0, n_bins + 1)))


class ConditionalVAEImputer(TransformerMixin, BaseEstimator):
    """Impute missing values with a VAE with arbitrary conditioning (VAEAC).

    The model of Ivanov, Figurnov and Vetrov (2019), a VAE made for filling
    gaps: a prior network p(z | x_o) sees a row's observed entries, a
    proposal network q(z | x) in training everything observed, and the
    decoder p(x | z, x_o) both z and the observed entries, so the latent
    carries only what the observed entries leave open. :class:`VAEImputer`'s
    decoder sees z alone, and on tables whose missing values the others
    nearly determine (a lookup, a grid) its few noisy latent dimensions
    lose to tree ensembles; here a missing entry's prediction can use the
    observed ones directly (benchmarks/PROBE_VAEAC.md). It costs more:
    three networks, every step.

    Training maximizes each row's bound on the entries it hides:
    each observed entry is hidden from the prior and the decoder with
    probability ``hide_rate``, and the loss is the Gaussian negative
    log-likelihood of the hidden entries given z and the others, plus
    KL(q || p(z | the others)). A missing entry is filled with the mean of the
    decoder's means over ``n_draws`` draws of z from the prior given every
    observed entry of its row. Columns are standardized with the observed
    entries' mean and standard deviation; continuous columns only.

    Parameters
    ----------
    n_components : int or None, default=None
        Latent dimensions; None: half the number of features (1 to 10), as
        :class:`VAEImputer`.
    hidden_layer_sizes : tuple of int, default=(256, 256)
        Hidden layer widths of each of the three networks.
    activation : {"tanh", "relu"}, default="tanh"
        Hidden layer activation.
    n_bins : int, default=0
        Quantile bins of each column's piecewise-linear encoding: the
        networks see an observed value as one unit per bin of its column,
        0 below the bin, 1 above it, linear inside (Gorishniy et al., 2022),
        so a step in one value, which a tree takes in one split, is one input
        unit. Bins are the column's observed quantiles, merged where equal (a
        binary column gets one); 0: the networks see the values as they are.
        Off by default: on the suite's tuning part 8 bins helped a lookup
        table and lost on others (benchmarks/PROBE_VAEAC.md).
    hide_rate : float in (0, 1), default=0.2
        Probability that training hides an observed entry from the prior and
        the decoder, for that step.
    n_draws : int, default=20
        Draws of z per row when filling.
    batch_size : int or "auto", default="auto"
        Rows per step; "auto": ``min(128, max(8, n_samples // 16))``.
    learning_rate : float, default=3e-3
        Adam's initial step size; it falls linearly to 0 over ``max_iter``
        epochs (a fixed budget: training always runs them all).
    max_iter : int, default=600
        Epochs.
    variance_floor : float, default=1e-6
        Added to each feature's learned noise variance (standardized units).
    random_state : int, RandomState instance or None, default=None
        Seed of the initialization, the row order, the hidden entries and the
        draws.
    n_threads : int or None, default=None
        Threads of the core; None: all of them. Results are the same bits
        with any number.

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.
    n_components_ : int
        Latent dimensions used.
    mean_, scale_ : ndarray of shape (n_features_in_,)
        The standardization of each column (observed entries).
    bin_edges_ : list of ndarray
        Each column's bin edges (its units; empty with ``n_bins=0``).
    params_ : ndarray of shape (n_params,), float32
        Every weight, bias and noise log-variance of the three networks, in one
        flat buffer (csrc/model/conditional.h gives the layout).
    loss_curve_ : list of float
        Mean training loss per row, per epoch (standardized units).
    n_iter_ : int
        Epochs run.

    See Also
    --------
    VAEImputer : a VAE trained on the observed entries (MIWAE); cheaper.

    References
    ----------
    O. Ivanov, M. Figurnov and D. Vetrov, "Variational Autoencoder with
    Arbitrary Conditioning", ICLR 2019.

    Y. Gorishniy, I. Rubachev and A. Babenko, "On Embeddings for Numerical
    Features in Tabular Deep Learning", NeurIPS 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from pyvae import ConditionalVAEImputer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 1)) @ np.ones((1, 4)) + 0.1 * rng.normal(size=(200, 4))
    >>> X[::5, 0] = np.nan
    >>> imputer = ConditionalVAEImputer(hidden_layer_sizes=(32,), max_iter=50, random_state=0)
    >>> X_filled = imputer.fit_transform(X)
    >>> bool(np.isnan(X_filled).any())
    False
    """

    def __init__(
        self,
        *,
        n_components=None,
        hidden_layer_sizes=(256, 256),
        activation="tanh",
        n_bins=0,
        hide_rate=0.2,
        n_draws=20,
        batch_size="auto",
        learning_rate=3e-3,
        max_iter=600,
        variance_floor=1e-6,
        random_state=None,
        n_threads=None,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.n_bins = n_bins
        self.hide_rate = hide_rate
        self.n_draws = n_draws
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.variance_floor = variance_floor
        self.random_state = random_state
        self.n_threads = n_threads

    def _check_params(self):
        """The hidden layer sizes as a tuple, after ValueError for any hyperparameter out of its range."""
        for name, (kind, allowed) in _CONSTRAINTS.items():
            check_hyperparameter(name, getattr(self, name), kind, allowed)
        if self.n_components is not None:
            check_hyperparameter("n_components", self.n_components, INT, (1, None))
        if self.batch_size != "auto":
            check_hyperparameter("batch_size", self.batch_size, INT, (1, None))
        if self.n_threads is not None:
            check_hyperparameter("n_threads", self.n_threads, INT, (1, None))
        return hidden_layer_tuple(self.hidden_layer_sizes)

    def _engine(self):
        """The core's model of the fitted network (its shape as fit saw the hyperparameters)."""
        return _core.ConditionalModel32(**self._fit_config, n_threads=resolve_threads(self.n_threads))

    def fit(self, X, y=None):
        """Train the model on the observed entries of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with NaN marking missing entries; infinity is rejected.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : ConditionalVAEImputer
            The fitted imputer.
        """
        return unchanged_on_failure(self, lambda: self._fit(X))

    def _fit(self, X):
        hidden = self._check_params()
        X = validate_imputer_input(self, X, reset=True)
        observed = ~np.isnan(X)
        empty = np.flatnonzero(~observed.any(axis=0))
        if empty.size:
            raise ValueError(f"Features {empty.tolist()} have no observed value in X; drop them or fill them first.")
        n, d = X.shape
        mean = np.nanmean(X, axis=0, dtype=np.float64)
        scale = np.nanstd(X, axis=0, dtype=np.float64)
        scale[~(scale > 0)] = 1.0  # a constant feature: its standardized values are 0 with any scale
        self.mean_, self.scale_ = mean, scale
        self.n_components_ = resolved_n_components(self.n_components, d)
        Xs = np.ascontiguousarray((X - mean) / scale, dtype=np.float32)
        edges = [quantile_edges(Xs[observed[:, j], j], int(self.n_bins)) for j in range(d)]
        self.bin_edges_ = [e * scale[j] + mean[j] for j, e in enumerate(edges)]
        self._fit_config = dict(n_features=d, n_components=self.n_components_, hidden_layer_sizes=list(hidden),
                                activation=self.activation, hide_rate=float(self.hide_rate),
                                variance_floor=float(self.variance_floor), bin_edges=[e.tolist() for e in edges])
        engine = self._engine()
        seed = draw_seed(self.random_state)
        params = engine.init_params(seed)
        m, v = np.zeros_like(params), np.zeros_like(params)
        batch = resolved_batch_size(self, n)
        rows = np.arange(n, dtype=np.int64)
        step, losses = 0, []
        for epoch in range(int(self.max_iter)):
            rate = float(self.learning_rate) * DECAYING_SCHEDULES["linear"](epoch / self.max_iter)
            adam = _core.AdamSettings(learning_rate=rate)
            loss, step = engine.train_epoch(params, m, v, step, Xs, rows, batch, seed, adam)
            if not (np.isfinite(loss) and np.isfinite(params).all()):
                raise FloatingPointError(
                    f"ConditionalVAEImputer's training loss became {loss} in epoch {epoch + 1}; lower "
                    "learning_rate, or check X for extreme values.")
            losses.append(float(loss))
        self.params_, self.loss_curve_, self.n_iter_, self._seed = params, losses, int(self.max_iter), seed
        return self

    def transform(self, X):
        """Fill the missing entries of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with NaN marking missing entries.

        Returns
        -------
        X_imputed : ndarray of shape (n_samples, n_features)
            X with its missing entries filled, in X's dtype; observed entries unchanged.
        """
        check_is_fitted(self, "params_")
        check_hyperparameter("n_draws", self.n_draws, INT, (1, None))
        X = validate_imputer_input(self, X, reset=False)
        out = X.copy()
        rows = np.flatnonzero(np.isnan(X).any(axis=1))
        if rows.size:
            Xs = np.ascontiguousarray((X[rows] - self.mean_) / self.scale_, dtype=np.float32)
            filled = self._engine().impute(self.params_, Xs, int(self.n_draws), self._seed)
            out[rows] = np.where(np.isnan(X[rows]), filled.astype(np.float64) * self.scale_ + self.mean_, X[rows])
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
