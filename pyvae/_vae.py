"""The scikit-learn estimator around the C++ core."""

import numbers
import os
import sys
import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import assert_all_finite, check_array, check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _cuda, _mpi, _persistence
from ._dask import dask_blockwise
from ._progress import EpochReporter, row_progress
from ._threads import _core

_GAUSSIAN = ("gaussian", "gaussian_isotropic")
_UNIT_INTERVAL = ("bernoulli", "continuous_bernoulli")
_LIKELIHOODS = ("gaussian", "gaussian_isotropic", "bernoulli", "continuous_bernoulli")
# Per-column likelihoods: these kinds take one column each; ("categorical", k)
# takes the k one-hot columns of a categorical variable.
_ONE_COLUMN_KINDS = ("gaussian", "bernoulli", "poisson")

# early_stopping="auto" holds out validation rows up to this many rows (where a
# nonlinear model can memorize the training rows); beyond, the smoothed training
# loss decides.
_AUTO_VALIDATION_MAX_ROWS = 10_000
# learning_rate_schedule="adaptive": the step size is divided by this at each
# plateau, down to learning_rate times the factor below; the next plateau ends training.
_LEARNING_RATE_DECAY = 10.0
_MIN_LEARNING_RATE_FACTOR = 0.01
# Epochs whose training losses are averaged before comparing (Monte Carlo noise).
_LOSS_SMOOTHING_EPOCHS = 5

# score_samples shows progress (with verbose) from this many draws (rows x K) on.
_SCORE_PROGRESS_MIN_DRAWS = 2**17

# Divergence that stays finite: a fit whose training objective ends more than
# this many nats per observed entry below the untrained model's has diverged
# (a step size too large for the data throws the parameters far out and Adam
# never brings them back). Any fit that learned something beats its own random
# initialization, so a healthy fit is nowhere near this margin.
_DIVERGED_NATS_PER_ENTRY = 1.0
# The objectives compared are measured on up to this many training rows (the first ones).
_DIVERGENCE_CHECK_ROWS = 1000
# With standardize=False, a Gaussian column whose standard deviation or |mean|
# lies outside these bounds is what standardizing would fix: the divergence
# message suggests it only then.
_STANDARDIZED_SCALE_BOUNDS = (0.1, 10.0)
# A count column's initial rate is its mean count, but at least this (a column of zeros).
_MIN_INITIAL_COUNT_RATE = 1e-3

# The hyperparameters' constraints, in one place: name -> (kind, allowed).
_INT, _REAL, _STR, _BOOL = "int", "real", "str", "bool"
_CONSTRAINTS = {
    "n_components": (_INT, (1, None)),
    "activation": (_STR, ("relu", "tanh")),
    "objective": (_STR, ("elbo", "iwae")),
    "kl": (_STR, ("analytic", "mc")),
    "posterior": (_STR, ("gaussian", "logistic", "laplace")),
    "gradient_estimator": (_STR, ("reparameterization", "score_function")),
    "missing": (_STR, ("error", "mask")),
    "n_mc_samples": (_INT, (1, None)),
    "beta": (_REAL, (0.0, None)),
    "variance_floor": (_REAL, (0.0, None)),
    "learning_rate_schedule": (_STR, ("adaptive", "constant")),
    "learning_rate": (_REAL, (0.0, None, "open")),
    "max_iter": (_INT, (1, None)),
    "alpha": (_REAL, (0.0, None)),
    "tol": (_REAL, (0.0, None)),
    "validation_fraction": (_REAL, (0.0, 1.0, "open")),
    "n_iter_no_change": (_INT, (1, None)),
    "warm_start": (_BOOL, None),
    "verbose": (_INT, (0, None)),
    "device": (_STR, ("cpu", "cuda")),
}


def _column_blocks(likelihood):
    """[[kind, width], ...] of a per-column likelihood (a sequence), None for a
    likelihood's name; ValueError for anything else."""
    hint = (f"The 'likelihood' parameter must be one of {list(_LIKELIHOODS)}, or a list with one entry per "
            f"column block: one of {list(_ONE_COLUMN_KINDS)} (one column) or ('categorical', k) (k >= 2 one-hot "
            "columns), e.g. likelihood=['gaussian', 'poisson', ('categorical', 3)]")
    if isinstance(likelihood, str):
        if likelihood not in _LIKELIHOODS:
            raise ValueError(f"{hint}; got {likelihood!r}.")
        return None
    if not isinstance(likelihood, (list, tuple)) or len(likelihood) == 0:
        raise ValueError(f"{hint}; got {likelihood!r}.")
    blocks = []
    for entry in likelihood:
        if isinstance(entry, str) and entry in _ONE_COLUMN_KINDS:
            blocks.append([entry, 1])
        elif (isinstance(entry, (list, tuple)) and len(entry) == 2 and entry[0] == "categorical"
              and isinstance(entry[1], numbers.Integral) and not isinstance(entry[1], bool) and entry[1] >= 2):
            blocks.append(["categorical", int(entry[1])])
        else:
            raise ValueError(f"{hint}; got the entry {entry!r}.")
    return blocks


def _columns_of_kind(blocks, kind):
    """Boolean mask (n_columns,) of the columns in blocks [[kind, width], ...] of the given kind."""
    return np.repeat([k == kind for k, _ in blocks], [width for _, width in blocks]).astype(bool)


def _models_gaussian(likelihood):
    """Whether a (checked) likelihood has Gaussian columns: the ones standardized and floored."""
    blocks = _column_blocks(likelihood)
    return likelihood in _GAUSSIAN if blocks is None else any(kind == "gaussian" for kind, _ in blocks)


# A latent dimension is active when its posterior mean varies more than this
# across the data (Burda et al., 2015).
_ACTIVE_VARIANCE = 1e-2


def _warn(message, category):
    """warnings.warn at the first frame outside pyvae and scikit-learn (whose
    wrappers and pipelines may stand between): the user's line."""
    import sklearn

    inside = tuple(os.path.dirname(os.path.abspath(m.__file__)) + os.sep for m in (sys.modules[__package__], sklearn))
    frame, level = sys._getframe(1), 2  # stacklevel 2: _warn's caller
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(inside):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def _check_hyperparameter(name, value, kind, allowed):
    if kind == _STR:
        if not isinstance(value, str) or value not in allowed:
            raise ValueError(f"The '{name}' parameter must be one of {list(allowed)}; got {value!r}.")
        return
    if kind == _BOOL:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"The '{name}' parameter must be a bool; got {value!r}.")
        return
    types = numbers.Integral if kind == _INT else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, types):
        what = "an int" if kind == _INT else "a real number"
        raise ValueError(f"The '{name}' parameter must be {what}; got {value!r} of type {type(value).__name__}.")
    low, high, *options = allowed
    open_low = "open" in options  # open interval at the low end (and at the high end when there is one)
    too_low = low is not None and (value <= low if open_low else value < low)
    too_high = high is not None and (value >= high if open_low else value > high)
    if not np.isfinite(value) or too_low or too_high:
        bound = f"> {low}" if open_low else f">= {low}"
        if high is not None:
            bound += f" and < {high}" if open_low else f" and <= {high}"
        raise ValueError(f"The '{name}' parameter must be {bound}; got {value!r}.")


