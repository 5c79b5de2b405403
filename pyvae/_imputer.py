"""Missing-value imputation with a VAE trained on the observed entries (MIWAE)."""

import warnings

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import MissingIndicator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _persistence
from ._progress import warn
from ._validation import (BOOL, INT, check_column_values, check_hyperparameter, draw_seed, unchanged_on_failure,
                          validate_imputer_input)
from ._vae import VAE

# The imputer's own hyperparameters; the training ones go to the VAE, which checks them.
_CONSTRAINTS = {
    "n_importance": (INT, (1, None)),
    "refine_steps": (INT, (0, None)),
    "add_indicator": (BOOL, None),
    "keep_empty_features": (BOOL, None),
}

# VAE's hyperparameters that the imputer passes on to its VAE as they are (with
# defaults of its own, in __init__). A new one: its name here, in __init__ and
# in the docstring.
_FORWARDED = ("hidden_layer_sizes", "activation", "objective", "n_mc_samples", "variance_floor", "batch_size",
              "learning_rate", "learning_rate_schedule", "max_iter", "alpha", "tol", "early_stopping",
              "validation_fraction", "n_iter_no_change", "verbose", "n_threads")

# column_kinds: each kind's likelihood in the VAE (a categorical column becomes
# a block of one-hot columns, one per category seen in fit).
_KIND_LIKELIHOODS = {"continuous": "gaussian", "heteroscedastic": "gaussian_heteroscedastic", "binary": "bernoulli",
                     "count": "poisson", "categorical": "categorical"}
# Kinds standardized and filled with the conditional mean in the user's units.
_CONTINUOUS_KINDS = ("continuous", "heteroscedastic")
# The values each kind holds, as validation.check_column_values checks them
# (None: any number; a categorical column's codes are checked against the
# categories fit saw).
_KIND_VALUES = {"continuous": None, "heteroscedastic": None, "binary": "binary", "count": "count", "categorical": None}


