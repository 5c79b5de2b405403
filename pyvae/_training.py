"""VAE's training loop: the epochs of ``fit`` and ``partial_fit``, the
learning-rate schedule, early stopping, the divergence checks and the warnings.

It reaches the model only through VAE's private methods (``_train_epoch``,
``_held_out_scores``, ``_initial_params``, ...), so the engine stays behind
VAE; ``ctx`` is the data-parallel context of pyvae/_mpi.py (identities for
one process).
"""

import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from . import _cuda, _mpi, _power
from ._progress import EpochReporter, warn
from ._validation import (GAUSSIAN, GAUSSIAN_KINDS, check_vae_hyperparameters, column_blocks, columns_of_kind, draw_seed,
                          models_gaussian, validate_vae_input)

# early_stopping="auto" holds out validation rows up to this many rows (where a
# nonlinear model can memorize the training rows); beyond, the smoothed training
# loss decides.
AUTO_VALIDATION_MAX_ROWS = 10_000
# learning_rate="auto": Adam moves every weight by about the step size each
# step, so one step can move a first-layer unit's input by up to
# step x n_inputs x a typical |x|. The small tables' step, 1e-2, is kept up to
# 150 inputs; above that the step shrinks as 1 / n_inputs (on MNIST's 784
# pixels 1e-2 leaves most ReLU units dead: benchmarks/MNIST_DEFAULTS.md).
AUTO_LEARNING_RATE = 1e-2
AUTO_LEARNING_RATE_INPUTS = 150
# learning_rate_schedule="adaptive": the step size is divided by this at each
# plateau, down to learning_rate times the factor below; the next plateau ends training.
LEARNING_RATE_DECAY = 10.0
MIN_LEARNING_RATE_FACTOR = 0.01
# The fixed-budget schedules: the step size of the epoch that starts a fraction
# t in [0, 1) of the way through max_iter epochs, over learning_rate; each
# epoch's steps take its start's step size.
DECAYING_SCHEDULES = {
    "linear": lambda t: 1.0 - t,
    "cosine": lambda t: 0.5 * (1.0 + np.cos(np.pi * t)),
}
# Epochs whose training losses are averaged before comparing (Monte Carlo noise).
LOSS_SMOOTHING_EPOCHS = 5
# A latent dimension is active when its posterior mean varies more than this
# across the data (Burda et al., 2015).
ACTIVE_VARIANCE = 1e-2

# Divergence that stays finite: a fit whose training objective ends more than
# this many nats per observed entry below the untrained model's has diverged
# (a step size too large for the data throws the parameters far out and Adam
# never brings them back). Any fit that learned something beats its own random
# initialization, so a healthy fit is nowhere near this margin.
DIVERGED_NATS_PER_ENTRY = 1.0
# The objectives compared are measured on up to this many training rows (the first ones).
DIVERGENCE_CHECK_ROWS = 1000
# With standardize=False, a Gaussian column whose standard deviation or |mean|
# lies outside these bounds is what standardizing would fix: the divergence
# message suggests it only then.
STANDARDIZED_SCALE_BOUNDS = (0.1, 10.0)


def train(est, X, incremental, comm=None):
    """Fit the VAE ``est`` to X (this rank's rows, with the MPI communicator
    ``comm``): epochs up to max_iter (fit) or one (partial_fit); ``est``.

    A rejected or failed call leaves the estimator exactly as it was: training
    works on copies, and validation's side effects are undone."""
    saved = dict(est.__dict__)
    try:
        with _mpi.context(comm) as ctx:
            return _train(est, X, incremental, ctx)
    except KeyboardInterrupt:
        raise
    except BaseException:
        est.__dict__.clear()
        est.__dict__.update(saved)
        raise