class VAE(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Variational autoencoder with a hand-derived C++ core.

    Maximizes the evidence lower bound (ELBO) of a latent-variable model
    p(x, z) = p(x | z) N(z; 0, I) with an MLP encoder q(z | x) (a diagonal
    Gaussian by default) and an MLP decoder p(x | z), by minibatch Adam with
    the reparameterization trick z = mu + exp(logvar / 2) * eps; or, with
    ``objective="iwae"``, the importance-weighted bound (Burda et al., 2015).

    Training runs in float32; outputs of ``transform``, ``inverse_transform``
    and ``sample_posterior`` have the dtype of the input (float32 or float64),
    and ``sample`` and ``score_samples`` return float64.

    Parameters
    ----------
    n_components : int, default=2
        Dimension of the latent space.
    hidden_layer_sizes : tuple of int, default=(100,)
        Widths of the encoder's hidden layers; the decoder mirrors them.
        ``()`` gives linear maps (with ``likelihood="gaussian"``, factor analysis).
    activation : {"relu", "tanh"}, default="relu"
        Activation of the hidden layers.
    likelihood : {"gaussian", "gaussian_isotropic", "bernoulli", "continuous_bernoulli"} or list, \
            default="gaussian"
        p(x | z). ``"gaussian"``: a Gaussian mean from the decoder and a
        learned variance per feature, for general real-valued data (the
        default, since that is what tabular data in scikit-learn usually is).
        ``"gaussian_isotropic"``: one shared learned variance (probabilistic
        PCA with no hidden layers).
        ``"bernoulli"``: logits from the decoder, for binary data; on grey
        levels in [0, 1] it trains well (the PyTorch example's choice) but its
        scores are not log-densities there.
        ``"continuous_bernoulli"`` (Loaiza-Ganem & Cunningham, 2019): the
        normalized density on [0, 1] with the same logits; use it for data in
        [0, 1] that is not binary when scores must be log-likelihoods.
        A list gives each block of columns its own kind, in column order:
        ``"gaussian"`` (one column, its own learned variance), ``"bernoulli"``
        (one 0/1 column), ``"poisson"`` (one column of counts, log-rate from
        the decoder, starting at the log of the column's mean count; the
        encoder sees the counts standardized, so that counts in the
        thousands train at the default learning rate) or
        ``("categorical", k)`` (the k one-hot columns of a
        categorical variable, softmax over their logits; with
        ``missing="mask"`` a missing category is NaN in all k columns). For
        example ``["gaussian", "gaussian", "bernoulli", ("categorical", 3),
        "poisson"]`` for 7 columns. ``inverse_transform`` then gives each
        column's mean (probabilities for the binary and categorical columns,
        rates for the counts) and ``sample`` draws of each kind.
    objective : {"elbo", "iwae"}, default="elbo"
        What training maximizes. ``"elbo"``: the ELBO. ``"iwae"``: the
        importance-weighted bound (Burda, Grosse & Salakhutdinov, 2015)
        ``log (1/K) sum_k p(x, z_k) / q(z_k | x)`` of the K = ``n_mc_samples``
        draws of each row, tighter than the ELBO as K grows, which pushes the
        model toward a higher log p(x) (K = 1 is the ELBO with ``kl="mc"``);
        with ``missing="mask"`` over the observed entries (MIWAE, Mattei &
        Frellsen, 2019). The bound needs each draw's log q(z|x) - log p(z),
        so training uses that Monte Carlo KL whatever ``kl`` says; ``kl``
        still decides how the ELBO of the scores (``n_importance=1``) and
        of the progress display is computed. Early stopping then compares
        the held-out bound with K draws, and ``loss_curve_`` holds the
        negative bound. Needs ``gradient_estimator="reparameterization"``
        and ``device="cpu"`` (the CUDA engine trains on the ELBO only).
    kl : {"analytic", "mc"}, default="analytic"
        KL(q(z|x) || p(z)) in closed form, or estimated by Monte Carlo with
        the same draws as the reconstruction term (log p(z) - log q(z|x)).
        ``objective="iwae"`` trains with the Monte Carlo KL either way.
    n_mc_samples : int, default=1
        Monte Carlo samples S of z per row for the ELBO and its gradient;
        with ``objective="iwae"``, the K of the bound (the paper uses 5 or 50).
    beta : float, default=1.0
        Weight of the KL term in the training objective (beta-VAE; with
        ``objective="iwae"`` each draw's log weight is
        ``log p(x|z) - beta (log q(z|x) - log p(z))``).
        Scores always report the true ELBO (beta = 1).
    variance_floor : float, default=1e-6
        Lower bound of the Gaussian likelihoods' variance, which is
        ``variance_floor + exp(learned log-variance)``, in the units the core
        sees (standardized ones by default: a millionth of each feature's
        variance, as GaussianMixture's ``reg_covar``). Without it a feature the
        decoder predicts exactly (a constant column) drives its variance and
        the score toward infinity; with it that feature adds at most
        ``-0.5 * log(2 pi variance_floor)`` (about 6 nats) to a row's score.
    standardize : {"auto", True, False}, default="auto"
        Center and scale each feature inside the model (statistics learned in
        ``fit``, stored as ``mean_`` and ``scale_``) for the Gaussian
        likelihoods and Gaussian columns ("auto"; the other kinds model the
        data as it is: their mean is 0 and scale 1).
        Every output is in the data's own units, and scores are densities of
        the data itself (they include the log-determinant of the scaling), so
        raw and standardized copies of a data set give equivalent models.
        ``"gaussian_isotropic"`` uses one scale for all features, keeping its
        noise isotropic.
    posterior : {"gaussian", "logistic", "laplace"}, default="gaussian"
        Family of q(z | x). The Gaussian draws eps ~ N(0, I); the logistic
        and Laplace families draw eps ~ U(0, 1) and map it through their
        inverse CDF. Those need ``kl="mc"``.
    gradient_estimator : {"reparameterization", "score_function"}, default="reparameterization"
        How the encoder's gradient is estimated: pathwise through z, or the
        score-function (REINFORCE) estimator with a running-mean baseline.
    missing : {"error", "mask"}, default="error"
        ``"mask"`` accepts NaN entries as missing: they are left out of the
        reconstruction term and enter the encoder as 0 (in count columns,
        which the encoder sees standardized, the column's mean count).
    batch_size : int or "auto", default="auto"
        Rows per minibatch (capped at the number of rows). "auto":
        ``min(128, max(8, n_rows // 16))``, so that an epoch over a few hundred
        rows still takes about 16 optimizer steps.
    learning_rate : float, default=1e-2
        Adam's (initial) step size.
    learning_rate_schedule : {"adaptive", "constant"}, default="adaptive"
        "adaptive": each time training stalls for ``n_iter_no_change`` epochs,
        the step size is divided by 10, twice (down to ``learning_rate / 100``;
        Adam's noise around an optimum scales with it); the next stall ends
        training. "constant": the first stall ends training.
    max_iter : int, default=1000
        Maximum number of epochs.
    alpha : float, default=0.0
        L2 penalty on the weight matrices (a Gaussian prior; MAP estimate):
        ``alpha / 2 * ||W||^2`` is added to the per-row loss.
    tol : float, default=1e-4
        Improvement in nats per row of the validation score (with early
        stopping) or of the training loss averaged over the last 5 epochs
        (without), below which an epoch counts as no progress. The average
        keeps the Monte Carlo noise of single epochs from looking like progress.
    early_stopping : {"auto", True, False}, default="auto"
        Hold out ``validation_fraction`` of the rows and judge progress by
        their ELBO (with fixed noise, so it moves only with the parameters);
        the best parameters are kept. "auto": on for data of at most 10,000
        rows, where a nonlinear model can memorize the training rows.
        ``partial_fit`` never holds out rows.
    validation_fraction : float, default=0.1
        Fraction of rows held out with early stopping.
    n_iter_no_change : int, default=20
        Epochs without progress before the step size is reduced or training
        stops (see ``learning_rate_schedule``).
    warm_start : bool, default=False
        Continue from the previous fit's parameters on ``fit``.
    random_state : int, RandomState instance or None, default=None
        Seeds initialization, shuffling and every Monte Carlo draw. The same
        value gives bit-identical results, whatever the thread count.
    verbose : int, default=0
        0 shows nothing. 1 shows a progress bar of the epochs with the ELBO,
        reconstruction and KL terms (with tqdm installed; otherwise one line per
        epoch), and of long ``score_samples`` calls. 2 prints one line per epoch.
    n_threads : int or None, default=None
        Threads of the core; None uses all cores.
    device : {"cpu", "cuda"}, default="cpu"
        Where to train: ``"cuda"`` runs the same model on an NVIDIA GPU
        (pyvae built with ``PYVAE_CUDA=ON``; ``fit`` raises a RuntimeError
        naming what is missing otherwise). The parameters always live in host
        memory, so a model trained on a GPU saves, pickles and runs anywhere:
        where no GPU is usable, inference runs on the CPU.

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.
    params_ : ndarray of shape (n_params,), float32
        Every weight, bias and noise log-variance, in one flat buffer.
    loss_curve_ : list of float
        Mean negative ELBO per row of the training rows, per epoch, in nats
        of the data in its own units (comparable with ``score``); with
        ``objective="iwae"`` the negative importance-weighted bound trained
        on (comparable with ``score(X, n_importance=n_mc_samples)``).
    validation_scores_ : list of float
        Mean held-out ELBO per epoch (with early stopping, else empty); with
        ``objective="iwae"`` the held-out bound with ``n_mc_samples`` draws.
    mean_ : ndarray of shape (n_features_in_,) or None
        Per-feature mean the model subtracts (``standardize``), else None.
    scale_ : ndarray of shape (n_features_in_,) or None
        Per-feature scale the model divides by (``standardize``), else None.
    best_validation_score_ : float or None
        Best of ``validation_scores_``.
    best_loss_ : float
        Lowest value of ``loss_curve_``.
    n_iter_ : int
        Epochs run.
    t_ : int
        Optimizer steps taken.
    active_units_ : int
        Latent dimensions whose posterior mean varies across the training
        rows (variance above 1e-2, over the posterior means of the last epoch);
        few active units signal posterior collapse.
    latent_variance_ : ndarray of shape (n_components,)
        That variance per latent dimension: dimension d is active when
        ``latent_variance_[d] > 1e-2`` (``plot_latent_traversal`` marks the others).

    Examples
    --------
    >>> import numpy as np
    >>> from pyvae import VAE
    >>> X = np.random.default_rng(0).normal(size=(200, 5))
    >>> vae = VAE(n_components=2, hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X)
    >>> vae.transform(X).shape
    (200, 2)
    >>> vae.sample(3, random_state=0).shape
    (3, 5)

    Columns of different kinds: two real columns, a 0/1 column, counts and a
    three-category one-hot group.

    >>> rng = np.random.default_rng(0)
    >>> X = np.column_stack([rng.normal(size=(200, 2)), rng.integers(0, 2, 200), rng.poisson(3.0, 200),
    ...                      np.eye(3)[rng.integers(0, 3, 200)]])
    >>> kinds = ["gaussian", "gaussian", "bernoulli", "poisson", ("categorical", 3)]
    >>> vae = VAE(n_components=2, hidden_layer_sizes=(16,), likelihood=kinds, max_iter=5, random_state=0).fit(X)
    >>> draws = vae.sample(4, random_state=0)
    >>> sorted(set(draws[:, 2])) <= [0.0, 1.0], bool((draws[:, 4:].sum(axis=1) == 1).all())
    (True, True)
    """

    def __init__(
        self,
        n_components=2,
        *,
        hidden_layer_sizes=(100,),
        activation="relu",
        likelihood="gaussian",
        objective="elbo",
        kl="analytic",
        n_mc_samples=1,
        beta=1.0,
        variance_floor=1e-6,
        standardize="auto",
        posterior="gaussian",
        gradient_estimator="reparameterization",
        missing="error",
        batch_size="auto",
        learning_rate=1e-2,
        learning_rate_schedule="adaptive",
        max_iter=1000,
        alpha=0.0,
        tol=1e-4,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=20,
        warm_start=False,
        random_state=None,
        verbose=0,
        n_threads=None,
        device="cpu",
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.likelihood = likelihood
        self.objective = objective
        self.kl = kl
        self.n_mc_samples = n_mc_samples
        self.beta = beta
        self.variance_floor = variance_floor
        self.standardize = standardize
        self.posterior = posterior
        self.gradient_estimator = gradient_estimator
        self.missing = missing
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.max_iter = max_iter
        self.alpha = alpha
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.n_threads = n_threads
        self.device = device

    # ------------------------------------------------------------------ checks

    def _check_params(self):
        for name, (kind, allowed) in _CONSTRAINTS.items():
            _check_hyperparameter(name, getattr(self, name), kind, allowed)
        _column_blocks(self.likelihood)  # a bad likelihood (name or column list) raises here
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, (numbers.Integral,)) and not isinstance(sizes, bool):
            sizes = (sizes,)
        if not isinstance(sizes, (tuple, list)) or not all(
            isinstance(h, numbers.Integral) and not isinstance(h, bool) and h >= 1 for h in sizes
        ):
            raise ValueError(
                "The 'hidden_layer_sizes' parameter must be a tuple of ints >= 1 (or () for a linear model); "
                f"got {self.hidden_layer_sizes!r}."
            )
        if self.n_threads is not None:
            _check_hyperparameter("n_threads", self.n_threads, _INT, (1, None))
        if self.batch_size != "auto":
            _check_hyperparameter("batch_size", self.batch_size, _INT, (1, None))
        if not (isinstance(self.early_stopping, (bool, np.bool_)) or self.early_stopping == "auto"):
            raise ValueError(
                f"The 'early_stopping' parameter must be 'auto', True or False; got {self.early_stopping!r}."
            )
        if not (isinstance(self.standardize, (bool, np.bool_)) or self.standardize == "auto"):
            raise ValueError(f"The 'standardize' parameter must be 'auto', True or False; got {self.standardize!r}.")
        if self.standardize is True and not _models_gaussian(self.likelihood):
            raise ValueError(
                f"standardize=True needs a Gaussian likelihood (or Gaussian columns); likelihood="
                f"{self.likelihood!r} models the data as it is. Use standardize='auto' or False."
            )
        if self.objective == "iwae" and self.gradient_estimator != "reparameterization":
            raise ValueError(
                f"objective='iwae' needs gradient_estimator='reparameterization'; got gradient_estimator="
                f"{self.gradient_estimator!r}. The importance-weighted bound is trained through its "
                "reparameterized draws; use objective='elbo' with the score-function estimator."
            )
        if self.objective == "iwae" and self.device == "cuda":
            raise ValueError(
                "objective='iwae' trains on the CPU engine only: the CUDA engine trains on the ELBO. Use "
                "device='cpu', or objective='elbo'."
            )
        if self.posterior != "gaussian" and self.kl == "analytic":
            raise ValueError(
                f"The 'kl' parameter must be 'mc' with posterior={self.posterior!r}: its KL divergence "
                "to the N(0, I) prior has no closed form."
            )
        check_random_state(self.random_state)
        return tuple(int(h) for h in sizes)

    def _validate_X(self, X, *, reset):
        allow_nan = self.missing == "mask" if reset else self._fit_config["missing"]
        try:
            # NaN and infinity pass here: the one pass over the values below finds both.
            X = validate_data(
                self,
                X,
                reset=reset,
                dtype=(np.float32, np.float64),
                ensure_all_finite=False,
                ensure_min_samples=1,
            )
        except (ValueError, TypeError) as exc:
            found = _first_string_entry(X)
            if found is None:
                raise
            column, row, value = found
            raise ValueError(
                f"X has a string in column {column}, row {row}: {value!r} is not a number. VAE needs numeric "
                "features: encode categorical columns first (e.g. OneHotEncoder in a ColumnTransformer) "
                "or drop them."
            ) from exc
        # NaN and infinity counts and the range of the rest, in one pass over X
        # (NumPy took one pass per question: most of partial_fit's overhead on MNIST).
        # ravel(order="K") is a view of C- or F-ordered X; only other layouts copy.
        n_nan, n_inf, low, high = _core.value_scan(X.ravel(order="K"), _resolve_threads(self.n_threads))
        if n_inf:
            assert_all_finite(X, allow_nan=True, input_name="X")  # scikit-learn's message, as before
        if n_nan and not allow_nan:
            nan_rows, nan_columns = np.nonzero(np.isnan(X))
            names = getattr(self, "feature_names_in_", None)
            column = f"{names[nan_columns[0]]!r}" if names is not None else f"{nan_columns[0]}"
            count = nan_rows.size
            where = (f"{count} NaN entr{'y' if count == 1 else 'ies'}, the first in column {column}, "
                     f"row {nan_rows[0]}")
            if reset:
                raise ValueError(
                    f"Input X contains NaN ({where}). To treat NaN as missing entries (left out of the "
                    "reconstruction term), use VAE(missing='mask'); or impute them first (e.g. "
                    "sklearn.impute.SimpleImputer)."
                )
            raise ValueError(
                f"Input X contains NaN ({where}), but this model was fitted with missing='error'. To "
                "treat NaN as missing entries, refit with VAE(missing='mask'); or impute them first "
                "(e.g. sklearn.impute.SimpleImputer)."
            )
        likelihood = self.likelihood if reset else self._fit_config["likelihood"]
        blocks = _column_blocks(self.likelihood) if reset else self._fit_config.get("columns")
        if blocks is not None:
            _check_column_kinds(X, blocks)
        # (An all-NaN X with missing="mask" has no range to check.)
        elif likelihood in _UNIT_INTERVAL and n_nan < X.size and (low < 0 or high > 1):
            raise ValueError(
                f"likelihood={likelihood!r} needs X in [0, 1]; got values in [{low:.4g}, {high:.4g}]. "
                "Scale X (e.g. MinMaxScaler) or use likelihood='gaussian'."
            )
        return X

    @property
    def _n_features_out(self):
        # Names the outputs for get_feature_names_out: vae0, vae1, ...
        return self._fit_config["n_components"]

    # ------------------------------------------------------------------ engine

    def _engine(self):
        """The C++ model for the fitted configuration (cached, rebuilt after unpickling),
        on the GPU for device="cuda" where one is usable, else on the CPU."""
        device = "cuda" if getattr(self, "device", "cpu") == "cuda" and _cuda.cuda_available()[0] else "cpu"
        cached = self.__dict__.get("_engine_cache")
        if cached is None or cached[0] != device:
            make = _cuda.load_engine if device == "cuda" else _core.Model32
            cached = (device, make(n_threads=_resolve_threads(self.n_threads), **self._fit_config))
            self.__dict__["_engine_cache"] = cached
        engine = cached[1]
        engine.n_threads = _resolve_threads(self.n_threads)
        return engine

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_engine_cache", None)
        return state

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y=None, comm=None):
        """Fit the model to X by maximizing the ELBO (or the bound ``objective`` names).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. Values in [0, 1] for ``likelihood="bernoulli"``.
            With ``comm``, this rank's shard of the rows.
        y : Ignored
            Not used, present for API consistency by convention.
        comm : mpi4py.MPI.Comm, default=None
            Train data-parallel over the communicator's ranks (every rank
            calls ``fit`` with its own rows): each step, the ranks' gradients
            are summed by one ``Allreduce``, so every rank ends with the same
            model. The effective batch is ``batch_size`` x number of ranks.
            See docs/distributed.md.

        Returns
        -------
        self : VAE
            The fitted estimator.

        Raises
        ------
        FloatingPointError
            If training diverges: the ELBO becomes NaN or infinite, or the
            fitted model fits its training rows worse than it did untrained
            (by more than a nat per entry, on up to 1,000 of them). The
            message says what to try; the estimator is left as it was.

        Examples
        --------
        >>> import numpy as np
        >>> from pyvae import VAE
        >>> X = np.random.default_rng(0).normal(size=(200, 5))
        >>> vae = VAE(n_components=2, hidden_layer_sizes=(16,), max_iter=20, random_state=0).fit(X)
        >>> vae.n_iter_, len(vae.loss_curve_)
        (20, 20)
        """
        return self._fit(X, incremental=False, comm=comm)

    def partial_fit(self, X, y=None, comm=None):
        """Run one epoch over X, initializing the model on the first call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training data.
        y : Ignored
            Not used, present for API consistency by convention.
        comm : mpi4py.MPI.Comm, default=None
            As in :meth:`fit`: one epoch over every rank's rows.

        Returns
        -------
        self : VAE
            The updated estimator.

        Raises
        ------
        FloatingPointError
            As in :meth:`fit`; the check against the untrained model runs in
            the call that initializes the model only (a later chunk may
            differ from the earlier ones without anything having diverged).

        Examples
        --------
        >>> import numpy as np
        >>> from pyvae import VAE
        >>> X = np.random.default_rng(0).normal(size=(200, 5))
        >>> vae = VAE(n_components=2, hidden_layer_sizes=(16,), random_state=0)
        >>> for chunk in np.array_split(X, 4):
        ...     vae = vae.partial_fit(chunk)
        >>> vae.n_iter_
        4
        """
        return self._fit(X, incremental=True, comm=comm)

    def _fit(self, X, incremental, comm=None):
        # A rejected or failed call leaves the estimator exactly as it was:
        # training works on copies, and validation's side effects are undone.
        saved = dict(self.__dict__)
        try:
            with _mpi.context(comm) as ctx:
                return self._fit_unsafe(X, incremental, ctx)
        except KeyboardInterrupt:
            raise
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _fit_unsafe(self, X, incremental, ctx):
        # ctx: the data-parallel hooks (pyvae/_mpi.py); identities for one process.
        try:
            hidden = self._check_params()
            if self.device == "cuda":
                _cuda.require_cuda(data_parallel=ctx.data_parallel)
            continuing = hasattr(self, "params_") and (incremental or self.warm_start)
            X = self._validate_X(X, reset=not continuing)
        except Exception as exc:
            ctx.agree(self, error=exc)  # with several ranks, every rank raises
            raise
        ctx.agree(self, n_rows=X.shape[0], n_features=X.shape[1], continuing=continuing)
        if continuing:
            state = _TrainingState.resume(self)
        else:
            self._fit_config = self._new_config(X, hidden, ctx)
            self.mean_, self.scale_ = self._learn_standardization(X, ctx)
            self._seed = ctx.bcast(_draw_seed(self.random_state))
            self.__dict__.pop("_engine_cache", None)
            state = _TrainingState.fresh(self._initial_params(self._engine()))
        X32 = self._model_units(X)
        ctx.bcast_state(state)
        early_stopping = not incremental and (
            self.early_stopping is True or (self.early_stopping == "auto" and ctx.n_total <= _AUTO_VALIDATION_MAX_ROWS)
        )
        rows, validation_rows = self._split_rows(ctx.n_total, early_stopping=early_stopping)
        X_val = ctx.local_rows(X32, validation_rows) if validation_rows is not None else None
        # Scores and losses are reported in nats of x in the user's units.
        val_jacobian = self._log_jacobian(ctx.local_rows(X, validation_rows)) if X_val is not None else None
        train_jacobian = ctx.mean(self._log_jacobian(X))
        batch_size = self._resolved_batch_size(len(rows))
        engine = self._engine()
        max_epochs = 1 if incremental else int(self.max_iter)
        adaptive = self.learning_rate_schedule == "adaptive" and not incremental
        learning_rate = float(self.learning_rate)
        reporter = EpochReporter(self.verbose if ctx.rank == 0 else 0, max_epochs)
        converged = incremental
        # Every fit is checked against the untrained model, and so is the
        # partial_fit that initializes the model; a later partial_fit is not:
        # one epoch on a chunk unlike the previous ones may leave the model
        # worse there than an untrained one without anything having diverged.
        check_rows = None if incremental and continuing else ctx.local_rows(X32, rows[:_DIVERGENCE_CHECK_ROWS])
        first_epoch = state.n_iter
        try:
            if check_rows is not None:
                untrained = self._training_objective(engine, self._initial_params(engine), check_rows, batch_size,
                                                     ctx)
            for _ in range(max_epochs):
                started = time.perf_counter()
                epoch = engine.train_epoch(
                    state.params, state.m, state.v, state.step, state.baseline, X32, rows,
                    batch_size * ctx.size, self._seed,
                    _core.AdamSettings(learning_rate=learning_rate, alpha=float(self.alpha)), **ctx.engine_kwargs,
                )
                if not epoch["finite"] or not np.isfinite(state.params).all():
                    raise FloatingPointError(
                        f"Training diverged: the ELBO became NaN or infinite in epoch {state.n_iter + 1} "
                        f"(learning_rate={learning_rate:.3g}). {self._divergence_advice(X)} The estimator is "
                        "left as it was before this call."
                    )
                val_score = None
                if X_val is not None:
                    val_score = ctx.mean(self._held_out_scores(engine, state.params, X_val) + val_jacobian)
                n = epoch["n_rows"]
                epoch["elbo"] += train_jacobian * n
                if "bound" in epoch:  # objective="iwae": the bound trained on
                    epoch["bound"] += train_jacobian * n
                reporter.epoch(state.n_iter + 1, epoch["elbo"] / n, epoch["recon"] / n, epoch["kl"] / n,
                               time.perf_counter() - started, val_score)
                stalled = state.record_epoch(epoch, val_score, self.tol)
                if incremental:
                    break
                if stalled >= self.n_iter_no_change:
                    if adaptive and learning_rate > float(self.learning_rate) * _MIN_LEARNING_RATE_FACTOR:
                        # A plateau at this step size: Adam's noise floor scales with it.
                        learning_rate /= _LEARNING_RATE_DECAY
                        state.stalled = 0
                        continue
                    converged = True
                    reporter.close(reason=f"converged: no improvement for {self.n_iter_no_change} epochs at "
                                          f"learning rate {learning_rate:.3g}")
                    break
            if check_rows is not None:
                fitted = state.best_params if state.best_params is not None else state.params
                self._check_not_diverged(
                    untrained, self._training_objective(engine, fitted, check_rows, batch_size, ctx), check_rows,
                    state.n_iter - first_epoch, ctx, X)
            if not converged:
                _warn(f"VAE stopped after max_iter={self.max_iter} epochs without converging "
                      f"(tol={self.tol}); raise max_iter or tol.", ConvergenceWarning)
        except KeyboardInterrupt:
            # Keep the work done: every completed step leaves consistent parameters.
            state.commit(self)
            raise
        finally:
            reporter.close()
            if hasattr(engine, "release_data"):  # the device copy of X
                engine.release_data()
        if state.best_params is not None:
            state.params = state.best_params
        ctx.check_same(state.params)
        state.commit(self)
        self.latent_variance_ = self._latent_variance(X32, epoch, ctx)
        self.active_units_ = int(np.sum(self.latent_variance_ > _ACTIVE_VARIANCE))
        return self

    def _initial_params(self, engine):
        """The parameters a fresh fit starts from (the same for every call with the
        fitted seed): the core's initialization, except that the decoder's
        log-rate of each count column starts at the log of the column's mean
        count. From the core's output bias near 0 (rate 1), counts in the
        hundreds would make the first steps' losses and gradients thousands of
        times those of the other columns."""
        params = engine.init_params(self._seed)
        config = self._fit_config
        if "encoder_shift" in config:  # a model with count columns (older models keep the core's bias)
            counts = np.flatnonzero(_columns_of_kind(config["columns"], "poisson"))
            output_bias = [offset for name, offset, _ in engine.layout()
                           if name.startswith("decoder.") and name.endswith(".bias")][-1]
            mean_counts = np.asarray(config["encoder_shift"])[counts]  # the shift of a count column is its mean
            params[output_bias + counts] = np.log(np.maximum(mean_counts, _MIN_INITIAL_COUNT_RATE))
        return params

    def _training_objective(self, engine, params, X32, batch_size, ctx):
        """Mean per row, over every rank's rows X32 (model units), of the objective
        training maximizes: reconstruction - beta * KL, with the configured
        likelihood, KL estimator and missing entries, or with objective="iwae"
        the importance-weighted bound; -inf where it is not finite.

        It comes from one pass of the core's own training loop at learning
        rate 0 on copies of the parameters (so they cannot move), with the same
        noise whatever the parameters: two calls on the same rows compare
        parameters, not draws. (The ELBO of ``score`` would not do: with
        beta < 1 it may fall as training succeeds.)"""
        total, n = 0.0, len(X32)
        if n:
            epoch = engine.train_epoch(params.copy(), np.zeros_like(params), np.zeros_like(params), 0, 0.0, X32,
                                       np.arange(n, dtype=np.int64), batch_size, self._seed,
                                       _core.AdamSettings(learning_rate=0.0))
            objective = epoch["bound"] if "bound" in epoch else epoch["recon"] - self._fit_config["beta"] * epoch["kl"]
            total = objective if epoch["finite"] else -np.inf
        total, n = ctx.sum([total, n])
        return total / n if np.isfinite(total) else -np.inf

    def _held_out_scores(self, engine, params, X32):
        """Per-row scores of held-out rows X32 (model units) that early stopping compares,
        with the fitted seed's noise (so they move with the parameters only): the ELBO,
        or with objective="iwae" the importance-weighted bound of n_mc_samples draws."""
        config = self._fit_config
        if config.get("objective", "elbo") == "iwae":
            return engine.score(params, X32, config["n_mc_samples"], True, self._seed)
        return engine.score(params, X32, 1, False, self._seed)

    def _check_not_diverged(self, untrained, fitted, X32, n_epochs, ctx, X):
        """FloatingPointError when the fitted model's training objective (per row,
        on the rows X32) ends far below the untrained model's: training diverged
        though every number stayed finite."""
        entries = ctx.sum([np.count_nonzero(~np.isnan(X32)), len(X32)])
        margin = _DIVERGED_NATS_PER_ENTRY * entries[0] / max(entries[1], 1.0)
        if fitted >= untrained - margin:
            return
        raise FloatingPointError(
            f"Training diverged: after {n_epochs} epoch{'s' if n_epochs != 1 else ''} with "
            f"learning_rate={float(self.learning_rate):.3g}, the model fits the training data worse than it did "
            f"untrained (its training objective went from {untrained:.4g} to {fitted:.4g} nats per row). "
            f"{self._divergence_advice(X)} The estimator is left as it was before this call."
        )

    def _divergence_advice(self, X):
        """What to try after training diverged, only what applies to this model and X."""
        remedies = ["a smaller learning_rate", "a larger alpha"]
        config = self._fit_config
        if "columns" in config:
            gaussian = _columns_of_kind(config["columns"], "gaussian")
        else:
            gaussian = np.full(X.shape[1], config["likelihood"] in _GAUSSIAN)
        if gaussian.any():
            remedies.append("a larger variance_floor")
            # Standardizing helps only where the model sees Gaussian columns far
            # from unit scale: not when it standardizes them itself (mean_), and
            # not for the other kinds, which model the data as it is.
            if self.__dict__.get("mean_") is None and _far_from_standardized(X[:, gaussian]):
                remedies.append("standardized features (standardize='auto', or a StandardScaler before the VAE)")
        return f"Try {', '.join(remedies[:-1])} or {remedies[-1]}."

    def _new_config(self, X, hidden, ctx):
        """The architecture and objective a fresh fit on X builds: what the engine needs."""
        blocks = _column_blocks(self.likelihood)
        config = dict(
            n_features=int(X.shape[1]),
            n_components=int(self.n_components),
            hidden_layer_sizes=list(hidden),
            activation=self.activation,
            likelihood=self.likelihood if blocks is None else "mixed",
            kl=self.kl,
            objective=self.objective,
            posterior=self.posterior,
            gradient_estimator=self.gradient_estimator,
            n_mc_samples=int(self.n_mc_samples),
            beta=float(self.beta),
            missing=self.missing == "mask",
            variance_floor=float(self.variance_floor) if _models_gaussian(self.likelihood) else 0.0,
        )
        if blocks is not None:
            config["columns"] = blocks
            counts = _columns_of_kind(blocks, "poisson")
            if counts.any():
                # Count columns enter the encoder standardized (csrc/config.h,
                # Config::encoder_shift, says why); the others as they are.
                mean, var = ctx.column_moments(X)
                scale = np.sqrt(var)
                usable = counts & np.isfinite(mean) & (scale > 0)  # not an empty or constant column
                config["encoder_shift"] = np.where(counts & np.isfinite(mean), mean, 0.0).tolist()
                config["encoder_scale"] = np.where(usable, scale, 1.0).tolist()
        return config

    def _resolved_batch_size(self, n_train):
        """batch_size="auto": 128 rows, or fewer on small data so that an epoch
        still takes about 16 optimizer steps."""
        if self.batch_size != "auto":
            return int(self.batch_size)
        return int(min(128, max(8, n_train // 16)))

    def _split_rows(self, n_samples, early_stopping):
        """Training rows and held-out rows (None without early stopping), drawn from the fitted seed."""
        rows = np.arange(n_samples, dtype=np.int64)
        if not early_stopping:
            return rows, None
        n_val = int(np.ceil(self.validation_fraction * n_samples))
        if n_samples - n_val < 1:
            raise ValueError(
                f"early_stopping with validation_fraction={self.validation_fraction} leaves no training "
                f"rows out of n_samples={n_samples}."
            )
        permutation = check_random_state(self._seed & 0x7FFFFFFF).permutation(n_samples)
        return np.sort(permutation[n_val:]), np.sort(permutation[:n_val])

    def _latent_variance(self, X32, epoch, ctx):
        """Var over the training rows of each latent dimension's posterior mean."""
        if "mu_sum" not in epoch:  # an engine that does not keep the sums: encode every row again
            mu, _ = self._engine().encode(self.params_, X32)
            var, _ = ctx.column_variance(mu)  # over every rank's rows
            return np.zeros(mu.shape[1]) if var is None else np.asarray(var, np.float64)
        # From the posterior means the last epoch computed anyway: the core sums
        # mu and mu^2 per latent dimension as it goes (encoding every row again
        # cost a fifth of an epoch per call).
        Z = len(epoch["mu_sum"])
        sums = ctx.sum(np.concatenate([epoch["mu_sum"], epoch["mu_sq_sum"], [epoch["mu_rows"]]]))
        n = sums[-1]
        if n < 2:
            return np.zeros(Z)
        mean = sums[:Z] / n
        return np.maximum(sums[Z:2 * Z] / n - mean**2, 0.0)

    # ------------------------------------------------------------------ units

    def _standardizes(self):
        return self.standardize is True or (self.standardize == "auto" and _models_gaussian(self.likelihood))

    def _learn_standardization(self, X, ctx):
        """(mean_, scale_) per feature for the Gaussian likelihoods, None otherwise.
        A constant (or entirely missing) column keeps scale 1, as in StandardScaler."""
        if not self._standardizes():
            return None, None
        mean, var = ctx.column_moments(X)
        if self.likelihood == "gaussian_isotropic":
            # One scale for every feature: per-feature scales would make the noise
            # anisotropic in the data's units (no longer probabilistic PCA).
            var = np.full_like(var, np.nanmean(var) if np.isfinite(var).any() else np.nan)
        scale = np.sqrt(var)
        degenerate = ~(scale > 1e-12 * np.maximum(np.abs(mean), 1.0))  # NaN included
        scale[degenerate] = 1.0
        mean[np.isnan(mean)] = 0.0
        blocks = _column_blocks(self.likelihood)
        if blocks is not None:  # per-column likelihoods: only the Gaussian columns are scaled
            gaussian = _columns_of_kind(blocks, "gaussian")
            mean[~gaussian], scale[~gaussian] = 0.0, 1.0
        return mean, scale

    def _model_units(self, X, dtype=np.float32):
        """X as the core sees it: C-contiguous, standardized when the model standardizes."""
        mean, scale = self.__dict__.get("mean_"), self.__dict__.get("scale_")
        if mean is None:
            return np.ascontiguousarray(X, dtype=dtype)
        return np.ascontiguousarray((X - mean) / scale, dtype=dtype)

    def _user_units(self, X_model, dtype):
        """Decoder outputs or draws (float32, model units) in the user's units and dtype."""
        mean, scale = self.__dict__.get("mean_"), self.__dict__.get("scale_")
        if mean is None:
            return X_model.astype(dtype, copy=False)
        return (X_model * scale + mean).astype(dtype, copy=False)

    def _log_jacobian(self, X):
        """Per row, log |d x_model / d x| over the observed entries: what turns a
        density of the standardized data into a density of X (in nats)."""
        scale = self.__dict__.get("scale_")
        if scale is None:
            return np.zeros(X.shape[0])
        log_scale = np.log(scale)
        if not self._fit_config["missing"]:
            return np.full(X.shape[0], -log_scale.sum())
        return -((~np.isnan(X)) @ log_scale)

    # ------------------------------------------------------------------ inference

    def _prepare(self, X):
        check_is_fitted(self, "params_")
        X = self._validate_X(X, reset=False)
        return X, self._model_units(X)

    @dask_blockwise(n_in=lambda est: est.n_features_in_, n_out=lambda est: est._fit_config["n_components"],
                    n_outputs=lambda arguments: 2 if arguments["return_std"] else 1)
    def transform(self, X, return_std=False):
        """Posterior mean E[z | x] of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to encode. A Dask array gives Dask arrays (lazy, blockwise).
        return_std : bool, default=False
            Also return the posterior standard deviation.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            Posterior means, in the dtype of X (float32 or float64).
        Z_std : ndarray of shape (n_samples, n_components)
            Posterior standard deviations; only when ``return_std`` is True.

        Examples
        --------
        >>> import numpy as np
        >>> from pyvae import VAE
        >>> X = np.random.default_rng(0).normal(size=(200, 5))
        >>> vae = VAE(n_components=2, hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X)
        >>> Z, Z_std = vae.transform(X[:3], return_std=True)
        >>> Z.shape, Z_std.shape, bool((Z_std > 0).all())
        ((3, 2), (3, 2), True)
        """
        X, X32 = self._prepare(X)
        engine = self._engine()
        mu, logvar = engine.encode(self.params_, X32)
        mu = mu.astype(X.dtype, copy=False)
        if not return_std:
            return mu
        std = np.exp(0.5 * logvar.astype(np.float64)) * engine.posterior_std_per_scale
        return mu, std.astype(X.dtype, copy=False)

    def sample_posterior(self, X, n_samples=1, random_state=None, *, rows_first=None):
        """Draw z ~ q(z | x) for each row of X.

        Parameters
        ----------
        X : array-like of shape (n_samples_X, n_features)
            Data to encode.
        n_samples : int, default=1
            Draws per row.
        random_state : int, RandomState instance or None, default=None
            Seed of the draws; each row's draws depend on the row and the seed only.
        rows_first : bool or None, default=None
            The layout of the draws. True: rows first, shape (n_samples_X,
            n_samples, n_components), pyvae's one convention for draws (as
            :meth:`pyvae.VAEImputer.sample_imputations` and scikit-learn's
            ``sample_y``). False: draws first, (n_samples, n_samples_X,
            n_components), deprecated. None: draws first with a FutureWarning;
            rows first will become the default in pyvae 0.3 and draws first
            will then be removed.

        Returns
        -------
        Z : ndarray of shape (n_samples_X, n_samples, n_components)
            The draws, in the dtype of X (with ``rows_first=True``).

        Examples
        --------
        >>> import numpy as np
        >>> from pyvae import VAE
        >>> X = np.random.default_rng(0).normal(size=(200, 5))
        >>> vae = VAE(n_components=2, hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X)
        >>> vae.sample_posterior(X[:3], n_samples=10, random_state=0, rows_first=True).shape
        (3, 10, 2)
        """
        X, X32 = self._prepare(X)
        _check_hyperparameter("n_samples", n_samples, _INT, (1, None))
        if rows_first not in (None, True, False):
            raise ValueError(f"rows_first must be True, False or None; got {rows_first!r}.")
        if rows_first is not True:
            _warn("sample_posterior's draws-first layout (n_samples, n_samples_X, n_components) is deprecated: "
                  "pass rows_first=True for (n_samples_X, n_samples, n_components), the layout of every pyvae "
                  "sampling method, which becomes the default in pyvae 0.3.", FutureWarning)
        z = self._engine().sample_posterior(self.params_, X32, int(n_samples), _draw_seed(random_state))
        if rows_first:
            z = np.ascontiguousarray(z.transpose(1, 0, 2))
        return z.astype(X.dtype, copy=False)

    @dask_blockwise(n_in=lambda est: est._fit_config["n_components"], n_out=lambda est: est.n_features_in_)
    def inverse_transform(self, Z):
        """Decoder mean E[x | z]: probabilities (Bernoulli) or the Gaussian mean.

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_components)
            Latent codes. A Dask array gives a Dask array (lazy, blockwise).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features_in_)
            Decoded means, in the dtype of Z (float32 or float64); in [0, 1]
            for the Bernoulli likelihood.

        Examples
        --------
        >>> import numpy as np
        >>> from pyvae import VAE
        >>> X = np.random.default_rng(0).random(size=(200, 5))
        >>> vae = VAE(n_components=2, hidden_layer_sizes=(16,), likelihood="bernoulli", max_iter=5,
        ...           random_state=0).fit(X)
        >>> X_hat = vae.inverse_transform(vae.transform(X))  # reconstructions
        >>> X_hat.shape, bool(((0 <= X_hat) & (X_hat <= 1)).all())
        ((200, 5), True)
        """
        check_is_fitted(self, "params_")
        Z = _check_latent(Z, self._fit_config["n_components"])
        out = self._engine().decode(self.params_, np.ascontiguousarray(Z, dtype=np.float32))
        return self._user_units(out, Z.dtype)

    def sample(self, n_samples=1, random_state=None):
        """Draw x from the model: z ~ N(0, I), then x ~ p(x | z).

        Parameters
        ----------
        n_samples : int, default=1
            Number of draws.
        random_state : int, RandomState instance or None, default=None
            Seed of the draws.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features_in_), float64
            Samples; 0/1 values for the Bernoulli likelihood.

        Examples
        --------
        >>> import numpy as np
        >>> from pyvae import VAE
        >>> X = np.random.default_rng(0).random(size=(200, 5))
        >>> vae = VAE(n_components=2, hidden_layer_sizes=(16,), likelihood="bernoulli", max_iter=5,
        ...           random_state=0).fit(X)
        >>> draws = vae.sample(4, random_state=0)
        >>> draws.shape, np.unique(draws).tolist()
        ((4, 5), [0.0, 1.0])
        >>> bool((vae.sample(4, random_state=0) == draws).all())  # same seed, same draws
        True
        """
        check_is_fitted(self, "params_")
        _check_hyperparameter("n_samples", n_samples, _INT, (1, None))
        seed = _draw_seed(random_state)
        engine = self._engine()
        z = engine.sample_prior(int(n_samples), seed)
        return self._user_units(engine.sample_observations(self.params_, z, seed ^ 0x9E3779B97F4A7C15), np.float64)

    @dask_blockwise(n_in=lambda est: est.n_features_in_, dtype=np.float64)
    def score_samples(self, X, n_importance=1):
        """Per-row lower bound on log p(x), in nats.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score. A Dask array gives a Dask array (lazy, blockwise).
        n_importance : int, default=1
            1 gives the ELBO (``n_mc_samples`` draws, the configured KL);
            K > 1 gives the importance-weighted bound with K draws, which
            tightens toward log p(x) as K grows.

        Returns
        -------
        scores : ndarray of shape (n_samples,), float64
            The bound per row. Each row's draws depend only on the row and the
            fitted seed, so a row scores the same in any batch or order.

        Examples
        --------
        >>> import numpy as np
        >>> from pyvae import VAE
        >>> X = np.random.default_rng(0).normal(size=(200, 5))
        >>> vae = VAE(n_components=2, hidden_layer_sizes=(16,), max_iter=20, random_state=0).fit(X)
        >>> elbo = vae.score_samples(X)
        >>> bound = vae.score_samples(X, n_importance=100)  # tighter, on average
        >>> elbo.shape, bool(bound.mean() > elbo.mean())
        ((200,), True)
        >>> bool(np.allclose(vae.score_samples(X[:5]), elbo[:5]))  # draws depend on the row only
        True
        """
        X, X32 = self._prepare(X)
        _check_hyperparameter("n_importance", n_importance, _INT, (1, None))
        K = int(n_importance)
        engine = self._engine()
        if not self.verbose or K == 1 or X32.shape[0] * K < _SCORE_PROGRESS_MIN_DRAWS:
            return engine.score(self.params_, X32, K, K > 1, self._seed) + self._log_jacobian(X)
        # Long call: score in slices of rows to show progress. Each slice is a whole
        # number of the core's own blocks of rows, so every block sees the same rows
        # as in one call and the result is bit-identical.
        block = engine.score_block_rows(K)
        step = block * max(1, -(-X32.shape[0] // (block * 50)))
        out = np.empty(X32.shape[0], dtype=np.float64)
        progress = row_progress(self.verbose, X32.shape[0], f"score_samples (K={K})")
        try:
            for start in range(0, X32.shape[0], step):
                stop = min(start + step, X32.shape[0])
                out[start:stop] = engine.score(self.params_, X32[start:stop], K, True, self._seed)
                progress.update(stop - start)
        finally:
            progress.close()
        return out + self._log_jacobian(X)

    def score(self, X, y=None, n_importance=1):
        """Mean per-row bound on log p(x) (the ELBO by default), in nats.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.
        y : Ignored
            Not used, present for API consistency by convention.
        n_importance : int, default=1
            See :meth:`score_samples`.

        Returns
        -------
        score : float
            Mean of :meth:`score_samples`.

        Examples
        --------
        >>> import numpy as np
        >>> from pyvae import VAE
        >>> X = np.random.default_rng(0).normal(size=(200, 5))
        >>> untrained = VAE(n_components=2, hidden_layer_sizes=(16,), max_iter=1, random_state=0).fit(X)
        >>> trained = VAE(n_components=2, hidden_layer_sizes=(16,), max_iter=50, random_state=0).fit(X)
        >>> bool(trained.score(X) > untrained.score(X))
        True
        """
        return float(np.mean(self.score_samples(X, n_importance=n_importance)))

    def save(self, path):
        """Save the fitted model to ``path`` in pyvae's safe .npz format.

        The file holds hyperparameters, weights and optimizer state as arrays
        and JSON text; :func:`pyvae.load` reads it without executing code.
        The write is atomic: an interrupted save leaves an existing file intact.

        Parameters
        ----------
        path : str or path-like
            Destination file.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> import pyvae
        >>> X = np.random.default_rng(0).normal(size=(100, 4))
        >>> vae = pyvae.VAE(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X)
        >>> path = os.path.join(tempfile.mkdtemp(), "vae.npz")
        >>> vae.save(path)
        >>> bool((pyvae.load(path).transform(X) == vae.transform(X)).all())
        True
        """
        _persistence.save(self, path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.allow_nan = self.missing == "mask"
        return tags


class _TrainingState:
    """Copies of everything a fit updates, committed to the estimator only when
    the fit ends well (or is interrupted), so a failed fit changes nothing."""

    @classmethod
    def fresh(cls, params):
        s = cls()
        s.params = params
        s.m = np.zeros_like(s.params)
        s.v = np.zeros_like(s.params)
        s.step, s.baseline, s.n_iter = 0, 0.0, 0
        s.loss_curve, s.validation_scores = [], []
        s.best_loss, s.best_validation_score, s.best_params = np.inf, None, None
        s.stalled = 0
        s.best_smoothed_loss = np.inf
        return s

    @classmethod
    def resume(cls, est):
        s = cls()
        s.params, s.m, s.v = est.params_.copy(), est._adam_m.copy(), est._adam_v.copy()
        s.step, s.baseline, s.n_iter = est.t_, est._baseline, est.n_iter_
        s.loss_curve, s.validation_scores = list(est.loss_curve_), list(est.validation_scores_)
        s.best_loss, s.best_validation_score, s.best_params = est.best_loss_, est.best_validation_score_, None
        s.stalled = 0
        s.best_smoothed_loss = np.inf
        return s

    def record_epoch(self, epoch, validation_score, tol):
        """Books an epoch's results; returns how many epochs in a row made no
        progress (by more than tol) on the validation score, or on the smoothed
        training loss without one. The best validated parameters are kept."""
        self.step, self.baseline = epoch["step"], epoch["baseline"]
        self.n_iter += 1
        loss = -epoch.get("bound", epoch["elbo"]) / epoch["n_rows"]  # the bound trained on, with objective="iwae"
        self.loss_curve.append(loss)
        if validation_score is not None:
            self.validation_scores.append(validation_score)
            best = self.best_validation_score
            improved = best is None or validation_score > best + tol
            if best is None or validation_score > best:
                self.best_validation_score = validation_score
                self.best_params = self.params.copy()
        else:
            # The mean of the last few epochs: one epoch's loss carries the Monte
            # Carlo noise of its draws, which a plain running minimum mistakes for progress.
            smoothed = float(np.mean(self.loss_curve[-_LOSS_SMOOTHING_EPOCHS:]))
            improved = smoothed < self.best_smoothed_loss - tol
            self.best_smoothed_loss = min(self.best_smoothed_loss, smoothed)
        self.best_loss = min(self.best_loss, loss)
        self.stalled = 0 if improved else self.stalled + 1
        return self.stalled

    def commit(self, est):
        est.params_, est._adam_m, est._adam_v = self.params, self.m, self.v
        est.t_, est._baseline, est.n_iter_ = self.step, self.baseline, self.n_iter
        est.loss_curve_, est.validation_scores_ = self.loss_curve, self.validation_scores
        est.best_loss_, est.best_validation_score_ = self.best_loss, self.best_validation_score


def _check_column_kinds(X, blocks):
    """ValueError unless X's columns hold values of their blocks' kinds: 0/1
    for "bernoulli" (or values in [0, 1]), counts for "poisson", one-hot rows
    for a categorical block (NaN throughout the block when it is missing)."""
    width = sum(w for _, w in blocks)
    if X.shape[1] != width:
        raise ValueError(f"likelihood lists {width} columns (block widths summed); X has {X.shape[1]} features.")
    start = 0
    for kind, w in blocks:
        cols = X[:, start:start + w]
        where = f"column {start}" if w == 1 else f"columns {start}-{start + w - 1}"
        if kind == "bernoulli":
            values = cols[~np.isnan(cols)]
            if values.size and (values.min() < 0 or values.max() > 1):
                raise ValueError(f"{where} (bernoulli) needs values in [0, 1]; got values in "
                                 f"[{values.min():.4g}, {values.max():.4g}].")
        elif kind == "poisson":
            values = cols[~np.isnan(cols)]
            bad = (values < 0) | (values != np.round(values))
            if bad.any():
                raise ValueError(f"{where} (poisson) needs counts (integers >= 0); got {float(values[bad][0])!r}.")
        elif kind == "categorical":
            missing = np.isnan(cols)
            partial = missing.any(axis=1) & ~missing.all(axis=1)
            if partial.any():
                raise ValueError(f"{where} (categorical) are one variable: a row is missing all of them or none; "
                                 f"row {np.flatnonzero(partial)[0]} has NaN in some only.")
            rows = cols[~missing.any(axis=1)]
            one_hot = ((rows == 0) | (rows == 1)).all(axis=1) & (rows.sum(axis=1) == 1)
            if not one_hot.all():
                row = np.flatnonzero(~missing.any(axis=1))[np.flatnonzero(~one_hot)[0]]
                raise ValueError(f"{where} (categorical) need one-hot rows (one 1, the rest 0); row {row} is "
                                 f"{cols[row].tolist()}.")
        start += w


def _first_string_entry(X):
    """(column, row, value) of the first string in X that is not a number, or None.

    The column is the name for a DataFrame, else the index; the row is a position."""
    columns = getattr(X, "columns", None)
    if columns is not None and hasattr(X, "iloc"):
        items = ((repr(name), X.iloc[:, j].to_numpy(dtype=object)) for j, name in enumerate(columns))
    else:
        try:
            array = np.asarray(X, dtype=object)
        except (ValueError, TypeError):  # ragged rows: the original error says it better
            return None
        if array.ndim != 2:
            return None
        items = ((str(j), array[:, j]) for j in range(array.shape[1]))
    for column, values in items:
        for row, value in enumerate(values):
            if isinstance(value, (str, bytes)):
                try:
                    float(value)
                except ValueError:
                    return column, row, value
    return None


def _far_from_standardized(X):
    """Whether a column of X (NaN = missing) has a standard deviation or |mean|
    outside _STANDARDIZED_SCALE_BOUNDS, as data before standardizing often has."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an entirely missing column
        mean, std = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
    low, high = _STANDARDIZED_SCALE_BOUNDS
    # (A constant column stays constant when standardized: it does not count.)
    return bool(np.any(((std > 0) & (std < low)) | (std > high) | (np.abs(mean) > high)))


def _check_latent(Z, n_components):
    Z = check_array(Z, dtype=(np.float32, np.float64), ensure_min_samples=1, input_name="Z")
    if Z.shape[1] != n_components:
        raise ValueError(f"Z has {Z.shape[1]} columns, but the model has n_components={n_components}.")
    return Z


def _draw_seed(random_state):
    rng = check_random_state(random_state)
    return int(rng.randint(0, 2**31 - 1)) << 32 | int(rng.randint(0, 2**31 - 1))


def _resolve_threads(n_threads):
    return max(1, int(n_threads)) if n_threads is not None else int(_core.build_config["max_threads"])