def resolved_n_components(n_components, n_features):
    """The imputers' latent size: n_components, or for None half the n_features modeled columns, 1 to 10."""
    return int(n_components) if n_components is not None else max(1, min(n_features // 2, 10))


def _incomplete_rows(Xs):
    """Indices of the rows of the model matrix with a missing entry: the only
    ones the model fills. The core keys each row's draws by its bytes, so a
    row's result does not depend on the rows imputed beside it."""
    return np.flatnonzero(np.isnan(Xs).any(axis=1))


class VAEImputer(TransformerMixin, BaseEstimator):
    """Impute missing values with a variational autoencoder (MIWAE).

    A VAE (:class:`pyvae.VAE` with ``missing="mask"``) is trained on the
    observed entries of the standardized data: missing entries are left out
    of the likelihood and enter the encoder as 0 (the column mean). It
    maximizes their ELBO, or with ``objective="iwae"`` their
    importance-weighted bound (MIWAE's training objective). Each
    missing entry is then filled with its importance-weighted conditional
    mean (Mattei & Frellsen, 2019): for a row with observed part x_o, K draws
    z_k ~ q(z | x_o) get the self-normalized weights
    w_k ∝ p(x_o | z_k) p(z_k) / q(z_k | x_o), and

        E[x_m | x_o] ≈ sum_k w_k E[x_m | z_k].

    :meth:`sample_imputations` draws multiple imputations from p(x_m | x_o)
    by sampling-importance-resampling. Observed entries are returned
    unchanged, bit for bit.

    Parameters
    ----------
    n_components : int or None, default=None
        Dimension of the latent space. None uses ``min(10, n_features // 2)``
        (at least 1), counting the features observed in ``fit``. On the
        suite's tuning tables it fills as many of them within 10% of the
        better IterativeImputer as ``n_features - 1`` did, in 0.85 times the
        time (benchmarks/TUNE_IMPUTER.md).
    hidden_layer_sizes : tuple of int, default=(128,)
        Widths of the encoder's hidden layers; the decoder mirrors them.
        One layer: on the suite's tuning tables (128, 128) fills a little
        more accurately at about three times the cost, (64, 64) at 1.2 times
        (benchmarks/TUNE_IMPUTER.md).
    activation : {"relu", "tanh"}, default="tanh"
        Activation of the hidden layers.
    column_kinds : list of str or None, default=None
        The kind of each column, which picks its likelihood and the values
        it is filled with: ``"continuous"`` (Gaussian, standardized; filled
        with the conditional mean), ``"binary"`` (0/1 values, Bernoulli;
        filled with the more probable value), ``"count"`` (integers >= 0,
        Poisson; filled with the conditional mean rounded to a count) or
        ``"categorical"`` (any numeric codes, one-hot inside the model with a
        softmax over the categories seen in ``fit``; filled with the most
        probable category). None treats every column as continuous.
        ``"heteroscedastic"``: continuous, with a noise variance the decoder
        gives per row (``"gaussian_heteroscedastic"`` in :class:`VAE`).
        :meth:`sample_imputations` draws values of each column's kind.
    n_importance : int, default=100
        Importance draws K per row for the conditional means and for
        :meth:`sample_imputations`. The cost of ``transform`` grows linearly
        with K; the estimate's bias shrinks as 1/K.
    refine_steps : int, default=50
        Before its K draws, each row's q(z | x_o) from the encoder takes this
        many Adam steps on the row's own ELBO over its observed entries
        (semi-amortized inference; see ``refine_steps`` in
        :meth:`VAE.score_samples`). The encoder, trained on rows with few
        holes, places q poorly for rows it never saw, and the conditional
        means of a better proposal are better: on the suite's tuning tables
        50 steps fill 22 of 36 (table, rate) pairs within 10% of the better
        IterativeImputer against 18 without, in about 1.05 times the time
        (benchmarks/TUNE_IMPUTER.md). 0 uses the encoder's q as it is.
    objective : {"elbo", "iwae"}, default="elbo"
        What training maximizes over the observed entries (see :class:`VAE`):
        the ELBO, or the importance-weighted bound of ``n_mc_samples`` draws
        per row (Mattei & Frellsen train on it, with 20 draws). On the
        suite's tuning tables ``objective="iwae", n_mc_samples=10`` fills 27
        of 36 (table, rate) pairs within 10% of the better IterativeImputer
        against the default's 22 (benchmarks/TUNE_IMPUTER.md), and 27 against
        24 on the evaluation part at a median 2.8 times the time
        (benchmarks/EVALUATION.md).
    n_mc_samples : int, default=1
        Draws per row in training: the ELBO's Monte Carlo samples, or the K
        of the bound with ``objective="iwae"`` (K = 1 is the ELBO there too).
        An epoch's cost grows about linearly with it.
    variance_floor : float, default=1e-6
        Lower bound on the Gaussian likelihood's variance, in standardized
        units (see :class:`VAE`).
    batch_size : int or "auto", default="auto"
        Rows per minibatch; "auto" takes 128 rows, or fewer on small data so
        that an epoch still makes about 16 optimizer steps (see :class:`VAE`).
    learning_rate : float or "auto", default=3e-3
        Adam's initial step size ("auto" as in :class:`VAE`).
    learning_rate_schedule : {"linear", "cosine", "adaptive", "constant"}, default="linear"
        How the step size changes during training (see :class:`VAE`). The
        default trains exactly ``max_iter`` epochs while the step size falls
        linearly to zero; "adaptive" divides it by 10 at each plateau of the
        training loss, twice, and stops at the third. On the suite's tuning
        tables the default fills as accurately as the adaptive schedule with
        a (256,) layer at a step size of 1e-3 in about half the time
        (benchmarks/TUNE_IMPUTER.md).
    max_iter : int, default=300
        Epochs of training: the budget of the "linear" and "cosine"
        schedules, the most the others may take.
    alpha : float, default=0.0
        L2 penalty on the weight matrices.
    tol : float, default=1e-4
        Improvement of the (smoothed) loss below which an epoch counts as no
        progress (the "adaptive" and "constant" schedules, early stopping).
    early_stopping : {"auto", True, False}, default=False
        Hold out rows and judge progress by their ELBO (see :class:`VAE`).
        Off by default: an imputer is fit on the very rows it fills, and
        every observed entry is worth training on.
    validation_fraction : float, default=0.1
        Fraction of rows held out with ``early_stopping``.
    n_iter_no_change : int, default=20
        Epochs without progress before the step size drops or training stops.
    add_indicator : bool, default=False
        Append a :class:`~sklearn.impute.MissingIndicator`'s columns (features
        with missing entries in fit) to the output.
    keep_empty_features : bool, default=False
        Features entirely missing in ``fit`` are dropped from the output (with
        a warning) unless this is True; then they are kept and their missing
        entries filled with 0, as in scikit-learn's imputers.
    random_state : int, RandomState instance or None, default=None
        Seeds training and the importance draws. The same value gives the
        same imputations; each row's draws depend only on the row and the seed.
    verbose : int, default=0
        Passed to the VAE: progress of the training epochs.
    n_threads : int or None, default=None
        Threads of the core; None uses all cores. A training step runs on one
        thread while timing it shows that faster (the same bits either way).

    Attributes
    ----------
    vae_ : VAE
        The fitted model, trained on standardized data.
    n_components_ : int
        The latent dimension used.
    n_iter_ : int
        Training epochs run.
    mean_ : ndarray of shape (n_features_in_,)
        Mean of each continuous feature's observed entries in ``fit`` (0 for
        empty features and the other kinds).
    scale_ : ndarray of shape (n_features_in_,)
        Standard deviation of each continuous feature's observed entries in
        ``fit`` (1 where that is 0, the feature is empty or of another kind).
    categories_ : list of ndarray
        The categories seen in ``fit`` of each ``"categorical"`` column, in
        column order (empty without such columns).
    indicator_ : MissingIndicator or None
        The indicator with ``add_indicator``, else None.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    Notes
    -----
    A row with no observed entry gets the model's prior predictive mean
    E[x] = E_p(z)[E[x | z]]: its importance weights reduce to
    p(z_k) / q(z_k | 0). A feature that is entirely missing in ``fit`` has
    nothing to learn from (see ``keep_empty_features``). With ``column_kinds``,
    a value of the wrong kind (a 2 in a binary column, 1.5 in a count column)
    is a ValueError in ``fit`` and ``transform``, and so is a category that
    ``fit`` did not see; a categorical column with a single category in
    ``fit`` is filled with that category. Errors leave the fitted imputer as
    it was.

    References
    ----------
    P.-A. Mattei and J. Frellsen. MIWAE: Deep generative modelling and
    imputation of incomplete data sets. ICML 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from pyvae import VAEImputer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 2)) @ rng.normal(size=(2, 6))  # rank 2
    >>> X_missing = X.copy()
    >>> X_missing[rng.random(X.shape) < 0.2] = np.nan
    >>> imputer = VAEImputer(max_iter=50, random_state=0).fit(X_missing)
    >>> X_filled = imputer.transform(X_missing)
    >>> bool(np.isnan(X_filled).any())
    False
    >>> observed = ~np.isnan(X_missing)
    >>> bool((X_filled[observed] == X_missing[observed]).all())  # unchanged, bit for bit
    True
    >>> imputer.sample_imputations(X_missing[:4], n_imputations=5, random_state=0).shape
    (4, 5, 6)
    """

    def __init__(
        self,
        *,
        n_components=None,
        hidden_layer_sizes=(128,),
        activation="tanh",
        column_kinds=None,
        n_importance=100,
        refine_steps=50,
        objective="elbo",
        n_mc_samples=1,
        variance_floor=1e-6,
        batch_size="auto",
        learning_rate=3e-3,
        learning_rate_schedule="linear",
        max_iter=300,
        alpha=0.0,
        tol=1e-4,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=20,
        add_indicator=False,
        keep_empty_features=False,
        random_state=None,
        verbose=0,
        n_threads=None,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.column_kinds = column_kinds
        self.n_importance = n_importance
        self.refine_steps = refine_steps
        self.objective = objective
        self.n_mc_samples = n_mc_samples
        self.variance_floor = variance_floor
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.max_iter = max_iter
        self.alpha = alpha
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.add_indicator = add_indicator
        self.keep_empty_features = keep_empty_features
        self.random_state = random_state
        self.verbose = verbose
        self.n_threads = n_threads

    # ------------------------------------------------------------------ checks

    def _check_params(self):
        for name, (kind, allowed) in _CONSTRAINTS.items():
            check_hyperparameter(name, getattr(self, name), kind, allowed)
        if self.n_components is not None:
            check_hyperparameter("n_components", self.n_components, INT, (1, None))
        check_random_state(self.random_state)
        kinds = self.column_kinds
        if kinds is not None and (
            isinstance(kinds, str) or not hasattr(kinds, "__len__")
            or not all(isinstance(k, str) and k in _KIND_LIKELIHOODS for k in kinds)
        ):
            raise ValueError(
                f"The 'column_kinds' parameter must be None or a list with one of {list(_KIND_LIKELIHOODS)} "
                f"per column; got {kinds!r}."
            )

    def _kinds(self, n_features):
        """The kind of each of n_features columns (column_kinds, checked against X's width)."""
        if self.column_kinds is None:
            return ["continuous"] * n_features
        if len(self.column_kinds) != n_features:
            raise ValueError(f"column_kinds has {len(self.column_kinds)} entries; X has {n_features} features.")
        return list(self.column_kinds)

    def _validate_X(self, X, *, reset):
        X = validate_imputer_input(self, X, reset=reset)
        kinds = self._kinds(X.shape[1]) if reset else self._column_kinds
        check_column_values(X, [[_KIND_VALUES[kind], 1] for kind in kinds])
        for j, kind in enumerate(kinds):
            if kind == "categorical" and not reset:
                values = X[:, j][~np.isnan(X[:, j])]
                unseen = ~np.isin(values, self.categories_[self._categorical_index[j]])
                if unseen.any():
                    raise ValueError(
                        f"Column {j} (categorical) holds the category {float(values[unseen][0])!r}, not seen in "
                        f"fit (categories {self.categories_[self._categorical_index[j]].tolist()}); the model "
                        "has no likelihood for it."
                    )
        return X

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y=None):
        """Train the VAE on the observed entries of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with NaN marking missing entries; infinity is rejected.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : VAEImputer
            The fitted imputer.

        Examples
        --------
        >>> import numpy as np
        >>> from pyvae import VAEImputer
        >>> X = np.random.default_rng(0).normal(size=(100, 3))
        >>> X[::7, 1] = np.nan
        >>> imputer = VAEImputer(max_iter=10, random_state=0).fit(X)
        >>> imputer.n_features_in_, imputer.n_components_
        (3, 1)
        """
        return unchanged_on_failure(self, lambda: self._fit(X))

    def _fit(self, X):
        self._check_params()
        X = self._validate_X(X, reset=True)
        kinds = self._kinds(X.shape[1])
        missing = np.isnan(X)
        empty = missing.all(axis=0)
        if empty.all():
            raise ValueError("Every feature of X is entirely missing (NaN); there is nothing to learn from.")
        if empty.any():
            names = np.flatnonzero(empty).tolist()
            what = "kept and filled with 0" if self.keep_empty_features else "dropped from the output"
            warn(f"Features {names} have no observed value in fit; they are {what}.", UserWarning)
        continuous = np.array([k in _CONTINUOUS_KINDS for k in kinds])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of an empty column
            mean = np.where(empty | ~continuous, 0.0, np.nanmean(X, axis=0, dtype=np.float64))
            scale = np.where(empty | ~continuous, 1.0, np.nanstd(X, axis=0, dtype=np.float64))
        scale[~(scale > 0)] = 1.0  # a constant feature: any scale gives the same standardized zeros
        categorical = [j for j, k in enumerate(kinds) if k == "categorical"]
        categories = [np.unique(X[~missing[:, j], j]) for j in categorical]
        self._column_kinds, self._empty_features = kinds, empty
        self.mean_, self.scale_, self.categories_ = mean, scale, categories
        self._categorical_index = {j: i for i, j in enumerate(categorical)}
        # Columns the VAE models: observed ones, except a category column with a single category.
        self._modeled = ~empty & np.array([k != "categorical" or len(categories[self._categorical_index[j]]) > 1
                                           for j, k in enumerate(kinds)])
        if not self._modeled.any():
            raise ValueError("No column of X varies in fit (each is empty or a single category); there is "
                             "nothing to learn from.")
        Xm = self._model_matrix(X)
        n_features = int(self._modeled.sum())
        n_components = resolved_n_components(self.n_components, n_features)
        seed = draw_seed(self.random_state)
        vae = self._train(Xm, n_components, seed)
        indicator = None
        if self.add_indicator:
            indicator = MissingIndicator(missing_values=np.nan, error_on_new=False).fit(X)
        self.vae_ = vae
        self.n_components_ = n_components
        self.n_iter_ = int(vae.n_iter_)
        self.indicator_ = indicator
        self._seed = seed
        return self

    def _model_likelihood(self):
        """The VAE's likelihood: "gaussian" ("gaussian_heteroscedastic") when every
        modeled column is continuous (heteroscedastic), else one entry per modeled column (a categorical block per category column)."""
        entries = []
        for j in np.flatnonzero(self._modeled):
            kind = self._column_kinds[j]
            if kind == "categorical":
                entries.append(("categorical", len(self.categories_[self._categorical_index[j]])))
            else:
                entries.append(_KIND_LIKELIHOODS[kind])
        for whole_table in ("gaussian", "gaussian_heteroscedastic"):
            if all(e == whole_table for e in entries):
                return whole_table
        return entries

    def _model_matrix(self, X):
        """X (n, n_features_in_) as the VAE sees it: the modeled columns, continuous
        ones standardized, category columns one-hot (NaN throughout when missing)."""
        parts = []
        for j in np.flatnonzero(self._modeled):
            column = X[:, j]
            if self._column_kinds[j] == "categorical":
                one_hot = (column[:, None] == self.categories_[self._categorical_index[j]][None, :]).astype(np.float64)
                one_hot[np.isnan(column)] = np.nan
                parts.append(one_hot)
            else:
                parts.append(((column - self.mean_[j]) / self.scale_[j])[:, None])
        return np.hstack(parts)

    def _train(self, Xm, n_components, seed):
        """The VAE fitted to the model matrix Xm (NaN = missing)."""
        vae = VAE(
            n_components=n_components,
            likelihood=self._model_likelihood(),
            missing="mask",
            standardize=False,  # Xm is standardized here, with the statistics of every feature
            random_state=seed & 0x7FFFFFFF,
            **{name: getattr(self, name) for name in _FORWARDED},
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            vae.fit(Xm)
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            warn(f"VAEImputer's training stopped after max_iter={self.max_iter} epochs without converging "
                 f"(tol={self.tol}); raise max_iter or tol.", ConvergenceWarning)
        return vae

    # ------------------------------------------------------------------ imputing

    def _prepare(self, X):
        check_is_fitted(self, "vae_")
        check_hyperparameter("n_importance", self.n_importance, INT, (1, None))
        check_hyperparameter("refine_steps", self.refine_steps, INT, (0, None))
        X = self._validate_X(X, reset=False)
        return X, np.ascontiguousarray(self._model_matrix(X), dtype=np.float32)

    def _column_values(self, filled):
        """Values of each input column's kind (n, n_features_in_) from the model's
        means or draws `filled` (n, modeled width): continuous in the user's
        units, binary 0/1, counts rounded, the most probable (or drawn)
        category. Columns the model does not see: their only category, or 0."""
        n = filled.shape[0]
        values = np.zeros((n, len(self._column_kinds)))
        position = 0
        for j, kind in enumerate(self._column_kinds):
            if kind == "categorical" and not self._empty_features[j]:
                categories = self.categories_[self._categorical_index[j]]
                if not self._modeled[j]:
                    values[:, j] = categories[0]
                    continue
                block = filled[:, position:position + len(categories)]
                values[:, j] = categories[np.argmax(block, axis=1)]
                position += len(categories)
                continue
            if not self._modeled[j]:
                continue
            column = filled[:, position].astype(np.float64)
            position += 1
            if kind in _CONTINUOUS_KINDS:
                values[:, j] = column * self.scale_[j] + self.mean_[j]
            elif kind == "binary":
                values[:, j] = column >= 0.5
            else:
                values[:, j] = np.round(column)
        return values

    def _finish(self, X, filled):
        """The output for X: X's observed entries, its missing ones from the
        model's `filled` (see _column_values), the empty features as
        configured, and the indicator."""
        out = X.copy()
        hole = np.isnan(out)
        out[hole] = self._column_values(filled)[hole]  # empty features: 0
        if not self.keep_empty_features:
            out = out[:, ~self._empty_features]
        if self.indicator_ is not None:
            out = np.hstack([out, self.indicator_.transform(X).astype(out.dtype)])
        return out

    def transform(self, X):
        """Fill the missing entries of X with importance-weighted conditional means.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with NaN marking missing entries.

        Returns
        -------
        X_imputed : ndarray of shape (n_samples, n_features_out)
            X with its missing entries filled, in X's dtype (float32 or
            float64); observed entries unchanged. Features entirely missing in
            fit are dropped (unless ``keep_empty_features``); the indicator's
            columns follow with ``add_indicator``.

        Examples
        --------
        >>> import numpy as np
        >>> from pyvae import VAEImputer
        >>> X = np.random.default_rng(0).normal(size=(100, 3))
        >>> X[::7, 1] = np.nan
        >>> imputer = VAEImputer(max_iter=10, random_state=0).fit(X)
        >>> X_filled = imputer.transform(X)
        >>> X_filled.shape, bool(np.isnan(X_filled).any())
        ((100, 3), False)
        """
        X, Xs = self._prepare(X)
        filled, rows = Xs.copy(), _incomplete_rows(Xs)
        if rows.size:
            filled[rows] = self.vae_._impute(Xs[rows], self.n_importance, self._seed, self.n_threads,
                                             self.refine_steps)
        return self._finish(X, filled)

    def sample_imputations(self, X, n_imputations=5, random_state=None):
        """Draw multiple imputations of X from p(x_missing | x_observed).

        Each draw picks one of the row's K posterior draws z_k with
        probability w_k (its self-normalized importance weight) and draws the
        missing entries from p(x_m | z_k); the draws of a row share its K
        proposals, so they approach the conditional distribution as
        ``n_importance`` grows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with NaN marking missing entries.
        n_imputations : int, default=5
            Imputations per row.
        random_state : int, RandomState instance or None, default=None
            Seed of the draws; each row's draws depend on the row and the seed only.

        Returns
        -------
        X_imputations : ndarray of shape (n_samples, n_imputations, n_features_out)
            ``X_imputations[:, m]`` is one completed copy of X, laid out as
            :meth:`transform` returns it; observed entries unchanged.

        Examples
        --------
        >>> import numpy as np
        >>> from pyvae import VAEImputer
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(200, 4))
        >>> X[rng.random(X.shape) < 0.3] = np.nan
        >>> imputer = VAEImputer(max_iter=20, random_state=0).fit(X)
        >>> draws = imputer.sample_imputations(X, n_imputations=10, random_state=0)
        >>> draws.shape
        (200, 10, 4)
        >>> bool(draws[np.isnan(X)[:, None, :].repeat(10, axis=1)].std() > 0)  # the draws vary
        True
        """
        X, Xs = self._prepare(X)
        check_hyperparameter("n_imputations", n_imputations, INT, (1, None))
        seed = draw_seed(random_state)
        draws, rows = np.repeat(Xs[:, None, :], int(n_imputations), axis=1), _incomplete_rows(Xs)
        if rows.size:
            draws[rows] = self.vae_._sample_imputations(Xs[rows], self.n_importance, n_imputations, seed,
                                                        self.n_threads, self.refine_steps)
        return np.stack([self._finish(X, draws[:, m]) for m in range(int(n_imputations))], axis=1)

    def save(self, path):
        """Save the fitted imputer to ``path`` in pyvae's safe .npz format.

        As :meth:`pyvae.VAE.save`: arrays and JSON text only, written
        atomically; :func:`pyvae.load` reads it back, without executing code,
        into a VAEImputer whose ``transform`` gives the same bits.

        Parameters
        ----------
        path : str or path-like
            Destination file.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> import pyvae
        >>> X = np.random.default_rng(0).normal(size=(100, 3))
        >>> X[::7, 1] = np.nan
        >>> imputer = pyvae.VAEImputer(max_iter=10, random_state=0).fit(X)
        >>> path = os.path.join(tempfile.mkdtemp(), "imputer.npz")
        >>> imputer.save(path)
        >>> bool((pyvae.load(path).transform(X) == imputer.transform(X)).all())
        True
        """
        _persistence.save_imputer(self, path)

    def get_feature_names_out(self, input_features=None):
        """Names of the output features.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input feature names; ``feature_names_in_`` (or ``x0, x1, ...``) when None.

        Returns
        -------
        feature_names_out : ndarray of str objects
            The kept input features, then the indicator's features with ``add_indicator``.

        Examples
        --------
        >>> import numpy as np
        >>> from pyvae import VAEImputer
        >>> X = np.random.default_rng(0).normal(size=(100, 3))
        >>> X[::7, 1] = np.nan
        >>> imputer = VAEImputer(max_iter=10, add_indicator=True, random_state=0).fit(X)
        >>> imputer.get_feature_names_out().tolist()
        ['x0', 'x1', 'x2', 'missingindicator_x1']
        """
        check_is_fitted(self, "vae_")
        input_features = self._input_feature_names(input_features)
        names = input_features if self.keep_empty_features else input_features[~self._empty_features]
        if self.indicator_ is not None:
            names = np.concatenate([names, self.indicator_.get_feature_names_out(input_features)])
        return np.asarray(names, dtype=object)

    def _input_feature_names(self, input_features):
        fitted = getattr(self, "feature_names_in_", None)
        if input_features is None:
            if fitted is not None:
                return np.asarray(fitted, dtype=object)
            return np.asarray([f"x{i}" for i in range(self.n_features_in_)], dtype=object)
        input_features = np.asarray(input_features, dtype=object)
        if fitted is not None and not np.array_equal(input_features, fitted):
            raise ValueError("input_features is not equal to feature_names_in_")
        if len(input_features) != self.n_features_in_:
            raise ValueError(
                f"input_features should have length equal to number of features ({self.n_features_in_}), "
                f"got {len(input_features)}"
            )
        return input_features

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