def _train(est, X, incremental, ctx):
    try:
        hidden = check_vae_hyperparameters(est)
        if est.device == "cuda":
            _cuda.require_cuda(data_parallel=ctx.data_parallel)
        continuing = hasattr(est, "params_") and (incremental or est.warm_start)
        X = validate_vae_input(est, X, reset=not continuing)
    except Exception as exc:
        ctx.agree(est, error=exc)  # with several ranks, every rank raises
        raise
    ctx.agree(est, n_rows=X.shape[0], n_features=X.shape[1], continuing=continuing)
    if continuing:
        state = TrainingState.resume(est)
    else:
        est._configure(new_config(est, X, hidden, ctx))
        est.mean_, est.scale_ = learn_standardization(est, X, ctx)
        est.lambdas_, est.power_mean_, est.power_scale_ = learn_power_transform(est, X, ctx)
        est._seed = ctx.bcast(draw_seed(est.random_state))
        state = TrainingState.fresh(est._initial_params())
    X32 = est._model_units(X)
    ctx.bcast_state(state)
    early_stopping = not incremental and (
        est.early_stopping is True or (est.early_stopping == "auto" and ctx.n_total <= AUTO_VALIDATION_MAX_ROWS)
    )
    rows, validation_rows = split_rows(est, ctx.n_total, early_stopping=early_stopping)
    X_val = ctx.local_rows(X32, validation_rows) if validation_rows is not None else None
    # Scores and losses are reported in nats of x in the user's units.
    val_jacobian = est._log_jacobian(ctx.local_rows(X, validation_rows)) if X_val is not None else None
    train_jacobian = ctx.mean(est._log_jacobian(X))
    batch_size = resolved_batch_size(est, len(rows))
    max_epochs = 1 if incremental else int(est.max_iter)
    adaptive = est.learning_rate_schedule == "adaptive" and not incremental
    # "linear" / "cosine": a fixed budget of max_iter epochs with the step size
    # decaying to zero; plateaus neither lower it nor end training.
    decaying = est.learning_rate_schedule in DECAYING_SCHEDULES and not incremental
    initial_rate = learning_rate = initial_learning_rate(est, X32.shape[1])
    reporter = EpochReporter(est.verbose if ctx.rank == 0 else 0, max_epochs)
    converged = incremental or decaying  # a decaying schedule's budget is its end
    # Every fit is checked against the untrained model, and so is the
    # partial_fit that initializes the model; a later partial_fit is not:
    # one epoch on a chunk unlike the previous ones may leave the model
    # worse there than an untrained one without anything having diverged.
    check_rows = None if incremental and continuing else ctx.local_rows(X32, rows[:DIVERGENCE_CHECK_ROWS])
    first_epoch = state.n_iter
    try:
        if check_rows is not None:
            untrained = training_objective(est, est._initial_params(), check_rows, batch_size, ctx)
        for epoch_index in range(max_epochs):
            if decaying:
                learning_rate = initial_rate * DECAYING_SCHEDULES[est.learning_rate_schedule](epoch_index / max_epochs)
            started = time.perf_counter()
            epoch = est._train_epoch(state.params, state.m, state.v, state.step, state.baseline, X32, rows,
                                     batch_size * ctx.size, learning_rate, float(est.alpha), **ctx.engine_kwargs)
            if not epoch["finite"] or not np.isfinite(state.params).all():
                raise FloatingPointError(
                    f"Training diverged: the ELBO became NaN or infinite in epoch {state.n_iter + 1} "
                    f"(learning_rate={learning_rate:.3g}). {divergence_advice(est, X)} The estimator is "
                    "left as it was before this call."
                )
            val_score = None
            if X_val is not None:
                val_score = ctx.mean(est._held_out_scores(state.params, X_val) + val_jacobian)
            n = epoch["n_rows"]
            epoch["elbo"] += train_jacobian * n
            if "bound" in epoch:  # objective="iwae": the bound trained on
                epoch["bound"] += train_jacobian * n
            reporter.epoch(state.n_iter + 1, epoch["elbo"] / n, epoch["recon"] / n, epoch["kl"] / n,
                           time.perf_counter() - started, val_score)
            stalled = state.record_epoch(epoch, val_score, est.tol, est._fit_config["beta"])
            if incremental:
                break
            if decaying:
                continue
            if stalled >= est.n_iter_no_change:
                if adaptive and learning_rate > initial_rate * MIN_LEARNING_RATE_FACTOR:
                    # A plateau at this step size: Adam's noise floor scales with it.
                    learning_rate /= LEARNING_RATE_DECAY
                    state.stalled = 0
                    continue
                converged = True
                reporter.close(reason=f"converged: no improvement for {est.n_iter_no_change} epochs at "
                                      f"learning rate {learning_rate:.3g}")
                break
        if check_rows is not None:
            fitted = state.best_params if state.best_params is not None else state.params
            check_not_diverged(est, untrained, training_objective(est, fitted, check_rows, batch_size, ctx),
                               check_rows, state.n_iter - first_epoch, ctx, X)
        if not converged:
            warn(f"VAE stopped after max_iter={est.max_iter} epochs without converging "
                 f"(tol={est.tol}); raise max_iter or tol.", ConvergenceWarning)
    except KeyboardInterrupt:
        # Keep the work done: every completed step leaves consistent parameters.
        state.commit(est)
        raise
    finally:
        reporter.close()
        est._release_training_data()
    if state.best_params is not None:
        state.params = state.best_params
    ctx.check_same(state.params)
    state.commit(est)
    est.latent_variance_ = latent_variance(est, X32, epoch, ctx)
    est.active_units_ = int(np.sum(est.latent_variance_ > ACTIVE_VARIANCE))
    return est


