"""Checks shared by VAE and VAEImputer: the hyperparameters' constraint table,
the likelihood names and per-column kinds, and the checks of input arrays.

Each raises a ValueError that names what is wrong, before an estimator changes.
"""

import numbers

import numpy as np
from sklearn.utils import assert_all_finite, check_array, check_random_state
from sklearn.utils.validation import validate_data

from ._threads import _core, resolve_threads

GAUSSIAN = ("gaussian", "gaussian_isotropic", "gaussian_heteroscedastic")
UNIT_INTERVAL = ("bernoulli", "continuous_bernoulli")
LIKELIHOODS = ("gaussian", "gaussian_isotropic", "gaussian_heteroscedastic", "bernoulli", "continuous_bernoulli")
# Per-column likelihoods: these kinds take one column each; ("categorical", k)
# takes the k one-hot columns of a categorical variable.
ONE_COLUMN_KINDS = ("gaussian", "gaussian_heteroscedastic", "bernoulli", "poisson")
# The per-column kinds that are Gaussian: standardized, floored.
GAUSSIAN_KINDS = ("gaussian", "gaussian_heteroscedastic")

# VAE's hyperparameters' constraints, in one place: name -> (kind, allowed).
INT, REAL, STR, BOOL = "int", "real", "str", "bool"
CONSTRAINTS = {
    "n_components": (INT, (1, None)),
    "activation": (STR, ("relu", "tanh")),
    "objective": (STR, ("elbo", "iwae")),
    "kl": (STR, ("analytic", "mc")),
    "posterior": (STR, ("gaussian", "logistic", "laplace")),
    "gradient_estimator": (STR, ("reparameterization", "score_function")),
    "missing": (STR, ("error", "mask")),
    "n_mc_samples": (INT, (1, None)),
    "beta": (REAL, (0.0, None)),
    "variance_floor": (REAL, (0.0, None)),
    "learning_rate_schedule": (STR, ("adaptive", "constant", "linear", "cosine")),
    "max_iter": (INT, (1, None)),
    "alpha": (REAL, (0.0, None)),
    "tol": (REAL, (0.0, None)),
    "validation_fraction": (REAL, (0.0, 1.0, "open")),
    "n_iter_no_change": (INT, (1, None)),
    "warm_start": (BOOL, None),
    "verbose": (INT, (0, None)),
    "device": (STR, ("cpu", "cuda")),
}

# What a column of each kind may hold, for the kinds of VAE's per-column
# likelihood and of VAEImputer's column_kinds: kind -> (a mask of the values it
# refuses, what it needs). A one-hot "categorical" block is checked as a whole.
_COUNTS = (lambda v: (v < 0) | (v != np.round(v)), "counts (integers >= 0)")
_COLUMN_VALUES = {
    "bernoulli": (lambda v: (v < 0) | (v > 1), "values in [0, 1]"),
    "binary": (lambda v: (v != 0) & (v != 1), "0 or 1 (use 'categorical' for other codes)"),
    "poisson": _COUNTS,
    "count": _COUNTS,
}


def unchanged_on_failure(est, fit):
    """``fit()``, after which a rejected or failed call leaves ``est`` exactly as it was."""
    saved = dict(est.__dict__)
    try:
        return fit()
    except BaseException:
        est.__dict__.clear()
        est.__dict__.update(saved)
        raise


def check_hyperparameter(name, value, kind, allowed):
    """ValueError unless ``value`` is of ``kind`` (INT, REAL, STR or BOOL) and
    ``allowed``: the names of a STR, or (low, high[, "open"]) bounds of a number."""
    if kind == STR:
        if not isinstance(value, str) or value not in allowed:
            raise ValueError(f"The '{name}' parameter must be one of {list(allowed)}; got {value!r}.")
        return
    if kind == BOOL:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"The '{name}' parameter must be a bool; got {value!r}.")
        return
    types = numbers.Integral if kind == INT else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, types):
        what = "an int" if kind == INT else "a real number"
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


