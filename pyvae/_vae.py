"""The scikit-learn estimator around the C++ core."""

from functools import partial

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from . import _cuda, _persistence, _power, _training
from ._dask import dask_blockwise
from ._progress import by_row_slices, warn
from ._threads import _core, resolve_threads
from ._validation import INT, check_hyperparameter, check_latent, columns_of_kind, draw_seed, validate_vae_input

# score_samples shows progress (with verbose) from this many draws (rows x K) on.
_SCORE_PROGRESS_MIN_DRAWS = 2**17
# A count column's initial rate is its mean count, but at least this (a column of zeros).
_MIN_INITIAL_COUNT_RATE = 1e-3


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
    likelihood : {"gaussian", "gaussian_isotropic", "gaussian_heteroscedastic", "bernoulli", \
            "continuous_bernoulli"} or list, default="gaussian"
        p(x | z). ``"gaussian"``: a Gaussian mean from the decoder and a
        learned variance per feature, for general real-valued data (the
        default, since that is what tabular data in scikit-learn usually is).
        ``"gaussian_isotropic"``: one shared learned variance (probabilistic
        PCA with no hidden layers).
        ``"gaussian_heteroscedastic"``: the decoder gives each row a variance
        per feature, ``variance_floor + exp(lv)`` (lv clamped to [-30, 30]),
        so the noise follows z; CPU engine only.
        ``"bernoulli"``: logits from the decoder, for binary data; on grey
        levels in [0, 1] it trains well (the PyTorch example's choice) but its
        scores are not log-densities there.
        ``"continuous_bernoulli"`` (Loaiza-Ganem & Cunningham, 2019): the
        normalized density on [0, 1] with the same logits; use it for data in
        [0, 1] that is not binary when scores must be log-likelihoods.
        A list gives each block of columns its own kind, in column order:
        ``"gaussian"`` (one column, its own learned variance),
        ``"gaussian_heteroscedastic"`` (one column, its variance per row),
        ``"bernoulli"`` (one 0/1 column), ``"poisson"`` (one column of
        counts, log-rate from the decoder, from the log of its mean count; the
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
        What training maximizes. ``"elbo"``: the ELBO. ``"iwae"``: the importance-weighted bound (Burda, Grosse
        & Salakhutdinov, 2015) ``log (1/K) sum_k p(x, z_k) / q(z_k | x)`` of the K = ``n_mc_samples`` draws of
        each row, tighter than the ELBO as K grows, which pushes the model toward a higher log p(x) (K = 1 is
        the ELBO with ``kl="mc"``); with ``missing="mask"`` over the observed entries (MIWAE, Mattei & Frellsen,
        2019). The bound needs each draw's log q(z|x) - log p(z), so training uses that Monte Carlo KL whatever
        ``kl`` says; ``kl`` still decides how the ELBO of the scores (``n_importance=1``) and of the progress
        display is computed. Early stopping then compares the held-out bound with K draws, and ``loss_curve_``
        holds the negative bound. Needs ``gradient_estimator="reparameterization"`` and ``device="cpu"`` (the
        CUDA engine trains on the ELBO only).
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
        Lower bound of the Gaussian likelihoods' variance, which is ``variance_floor + exp(learned
        log-variance)``, in the units the core sees (standardized ones by default: a millionth of each feature's
        variance, as GaussianMixture's ``reg_covar``). Without it a feature the decoder predicts exactly (a
        constant column) drives its variance and the score toward infinity; with it that feature adds at most
        ``-0.5 * log(2 pi variance_floor)`` (about 6 nats) to a row's score.
    standardize : {"auto", True, False}, default="auto"
        Center and scale each feature inside the model (statistics learned in ``fit``, stored as ``mean_`` and
        ``scale_``) for the Gaussian likelihoods and Gaussian columns; the other kinds model the data as it is
        (their mean is 0 and scale 1). ``"auto"`` then applies a Yeo-Johnson power transform to each
        Gaussian column that looks continuous (more than 10 distinct values, none in over 10% of the rows),
        its exponent fitted by maximum likelihood (``lambdas_``; 1 leaves a column as it is), and standardizes
        the result again (``power_mean_``, ``power_scale_``): a skewed or heavy-tailed column then costs the
        Gaussian decoder no more than a symmetric one (benchmarks/POWER.md). ``True`` only standardizes.
        Every output is in the data's own units, and scores are densities of the data itself (they include the
        log-determinant of these maps), so raw and standardized copies of a data set give equivalent models.
        ``"gaussian_isotropic"`` uses one scale for all features and no power transform, keeping its noise
        isotropic. ``inverse_transform`` maps the decoder's mean back through the transform: with a power
        transform that is the median of the decoder's distribution in the data's units, not its mean.
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
    learning_rate : float or "auto", default="auto"
        Adam's (initial) step size. "auto": 1e-2 for data of up to 150
        features (the encoder's inputs), and ``1.5 / n_features`` beyond, so
        that one step moves a first-layer unit's input about as much on
        784-pixel images as on a small table (with 1e-2 on MNIST most ReLU
        units die within a few epochs; benchmarks/MNIST_DEFAULTS.md).
    learning_rate_schedule : {"adaptive", "constant", "linear", "cosine"}, default="adaptive"
        "adaptive": at each stall of ``n_iter_no_change`` epochs the step size
        is divided by 10, twice (Adam's noise around an optimum scales with
        it); the next stall ends training. "constant": the first stall ends
        it. "linear" / "cosine": exactly ``max_iter`` epochs, epoch e at
        ``learning_rate`` times ``1 - e / max_iter`` / ``(1 + cos(pi e /
        max_iter)) / 2``; stalls end nothing. ``partial_fit`` keeps ``learning_rate``.
    max_iter : int, default=1000
        Maximum number of epochs.
    alpha : float, default=0.0
        L2 penalty on the weight matrices (a Gaussian prior; MAP estimate):
        ``alpha / 2 * ||W||^2`` is added to the per-row loss.
    tol : float, default=1e-4
        Improvement in nats per row of the validation score (with early stopping) or of the objective trained
        (``beta`` included) averaged over 5 epochs (without), below which an epoch counts as no progress. The
        average keeps the Monte Carlo noise of single epochs from looking like progress.
    early_stopping : {"auto", True, False}, default="auto"
        Hold out ``validation_fraction`` of the rows and judge progress by their ELBO (with fixed noise, so it
        moves only with the parameters); the best parameters are kept. "auto": on for data of at most 10,000
        rows, where a nonlinear model can memorize the training rows. ``partial_fit`` never holds out rows.
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
        Threads of the core; None uses all cores. A training step runs on one
        thread while timing it shows that faster (the same bits either way).
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
    lambdas_ : ndarray of shape (n_features_in_,) or None
        Yeo-Johnson exponent of each standardized feature (1: not transformed); None when no feature is.
    power_mean_, power_scale_ : ndarray of shape (n_features_in_,) or None
        Mean and scale of the power-transformed features, which the model subtracts and divides by.
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
        learning_rate="auto",
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

    @property
    def _n_features_out(self):
        return self._fit_config["n_components"]

    # ------------------------------------------------------------------ engine

    def _engine(self, threads=None):
        """The C++ model for the fitted configuration (cached, rebuilt after unpickling),
        on the GPU for device="cuda" where one is usable, else on the CPU; running
        `threads` threads of the core if given, else those n_threads asks for."""
        threads = resolve_threads(self.n_threads) if threads is None else threads
        device = "cuda" if getattr(self, "device", "cpu") == "cuda" and _cuda.cuda_available()[0] else "cpu"
        cached = self.__dict__.get("_engine_cache")
        if cached is None or cached[0] != device:
            make = _cuda.load_engine if device == "cuda" else _core.Model32
            cached = (device, make(n_threads=threads, **self._fit_config))
            self.__dict__["_engine_cache"] = cached
        engine = cached[1]
        engine.n_threads = threads
        return engine

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_engine_cache", None)
        return state

    # ------------------------------------------------------------------ for pyvae's other modules
    # The training loop (_training.py), VAEImputer, diagnostics, plot and
    # persistence reach the engine and the fitted configuration only through these.

    def _configure(self, config):
        """Adopt a fresh fit's configuration (see _training.new_config); the engine follows it."""
        self._fit_config = config
        self.__dict__.pop("_engine_cache", None)

    def _initial_params(self):
        """The parameters a fresh fit starts from, the same for the fitted seed: the
        core's, but each count column's decoder log-rate starts at the log of its mean
        count (from rate 1, counts in the hundreds would swamp the first steps)."""
        engine = self._engine()
        params = engine.init_params(self._seed)
        config = self._fit_config
        if "encoder_shift" in config:  # a model with count columns (older models keep the core's bias)
            counts = np.flatnonzero(columns_of_kind(config["columns"], "poisson"))
            output_bias = [offset for name, offset, _ in engine.layout()
                           if name.startswith("decoder.") and name.endswith(".bias")][-1]
            mean_counts = np.asarray(config["encoder_shift"])[counts]  # the shift of a count column is its mean
            params[output_bias + counts] = np.log(np.maximum(mean_counts, _MIN_INITIAL_COUNT_RATE))
        return params

    def _train_epoch(self, params, m, v, step, baseline, X32, rows, batch_size, learning_rate, alpha,
                     **engine_kwargs):
        """One epoch of the core's training loop over the rows `rows` of X32 (model
        units) with the fitted seed's noise, which updates params and Adam's moments
        m and v in place: the epoch's sums, its new step and baseline (a dict)."""
        adam = _core.AdamSettings(learning_rate=learning_rate, alpha=alpha)
        return self._engine().train_epoch(params, m, v, step, baseline, X32, rows, batch_size, self._seed, adam,
                                          **engine_kwargs)

    def _held_out_scores(self, params, X32):
        """Per-row scores of held-out rows X32 (model units) that early stopping compares,
        with the fitted seed's noise (so they move with the parameters only): the ELBO,
        or with objective="iwae" the importance-weighted bound of n_mc_samples draws."""
        iwae = self._fit_config.get("objective", "elbo") == "iwae"
        return self._engine().score(params, X32, self._fit_config["n_mc_samples"] if iwae else 1, iwae, self._seed)

    def _posterior_means(self, X32):
        """E[z | x] of each row of X32 (model units)."""
        return self._engine().encode(self.params_, X32)[0]

    def _release_training_data(self):
        """Free the engine's device copy of the training data, if it made one."""
        cached = self.__dict__.get("_engine_cache")
        if cached is not None and hasattr(cached[1], "release_data"):
            cached[1].release_data()

    def _impute(self, X32, n_draws, seed, n_threads, refine_steps):
        """X32 (model units, NaN = missing) with each missing entry replaced by its
        importance-weighted conditional mean over n_draws posterior draws (of q(z|x)
        refined by refine_steps steps); on the core's threads n_threads asks for (a
        VAEImputer's: results do not depend on it)."""
        engine = self._engine(resolve_threads(n_threads))
        return engine.impute(self.params_, X32, int(n_draws), seed, int(refine_steps))

    def _sample_imputations(self, X32, n_draws, n_imputations, seed, n_threads, refine_steps):
        """(n_rows, n_imputations, n_features) completions of X32 (model units, NaN =
        missing) by importance resampling of n_draws posterior draws; the rest as in _impute."""
        engine = self._engine(resolve_threads(n_threads))
        return engine.sample_imputations(self.params_, X32, int(n_draws), int(n_imputations), seed, int(refine_steps))

    def _gradient_draws(self, X, estimator, dtype, rng):
        """(draw, layout): draw() gives the training objective's loss and gradient
        (float64) at params_ on the rows of X, with fresh noise from rng each call,
        from an engine in dtype with the given gradient estimator."""
        X = validate_vae_input(self, X, reset=False)
        config = dict(self._fit_config, gradient_estimator=estimator)
        engine = (_core.Model64 if dtype == np.float64 else _core.Model32)(
            n_threads=resolve_threads(self.n_threads), **config)
        x_obs = self._model_units(X, dtype=dtype)
        x_enc = np.nan_to_num(x_obs, nan=0.0)
        params, baseline = np.ascontiguousarray(self.params_, dtype=dtype), float(self._baseline)
        shape = (config["n_mc_samples"], x_obs.shape[0], config["n_components"])
        below_one = np.nextafter(dtype.type(1), dtype.type(0))

        def draw():
            if config["posterior"] != "gaussian":  # open interval (0, 1), as the core draws it
                noise = np.minimum((rng.randint(0, 2**53, size=shape, dtype=np.int64) + 0.5) * 2.0**-53, below_one)
            else:
                noise = rng.standard_normal(size=shape)
            out = engine.loss_and_grad(params, x_obs, x_enc, noise.astype(dtype), baseline)
            return out["loss"], np.asarray(out["grad"], dtype=np.float64)

        return draw, list(engine.layout())

    def _n_params(self):
        """Length of the flat parameter buffer of the fitted architecture."""
        return self._engine().n_params

    def _decodes_probabilities(self):
        """Whether the decoder's means are Bernoulli probabilities, in [0, 1]."""
        return self._fit_config["likelihood"] == "bernoulli"

    def _inactive_dimensions(self):
        """Boolean mask (n_components,) of the latent dimensions whose posterior mean hardly
        varies over the training rows (those active_units_ leaves out); none for a model
        pickled before latent_variance_ existed."""
        variance = self.__dict__.get("latent_variance_")
        if variance is None:
            return np.zeros(self._n_features_out, dtype=bool)
        return np.asarray(variance) <= _training.ACTIVE_VARIANCE

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
        return _training.train(self, X, incremental=False, comm=comm)

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
        return _training.train(self, X, incremental=True, comm=comm)

    # ------------------------------------------------------------------ units

    def _model_units(self, X, dtype=np.float32):
        """X as the core sees it: C-contiguous, standardized (and power-transformed) when the model does so."""
        return np.ascontiguousarray(_power.to_model_units(self.__dict__, X), dtype=dtype)

    def _user_units(self, X_model, dtype):
        """Decoder outputs or draws (float32, model units) in the user's units and dtype."""
        return _power.to_user_units(self.__dict__, X_model).astype(dtype, copy=False)

    def _log_jacobian(self, X):
        """Per row, log |d x_model / d x| over the observed entries (nats)."""
        return _power.log_jacobian(self.__dict__, X, self._fit_config["missing"])

    # ------------------------------------------------------------------ inference

    def _prepare(self, X):
        check_is_fitted(self, "params_")
        X = validate_vae_input(self, X, reset=False)
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
        check_hyperparameter("n_samples", n_samples, INT, (1, None))
        if rows_first not in (None, True, False):
            raise ValueError(f"rows_first must be True, False or None; got {rows_first!r}.")
        if rows_first is not True:
            warn("sample_posterior's draws-first layout (n_samples, n_samples_X, n_components) is deprecated: "
                  "pass rows_first=True for (n_samples_X, n_samples, n_components), the layout of every pyvae "
                  "sampling method, which becomes the default in pyvae 0.3.", FutureWarning)
        z = self._engine().sample_posterior(self.params_, X32, int(n_samples), draw_seed(random_state))
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
        Z = check_latent(Z, self._fit_config["n_components"])
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
        check_hyperparameter("n_samples", n_samples, INT, (1, None))
        seed = draw_seed(random_state)
        engine = self._engine()
        z = engine.sample_prior(int(n_samples), seed)
        return self._user_units(engine.sample_observations(self.params_, z, seed ^ 0x9E3779B97F4A7C15), np.float64)

    @dask_blockwise(n_in=lambda est: est.n_features_in_, dtype=np.float64)
    def score_samples(self, X, n_importance=1, refine_steps=0):
        """Per-row lower bound on log p(x), in nats.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score. A Dask array gives a Dask array (lazy, blockwise).
        n_importance : int, default=1
            1 gives the ELBO (``n_mc_samples`` draws, the configured KL);
            K > 1 gives the importance-weighted bound with K draws, which
            tightens toward log p(x) as K grows.
        refine_steps : int, default=0
            Steps of Adam on each row's own ELBO that move the encoder's
            q(z|x) before the draws (semi-amortized inference): still a lower
            bound, tighter where the encoder is far from a row's best q (rows
            unlike the training data). Each step costs two decoder passes.

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
        check_hyperparameter("n_importance", n_importance, INT, (1, None))
        check_hyperparameter("refine_steps", refine_steps, INT, (0, None))
        K, engine = int(n_importance), self._engine()
        score = partial(engine.score, self.params_, n_draws=K, importance=K > 1, seed=self._seed,
                        refine_steps=int(refine_steps))
        if not self.verbose or K == 1 or X32.shape[0] * K < _SCORE_PROGRESS_MIN_DRAWS:
            return score(X=X32) + self._log_jacobian(X)
        # Long call: score in slices of rows to show progress, each a whole number of
        # the core's own blocks of rows, so that the result is bit-identical.
        parts = by_row_slices(lambda start, stop: score(X=X32[start:stop]), X32.shape[0],
                              engine.score_block_rows(K), self.verbose, f"score_samples (K={K})")
        return np.concatenate(parts) + self._log_jacobian(X)

    def score(self, X, y=None, n_importance=1, refine_steps=0):
        """Mean per-row bound on log p(x) (the ELBO by default), in nats.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.
        y : Ignored
            Not used, present for API consistency by convention.
        n_importance, refine_steps : int, default=1, 0
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
        return float(np.mean(self.score_samples(X, n_importance=n_importance, refine_steps=refine_steps)))

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