class TrainingState:
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
        s.trained_losses = []
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
        s.trained_losses = list(s.loss_curve)
        s.best_loss, s.best_validation_score, s.best_params = est.best_loss_, est.best_validation_score_, None
        s.stalled = 0
        s.best_smoothed_loss = np.inf
        return s

    def record_epoch(self, epoch, validation_score, tol, beta=1.0):
        """Books an epoch's results; returns how many epochs in a row made no
        progress (by more than tol) on the validation score, or on the smoothed
        training objective without one. The best validated parameters are kept."""
        self.step, self.baseline = epoch["step"], epoch["baseline"]
        self.n_iter += 1
        loss = -epoch.get("bound", epoch["elbo"]) / epoch["n_rows"]  # the bound trained on, with objective="iwae"
        self.loss_curve.append(loss)
        # Progress is what training maximizes: recon - beta KL = ELBO - (beta - 1) KL (the
        # same number when beta = 1; with beta < 1 the ELBO may fall while it rises). The
        # bound of objective="iwae" has beta inside already.
        trained = loss if "bound" in epoch else -(epoch["elbo"] - (beta - 1.0) * epoch["kl"]) / epoch["n_rows"]
        self.trained_losses.append(trained)
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
            recent = self.trained_losses[-LOSS_SMOOTHING_EPOCHS:]
            smoothed = sum(recent) / len(recent)  # np.mean's bits for so few, without its ~4 us a call
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


def new_config(est, X, hidden, ctx):
    """The architecture and objective a fresh fit of ``est`` on X builds: what the engine needs."""
    blocks = column_blocks(est.likelihood)
    config = dict(
        n_features=int(X.shape[1]),
        n_components=int(est.n_components),
        hidden_layer_sizes=list(hidden),
        activation=est.activation,
        likelihood=est.likelihood if blocks is None else "mixed",
        kl=est.kl,
        objective=est.objective,
        posterior=est.posterior,
        gradient_estimator=est.gradient_estimator,
        n_mc_samples=int(est.n_mc_samples),
        beta=float(est.beta),
        missing=est.missing == "mask",
        variance_floor=float(est.variance_floor) if models_gaussian(est.likelihood) else 0.0,
    )
    if blocks is not None:
        config["columns"] = blocks
        counts = columns_of_kind(blocks, "poisson")
        if counts.any():
            # Count columns enter the encoder standardized (csrc/model/config.h,
            # Config::encoder_shift, says why); the others as they are.
            mean, var = ctx.column_moments(X)
            scale = np.sqrt(var)
            usable = counts & np.isfinite(mean) & (scale > 0)  # not an empty or constant column
            config["encoder_shift"] = np.where(counts & np.isfinite(mean), mean, 0.0).tolist()
            config["encoder_scale"] = np.where(usable, scale, 1.0).tolist()
    return config