def column_blocks(likelihood):
    """[[kind, width], ...] of a per-column likelihood (a sequence), None for a
    likelihood's name; ValueError for anything else."""
    hint = (f"The 'likelihood' parameter must be one of {list(LIKELIHOODS)}, or a list with one entry per "
            f"column block: one of {list(ONE_COLUMN_KINDS)} (one column) or ('categorical', k) (k >= 2 one-hot "
            "columns), e.g. likelihood=['gaussian', 'poisson', ('categorical', 3)]")
    if isinstance(likelihood, str):
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"{hint}; got {likelihood!r}.")
        return None
    if not isinstance(likelihood, (list, tuple)) or len(likelihood) == 0:
        raise ValueError(f"{hint}; got {likelihood!r}.")
    blocks = []
    for entry in likelihood:
        if isinstance(entry, str) and entry in ONE_COLUMN_KINDS:
            blocks.append([entry, 1])
        elif (isinstance(entry, (list, tuple)) and len(entry) == 2 and entry[0] == "categorical"
              and isinstance(entry[1], numbers.Integral) and not isinstance(entry[1], bool) and entry[1] >= 2):
            blocks.append(["categorical", int(entry[1])])
        else:
            raise ValueError(f"{hint}; got the entry {entry!r}.")
    return blocks


def columns_of_kind(blocks, kind):
    """Boolean mask (n_columns,) of the columns in blocks [[kind, width], ...] of the given kind (or kinds)."""
    kinds = (kind,) if isinstance(kind, str) else kind
    return np.repeat([k in kinds for k, _ in blocks], [width for _, width in blocks]).astype(bool)


def models_gaussian(likelihood):
    """Whether a (checked) likelihood has Gaussian columns: the ones standardized and floored."""
    blocks = column_blocks(likelihood)
    return likelihood in GAUSSIAN if blocks is None else any(kind in GAUSSIAN_KINDS for kind, _ in blocks)


def check_vae_hyperparameters(est):
    """ValueError for a VAE hyperparameter out of its range, or for a combination
    the model does not support; the hidden layer sizes as a tuple of ints."""
    for name, (kind, allowed) in CONSTRAINTS.items():
        check_hyperparameter(name, getattr(est, name), kind, allowed)
    column_blocks(est.likelihood)  # a bad likelihood (name or column list) raises here
    sizes = hidden_layer_tuple(est.hidden_layer_sizes)
    if est.n_threads is not None:
        check_hyperparameter("n_threads", est.n_threads, INT, (1, None))
    if est.batch_size != "auto":
        check_hyperparameter("batch_size", est.batch_size, INT, (1, None))
    if not (isinstance(est.learning_rate, str) and est.learning_rate == "auto"):
        if isinstance(est.learning_rate, str):
            raise ValueError(f"The 'learning_rate' parameter must be 'auto' or a real number > 0; "
                             f"got {est.learning_rate!r}.")
        check_hyperparameter("learning_rate", est.learning_rate, REAL, (0.0, None, "open"))
    if not (isinstance(est.early_stopping, (bool, np.bool_)) or est.early_stopping == "auto"):
        raise ValueError(
            f"The 'early_stopping' parameter must be 'auto', True or False; got {est.early_stopping!r}."
        )
    if not (isinstance(est.standardize, (bool, np.bool_)) or est.standardize == "auto"):
        raise ValueError(f"The 'standardize' parameter must be 'auto', True or False; got {est.standardize!r}.")
    if est.standardize is True and not models_gaussian(est.likelihood):
        raise ValueError(
            f"standardize=True needs a Gaussian likelihood (or Gaussian columns); likelihood="
            f"{est.likelihood!r} models the data as it is. Use standardize='auto' or False."
        )
    if est.objective == "iwae" and est.gradient_estimator != "reparameterization":
        raise ValueError(
            f"objective='iwae' needs gradient_estimator='reparameterization'; got gradient_estimator="
            f"{est.gradient_estimator!r}. The importance-weighted bound is trained through its "
            "reparameterized draws; use objective='elbo' with the score-function estimator."
        )
    if est.objective == "iwae" and est.device == "cuda":
        raise ValueError(
            "objective='iwae' trains on the CPU engine only: the CUDA engine trains on the ELBO. Use "
            "device='cpu', or objective='elbo'."
        )
    if est.likelihood == "gaussian_heteroscedastic" and est.device == "cuda":
        raise ValueError(
            "likelihood='gaussian_heteroscedastic' runs on the CPU engine only: the CUDA engine's "
            "Gaussian has one learned variance per feature. Use device='cpu', or likelihood='gaussian'."
        )
    if est.posterior != "gaussian" and est.kl == "analytic":
        raise ValueError(
            f"The 'kl' parameter must be 'mc' with posterior={est.posterior!r}: its KL divergence "
            "to the N(0, I) prior has no closed form."
        )
    check_random_state(est.random_state)
    return sizes