def learn_standardization(est, X, ctx):
    """(mean_, scale_) per feature for the Gaussian likelihoods, None otherwise.
    A constant (or entirely missing) column keeps scale 1, as in StandardScaler."""
    if not (est.standardize is True or (est.standardize == "auto" and models_gaussian(est.likelihood))):
        return None, None
    mean, var = ctx.column_moments(X)
    if est.likelihood == "gaussian_isotropic":
        # One scale for every feature: per-feature scales would make the noise
        # anisotropic in the data's units (no longer probabilistic PCA).
        var = np.full_like(var, np.nanmean(var) if np.isfinite(var).any() else np.nan)
    scale = np.sqrt(var)
    degenerate = ~(scale > 1e-12 * np.maximum(np.abs(mean), 1.0))  # NaN included
    scale[degenerate] = 1.0
    mean[np.isnan(mean)] = 0.0
    blocks = column_blocks(est.likelihood)
    if blocks is not None:  # per-column likelihoods: only the Gaussian columns are scaled
        gaussian = columns_of_kind(blocks, GAUSSIAN_KINDS)
        mean[~gaussian], scale[~gaussian] = 0.0, 1.0
    return mean, scale


def learn_power_transform(est, X, ctx):
    """(lambdas_, power_mean_, power_scale_) with standardize="auto": each standardized Gaussian
    column's Yeo-Johnson exponent (1: left as it is), then the transformed columns' mean and
    scale; (None, None, None) otherwise."""
    if est.standardize != "auto" or est.mean_ is None or est.likelihood == "gaussian_isotropic":
        return None, None, None
    blocks = column_blocks(est.likelihood)
    eligible = np.ones(X.shape[1], bool) if blocks is None else columns_of_kind(blocks, GAUSSIAN_KINDS)
    Z = (X - est.mean_) / est.scale_
    # The same rows, evenly spaced in the whole data, on one process or spread over several.
    sample = np.unique(np.linspace(0, ctx.n_total - 1, min(_power.MAX_ROWS, ctx.n_total)).round().astype(np.int64))
    lambdas = _power.fit_lambdas(ctx.gather_rows(ctx.local_rows(Z, sample)), eligible)
    if (lambdas == 1.0).all():
        return None, None, None
    mean, var = ctx.column_moments(_power.yeo_johnson(Z, lambdas))
    transformed = lambdas != 1.0
    scale = np.where(transformed & (var > 0), np.sqrt(var), 1.0)
    return lambdas, np.where(transformed, np.nan_to_num(mean), 0.0), scale


def resolved_batch_size(est, n_train):
    """batch_size="auto": 128 rows, or fewer on small data so that an epoch
    still takes about 16 optimizer steps."""
    if est.batch_size != "auto":
        return int(est.batch_size)
    return int(min(128, max(8, n_train // 16)))


def split_rows(est, n_samples, early_stopping):
    """Training rows and held-out rows (None without early stopping), drawn from the fitted seed."""
    rows = np.arange(n_samples, dtype=np.int64)
    if not early_stopping:
        return rows, None
    n_val = int(np.ceil(est.validation_fraction * n_samples))
    if n_samples - n_val < 1:
        raise ValueError(
            f"early_stopping with validation_fraction={est.validation_fraction} leaves no training "
            f"rows out of n_samples={n_samples}."
        )
    permutation = check_random_state(est._seed & 0x7FFFFFFF).permutation(n_samples)
    return np.sort(permutation[n_val:]), np.sort(permutation[:n_val])


def training_objective(est, params, X32, batch_size, ctx):
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
        epoch = est._train_epoch(params.copy(), np.zeros_like(params), np.zeros_like(params), 0, 0.0, X32,
                                 np.arange(n, dtype=np.int64), batch_size, 0.0, 0.0)
        objective = epoch["bound"] if "bound" in epoch else epoch["recon"] - est._fit_config["beta"] * epoch["kl"]
        total = objective if epoch["finite"] else -np.inf
    total, n = ctx.sum([total, n])
    return total / n if np.isfinite(total) else -np.inf


def initial_learning_rate(est, n_inputs):
    """Adam's first step size: ``learning_rate``, or for "auto" 1e-2 shrinking
    as 1 / n_inputs beyond AUTO_LEARNING_RATE_INPUTS inputs of the encoder."""
    if isinstance(est.learning_rate, str):  # "auto", checked before training
        return AUTO_LEARNING_RATE * min(1.0, AUTO_LEARNING_RATE_INPUTS / n_inputs)
    return float(est.learning_rate)


def check_not_diverged(est, untrained, fitted, X32, n_epochs, ctx, X):
    """FloatingPointError when the fitted model's training objective (per row,
    on the rows X32) ends far below the untrained model's: training diverged
    though every number stayed finite."""
    entries = ctx.sum([np.count_nonzero(~np.isnan(X32)), len(X32)])
    margin = DIVERGED_NATS_PER_ENTRY * entries[0] / max(entries[1], 1.0)
    if fitted >= untrained - margin:
        return
    raise FloatingPointError(
        f"Training diverged: after {n_epochs} epoch{'s' if n_epochs != 1 else ''} with "
        f"learning_rate={initial_learning_rate(est, X32.shape[1]):.3g}, the model fits the training data worse than it did "
        f"untrained (its training objective went from {untrained:.4g} to {fitted:.4g} nats per row). "
        f"{divergence_advice(est, X)} The estimator is left as it was before this call."
    )


def divergence_advice(est, X):
    """What to try after training diverged, only what applies to this model and X."""
    remedies = ["a smaller learning_rate", "a larger alpha"]
    config = est._fit_config
    if "columns" in config:
        gaussian = columns_of_kind(config["columns"], GAUSSIAN_KINDS)
    else:
        gaussian = np.full(X.shape[1], config["likelihood"] in GAUSSIAN)
    if gaussian.any():
        remedies.append("a larger variance_floor")
        # Standardizing helps only where the model sees Gaussian columns far
        # from unit scale: not when it standardizes them itself (mean_), and
        # not for the other kinds, which model the data as it is.
        if est.__dict__.get("mean_") is None and far_from_standardized(X[:, gaussian]):
            remedies.append("standardized features (standardize='auto', or a StandardScaler before the VAE)")
    return f"Try {', '.join(remedies[:-1])} or {remedies[-1]}."


def far_from_standardized(X):
    """Whether a column of X (NaN = missing) has a standard deviation or |mean|
    outside STANDARDIZED_SCALE_BOUNDS, as data before standardizing often has."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an entirely missing column
        mean, std = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
    low, high = STANDARDIZED_SCALE_BOUNDS
    # (A constant column stays constant when standardized: it does not count.)
    return bool(np.any(((std > 0) & (std < low)) | (std > high) | (np.abs(mean) > high)))


def latent_variance(est, X32, epoch, ctx):
    """Var over the training rows X32 of each latent dimension's posterior mean."""
    if "mu_sum" not in epoch:  # an engine that does not keep the sums: encode every row again
        mu = est._posterior_means(X32)
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