def hidden_layer_tuple(sizes):
    """hidden_layer_sizes as a tuple of ints (an int is one layer); ValueError unless each is >= 1."""
    given = sizes
    if isinstance(sizes, (numbers.Integral,)) and not isinstance(sizes, bool):
        sizes = (sizes,)
    if not isinstance(sizes, (tuple, list)) or not all(
        isinstance(h, numbers.Integral) and not isinstance(h, bool) and h >= 1 for h in sizes
    ):
        raise ValueError(
            "The 'hidden_layer_sizes' parameter must be a tuple of ints >= 1 (or () for a linear model); "
            f"got {given!r}."
        )
    return tuple(int(h) for h in sizes)


def validate_imputer_input(est, X, *, reset):
    """X as an imputer takes it (float32 or float64, 2-D, at least one row): NaN
    marks a missing entry, infinity is refused."""
    X = validate_data(est, X, reset=reset, dtype=(np.float64, np.float32), ensure_all_finite="allow-nan",
                      ensure_min_samples=1, copy=False)
    if np.isinf(X).any():
        raise ValueError("Input X contains infinity; only NaN marks a missing entry.")
    return X


def validate_vae_input(est, X, *, reset):
    """X as a VAE takes it (float32 or float64, 2-D), checked against the
    hyperparameters (reset: a fresh fit) or the fitted model: no infinity, NaN
    only with missing="mask", values of each column's kind."""
    allow_nan = est.missing == "mask" if reset else est._fit_config["missing"]
    try:
        # NaN and infinity pass here: the one pass over the values below finds both.
        X = validate_data(
            est,
            X,
            reset=reset,
            dtype=(np.float32, np.float64),
            ensure_all_finite=False,
            ensure_min_samples=1,
        )
    except (ValueError, TypeError) as exc:
        found = first_string_entry(X)
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
    n_nan, n_inf, low, high = _core.value_scan(X.ravel(order="K"), resolve_threads(est.n_threads))
    if n_inf:
        assert_all_finite(X, allow_nan=True, input_name="X")  # scikit-learn's message, as before
    if n_nan and not allow_nan:
        nan_rows, nan_columns = np.nonzero(np.isnan(X))
        names = getattr(est, "feature_names_in_", None)
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
    likelihood = est.likelihood if reset else est._fit_config["likelihood"]
    blocks = column_blocks(est.likelihood) if reset else est._fit_config.get("columns")
    if blocks is not None:
        width = sum(w for _, w in blocks)
        if X.shape[1] != width:
            raise ValueError(f"likelihood lists {width} columns (block widths summed); X has {X.shape[1]} features.")
        check_column_values(X, blocks)
    # (An all-NaN X with missing="mask" has no range to check.)
    elif likelihood in UNIT_INTERVAL and n_nan < X.size and (low < 0 or high > 1):
        raise ValueError(
            f"likelihood={likelihood!r} needs X in [0, 1]; got values in [{low:.4g}, {high:.4g}]. "
            "Scale X (e.g. MinMaxScaler) or use likelihood='gaussian'."
        )
    return X


def check_column_values(X, blocks):
    """ValueError unless each block [kind, width] of X's columns, in order, holds
    values of its kind (NaN, a missing entry, is any kind's): see _COLUMN_VALUES;
    a "categorical" block has one-hot rows (or NaN throughout the block). Other
    kinds ("gaussian", None) take any value."""
    start = 0
    for kind, width in blocks:
        cols = X[:, start:start + width]
        where = f"column {start}" if width == 1 else f"columns {start}-{start + width - 1}"
        if kind in _COLUMN_VALUES:
            refused, needs = _COLUMN_VALUES[kind]
            values = cols[~np.isnan(cols)]
            bad = refused(values)
            if bad.any():
                raise ValueError(f"{where} ({kind}) needs {needs}; got {float(values[bad][0])!r}.")
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
        start += width


def first_string_entry(X):
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


def check_latent(Z, n_components):
    """Z as a 2-D float array of latent codes with n_components columns."""
    Z = check_array(Z, dtype=(np.float32, np.float64), ensure_min_samples=1, input_name="Z")
    if Z.shape[1] != n_components:
        raise ValueError(f"Z has {Z.shape[1]} columns, but the model has n_components={n_components}.")
    return Z


def draw_seed(random_state):
    """A 64-bit seed for the core, drawn from random_state (an int, a RandomState or None)."""
    rng = check_random_state(random_state)
    return int(rng.randint(0, 2**31 - 1)) << 32 | int(rng.randint(0, 2**31 - 1))
