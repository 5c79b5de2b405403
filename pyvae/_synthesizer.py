"""Synthetic tables: a VAE over the columns of a mixed-type table (a DataFrame or an array)."""

import numbers

import numpy as np
from scipy.special import ndtr, ndtri
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _persistence
from ._vae import _INT, VAE, _check_hyperparameter, _draw_seed, _warn

KINDS = ("continuous", "count", "datetime", "binary", "categorical")
_NUMERIC_KINDS = ("continuous", "count", "datetime")
# Integer-valued columns with at most this many distinct values are categorical.
_MAX_INTEGER_CATEGORIES = 10
# A numeric column's marginal is kept as at most this many quantiles (its sorted
# values when it has fewer rows).
_MAX_KNOTS = 1000
_MAX_DECIMALS = 10
# Early stopping holds out a tenth of the rows: on fewer than 10 times this many, none.
_MIN_HELD_OUT_ROWS = 2
_DATETIME_UNITS = (86_400e9, 3_600e9, 60e9, 1e9, 1e6, 1e3, 1.0)  # a day, ..., a nanosecond
# fit's copy check compares this many synthetic rows, and as many training rows
# (or all) left out one at a time, with the training rows.
_CHECK_ROWS = 1000
# The copy warning: synthetic rows whose median distance to the closest training
# row is below this fraction of real unseen rows' median, or copies of training
# rows more frequent than among real unseen rows by this many rows in a hundred,
# and twice as frequent (where the table's values allow few distinct rows, real
# rows repeat each other too, and model draws, denser where the data is, more so).
_DCR_RATIO = 0.5
_EXCESS_COPIES = 0.05


class MemorizationWarning(UserWarning):
    """Synthetic rows copy training rows: they are much closer to the training
    rows than real rows the model did not see (see
    :meth:`VAESynthesizer.privacy_report`)."""


class VAESynthesizer(BaseEstimator):
    """Synthetic rows of a mixed-type table, from a variational autoencoder.

    ``fit`` reads each column's kind from its dtype and values: continuous,
    count (integers >= 0), datetime, binary (two values) or categorical
    (strings, pandas categories, booleans, integers with at most 10 values);
    ``column_kinds`` overrides it. A :class:`pyvae.VAE` models the columns
    jointly: a categorical one with a softmax over its values, a binary one
    with a Bernoulli, a numeric one with a Gaussian on its normal scores
    (the standard normal quantiles of its empirical distribution function),
    so that the sample's marginal is the column's own, skewed, heavy-tailed
    or with point masses. A missing value is one more category of a
    discrete column; a numeric column with missing values gets a Bernoulli
    indicator of its own.

    :meth:`sample` returns rows with the fitted table's columns, dtypes and
    category labels, numeric values within the fitted range and rounded to
    the column's precision (its decimals, or a datetime column's unit).

    Parameters
    ----------
    column_kinds : dict or None, default=None
        Kinds that override the detected ones: column name (a DataFrame) or
        index (an array) -> one of ``"continuous"``, ``"count"``,
        ``"datetime"``, ``"binary"``, ``"categorical"``. Any column may be
        categorical (its distinct values are the categories); the numeric
        kinds need numbers (``"datetime"`` datetimes).
    n_components : int or None, default=None
        Dimension of the VAE's latent space. None: half the number of
        columns the model sees (at least 2, at most 32).
    hidden_layer_sizes : tuple of int, default=(256,)
        Widths of the encoder's hidden layers; the decoder mirrors them. One
        wide layer: on the tuning tables of benchmarks/synthesize.py two
        layers scored lower (benchmarks/SYNTHESIZE.md).
    activation : {"relu", "tanh"}, default="relu"
        Activation of the hidden layers.
    beta : float, default=1.0
        Weight of the KL term in training (see :class:`VAE`): below 1 the
        model reproduces the training rows more closely, and at the extreme
        copies them (see ``privacy_``).
    learning_rate : float, default=1e-2
        Adam's initial step size (divided by 10 at each plateau, twice).
    batch_size : int or "auto", default="auto"
        Rows per minibatch (see :class:`VAE`).
    max_iter : int, default=1000
        Maximum number of epochs.
    early_stopping : {"auto", True, False}, default="auto"
        Hold out 10% of the rows and stop when their ELBO stops improving
        (see :class:`VAE`); "auto" does so on 20 to 10,000 rows, where a
        model can memorize its training rows.
    n_iter_no_change : int, default=20
        Epochs without progress before the step size drops or training stops.
    random_state : int, RandomState instance or None, default=None
        Seeds training (and fit's copy check). The same value gives the same
        model and, with the same ``random_state`` in :meth:`sample`, the same rows.
    verbose : int, default=0
        Progress of the training epochs (see :class:`VAE`).
    n_threads : int or None, default=None
        Threads of the core; None uses all cores.

    Attributes
    ----------
    vae_ : VAE
        The fitted model, over the encoded columns.
    column_kinds_ : dict
        Column name (or index) -> its kind: one of the kinds above, or
        ``"constant"`` (a single value, or none, missing or not).
    n_features_in_ : int
        Number of columns seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when fit was given a DataFrame.
    n_iter_ : int
        Training epochs run.
    privacy_ : dict
        fit's copy check (:meth:`privacy_report` without the arrays): 1,000
        synthetic rows against up to 1,000 training rows, each left out of
        the training rows (the distance to its closest other row is what a
        real unseen row's would be); a :class:`MemorizationWarning` when the
        synthetic rows are much closer.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from pyvae import VAESynthesizer
    >>> rng = np.random.default_rng(0)
    >>> size = rng.gamma(2.0, 10.0, 500).round(1)
    >>> df = pd.DataFrame({"size": size, "rooms": rng.poisson(size / 10),
    ...                    "city": rng.choice(["Oslo", "Bergen", "Molde"], 500),
    ...                    "garden": rng.random(500) < 0.3})
    >>> synthesizer = VAESynthesizer(max_iter=50, random_state=0).fit(df)
    >>> synthesizer.column_kinds_
    {'size': 'continuous', 'rooms': 'count', 'city': 'categorical', 'garden': 'binary'}
    >>> rows = synthesizer.sample(4, random_state=0)
    >>> list(rows.dtypes.astype(str))
    ['float64', 'int64', 'object', 'bool']
    >>> bool(rows["size"].between(size.min(), size.max()).all()), set(rows["city"]) <= {"Oslo", "Bergen", "Molde"}
    (True, True)
    """

    def __init__(self, *, column_kinds=None, n_components=None, hidden_layer_sizes=(256,), activation="relu",
                 beta=1.0, learning_rate=1e-2, batch_size="auto", max_iter=1000, early_stopping="auto",
                 n_iter_no_change=20, random_state=None, verbose=0, n_threads=None):
        self.column_kinds = column_kinds
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.beta = beta
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.verbose = verbose
        self.n_threads = n_threads

    def _check_params(self):
        if self.n_components is not None:
            _check_hyperparameter("n_components", self.n_components, _INT, (1, None))
        kinds = self.column_kinds
        if kinds is not None and (not isinstance(kinds, dict) or not all(k in KINDS for k in kinds.values())):
            raise ValueError(f"The 'column_kinds' parameter must be None or a dict mapping columns to one of "
                             f"{list(KINDS)}; got {kinds!r}.")
        check_random_state(self.random_state)

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y=None):
        """Learn the columns' kinds, ranges and precisions, and train the VAE.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            The table, at least 2 rows. Missing values (NaN, None, NaT,
            pd.NA) are reproduced at their rate.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : VAESynthesizer
            The fitted synthesizer.

        Examples
        --------
        >>> import numpy as np
        >>> from pyvae import VAESynthesizer
        >>> rng = np.random.default_rng(0)
        >>> X = np.column_stack([rng.normal(size=200), rng.integers(0, 2, 200), rng.poisson(30.0, 200)])
        >>> VAESynthesizer(max_iter=10, random_state=0).fit(X).column_kinds_
        {0: 'continuous', 1: 'binary', 2: 'count'}
        """
        saved = dict(self.__dict__)  # a rejected or failed fit leaves the synthesizer as it was
        try:
            return self._fit(X)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _fit(self, X):
        self._check_params()
        names, columns, frame = _read_table(X)
        if len(columns[0][0]) < 2:
            raise ValueError(f"X has {len(columns[0][0])} row(s); a synthesizer needs at least 2 to learn from.")
        overrides = dict(self.column_kinds or {})
        unknown = [key for key in overrides if key not in names]
        if unknown:
            raise ValueError(f"column_kinds names columns that X does not have: {unknown}; X's columns are {names}.")
        seed = _draw_seed(self.random_state)
        rng = np.random.default_rng(seed)
        specs = [_learn_column(name, values, dtype, overrides.get(name)) for name, (values, dtype) in
                 zip(names, columns)]
        if not any(_model_width(spec) for spec in specs):
            raise ValueError("No column of X varies (each holds a single value, or none); there is nothing to "
                             "learn from.")
        parts = [_encode(spec, values, rng) for spec, (values, _) in zip(specs, columns)]
        Xm = np.hstack([p for p in parts if p.shape[1]])
        likelihood = [block for spec in specs for block in _blocks(spec)]
        n_modelled = sum(1 for spec in specs if _model_width(spec))
        n_components = self.n_components or int(np.clip(n_modelled // 2, 2, 32))
        vae = VAE(n_components=n_components, hidden_layer_sizes=self.hidden_layer_sizes, activation=self.activation,
                  likelihood=likelihood, missing="mask" if np.isnan(Xm).any() else "error", beta=self.beta,
                  learning_rate=self.learning_rate, batch_size=self.batch_size, max_iter=self.max_iter,
                  early_stopping=self.early_stopping if len(Xm) >= _MIN_HELD_OUT_ROWS * 10 else False,
                  n_iter_no_change=self.n_iter_no_change,
                  random_state=seed & 0x7FFFFFFF, verbose=self.verbose, n_threads=self.n_threads)
        vae.fit(Xm)
        self.vae_, self._specs, self._frame, self._seed = vae, specs, frame, seed
        self.n_features_in_, self.n_iter_ = len(specs), int(vae.n_iter_)
        self.column_kinds_ = {spec["name"]: spec["kind"] for spec in specs}
        if frame is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        check = rng.choice(len(Xm), min(len(Xm), _CHECK_ROWS), replace=False)
        report = self._privacy(columns, None, _CHECK_ROWS, (seed >> 32) ^ 0x5DEECE66, reference_rows=np.sort(check))
        self.privacy_ = {k: v for k, v in report.items() if not isinstance(v, np.ndarray)}
        return self

    # ------------------------------------------------------------------ sampling

    def sample(self, n_samples, random_state=None):
        """Draw synthetic rows.

        Parameters
        ----------
        n_samples : int
            Number of rows.
        random_state : int, RandomState instance or None, default=None
            Seed of the draws: the same value gives the same rows.

        Returns
        -------
        rows : DataFrame or ndarray of shape (n_samples, n_features_in_)
            A DataFrame with the fitted frame's columns, dtypes and category
            labels (an array of the fitted array's dtype when fit was given
            an array); missing values at about each column's fitted rate.

        Examples
        --------
        >>> import numpy as np
        >>> from pyvae import VAESynthesizer
        >>> rng = np.random.default_rng(0)
        >>> X = np.column_stack([rng.normal(size=300).round(2), rng.integers(0, 3, 300)])
        >>> synthesizer = VAESynthesizer(max_iter=20, random_state=0).fit(X)
        >>> rows = synthesizer.sample(5, random_state=0)
        >>> rows.shape, set(rows[:, 1]) <= {0.0, 1.0, 2.0}
        ((5, 2), True)
        >>> bool((synthesizer.sample(5, random_state=0) == rows).all())
        True
        """
        check_is_fitted(self, "vae_")
        _check_hyperparameter("n_samples", n_samples, _INT, (1, None))
        return self._build(self._decode(self.vae_.sample(int(n_samples), random_state=random_state)))

    def _decode(self, draws):
        """Each column's values (object or float64 arrays) from the VAE's draws (n, width)."""
        columns, start = [], 0
        for spec in self._specs:
            width = _model_width(spec)
            columns.append(_decode(spec, draws[:, start:start + width]))
            start += width
        return columns

    def _build(self, columns):
        """The output table from each column's decoded values."""
        if self._frame is None:
            dtype = np.dtype(self._specs[0]["dtype"])
            return np.column_stack([np.asarray(c, dtype=object) for c in columns]).astype(dtype)
        import pandas as pd

        data = {spec["name"]: _series(spec, values) for spec, values in zip(self._specs, columns)}
        return pd.DataFrame(data, columns=pd.Index([spec["name"] for spec in self._specs], **self._frame))

    # ------------------------------------------------------------------ privacy

    def privacy_report(self, X_train, X_holdout=None, n_samples=None, random_state=None, X_synthetic=None):
        """Distances from synthetic rows, and from real unseen rows, to the closest training row (DCR).

        Rows are compared in one space: each numeric column standardized with
        its fitted mean and standard deviation (0 where missing, beside a 0/1
        missing indicator), each discrete column one-hot over its fitted
        values and missing, scaled by 1/sqrt(2) so that two different values
        are 1 apart (an unseen value is 0.71 from every value); the distance
        is Euclidean. A synthesizer that generalizes puts its rows about as
        far from the training rows as real rows it did not see; one that
        copies puts them much closer, and then a :class:`MemorizationWarning`
        is issued.

        Parameters
        ----------
        X_train : DataFrame or array-like of shape (n_rows, n_features_in_)
            The rows the synthesizer was fitted on.
        X_holdout : DataFrame or array-like of shape (n_holdout, n_features_in_) or None, default=None
            Real rows the synthesizer did not see. None: each of up to
            ``n_samples`` training rows stands in, compared with the other
            training rows.
        n_samples : int or None, default=None
            Synthetic rows to draw; None draws as many as ``X_holdout`` has
            rows (``X_train`` without a holdout).
        random_state : int, RandomState instance or None, default=None
            Seed of the synthetic rows (and of the training rows that stand in
            for unseen ones).
        X_synthetic : DataFrame or array-like of shape (n, n_features_in_) or None, default=None
            Rows to assess instead of new draws: rows sampled earlier (those to
            be published, say), or another synthesizer's, fitted on ``X_train``.

        Returns
        -------
        report : dict
            ``"synthetic_dcr"`` and ``"reference_dcr"`` (arrays of distances),
            their medians (``"synthetic_median"``, ``"reference_median"``),
            ``"reference"`` (``"holdout"`` or ``"leave-one-out"``), and the
            fractions of synthetic and reference rows identical to a training
            row (``"synthetic_copies"``, ``"reference_copies"``).

        Examples
        --------
        >>> import numpy as np
        >>> from pyvae import VAESynthesizer
        >>> X = np.random.default_rng(0).normal(size=(400, 3)).round(3)
        >>> synthesizer = VAESynthesizer(max_iter=30, random_state=0).fit(X[:300])
        >>> report = synthesizer.privacy_report(X[:300], X[300:], random_state=0)
        >>> report["synthetic_dcr"].shape, report["reference"], report["synthetic_copies"]
        ((100,), 'holdout', 0.0)
        """
        check_is_fitted(self, "vae_")
        train = self._read_like_fit(X_train)
        holdout = None if X_holdout is None else self._read_like_fit(X_holdout)
        synthetic = None if X_synthetic is None else self._read_like_fit(X_synthetic)
        if n_samples is None:
            n_samples = len((train if holdout is None else holdout)[0][0])
        _check_hyperparameter("n_samples", n_samples, _INT, (1, None))
        rows = None
        if holdout is None:  # the training rows that stand in for unseen ones
            rows = np.sort(check_random_state(random_state).permutation(len(train[0][0]))[:n_samples])
        return self._privacy(train, holdout, int(n_samples), random_state, reference_rows=rows, synthetic=synthetic)

    def _read_like_fit(self, X):
        names, columns, _ = _read_table(X)
        expected = [spec["name"] for spec in self._specs]
        if names != expected:
            raise ValueError(f"X's columns {names} are not the fitted ones, {expected}.")
        return columns

    def _privacy(self, train, holdout, n_samples, random_state, reference_rows, synthetic=None):
        """privacy_report's dict (with the copy warning) for columns read by _read_table; new draws
        unless synthetic (columns) is given."""
        space = self._distance_space
        T = space(train)
        if synthetic is None:
            synthetic = [(v, None) for v in self._decode(self.vae_.sample(n_samples, random_state=random_state))]
        synthetic_dcr = _closest_distances(space(synthetic), T)
        if holdout is not None:
            reference_dcr, reference = _closest_distances(space(holdout), T), "holdout"
        else:
            reference_dcr, reference = _closest_distances(T[reference_rows], T, exclude=reference_rows), "leave-one-out"
        report = dict(synthetic_dcr=synthetic_dcr, reference_dcr=reference_dcr, reference=reference,
                      synthetic_median=float(np.median(synthetic_dcr)), reference_median=float(np.median(reference_dcr)),
                      synthetic_copies=float(np.mean(synthetic_dcr == 0)),
                      reference_copies=float(np.mean(reference_dcr == 0)))
        too_close = report["synthetic_median"] < _DCR_RATIO * report["reference_median"]
        copies = report["synthetic_copies"] > max(2 * report["reference_copies"],
                                                  report["reference_copies"] + _EXCESS_COPIES)
        if too_close or copies:
            _warn(f"The synthetic rows copy training rows: {report['synthetic_copies']:.0%} are identical to one "
                  f"(real unseen rows: {report['reference_copies']:.0%}, {reference}) and their median distance to "
                  f"the closest is {report['synthetic_median']:.3g} (real unseen rows: "
                  f"{report['reference_median']:.3g}). Use a smaller model (n_components, hidden_layer_sizes), "
                  "early_stopping, or fewer epochs (max_iter).", MemorizationWarning)
        return report

    def _distance_space(self, columns):
        """The rows as points (n, p) for the distances of privacy_report (see there)."""
        parts = []
        for spec, (values, _) in zip(self._specs, columns):
            if spec["kind"] in _NUMERIC_KINDS:
                values = _numbers(spec, values)
                missing = np.isnan(values)
                z = np.where(missing, 0.0, (values - spec["mean"]) / spec["std"])
                parts.append(np.column_stack([z, missing]))
            else:
                codes = _codes(spec, values)
                one_hot = np.zeros((len(values), len(spec["labels"]) + 1))
                known = codes >= 0
                one_hot[known, codes[known]] = np.sqrt(0.5)
                parts.append(one_hot)
        return np.hstack(parts)

    def save(self, path):
        """Write the fitted synthesizer to ``path`` (pyvae's .npz format, as :meth:`VAE.save`).

        :func:`pyvae.load` reads the file back, without running code from it,
        into a synthesizer that samples the same rows for the same seed. The
        format keeps column names and category labels that are strings,
        numbers or booleans (a TypeError names any other).

        Parameters
        ----------
        path : str or path-like
            Destination file.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> import pyvae
        >>> table = np.random.default_rng(0).integers(0, 50, size=(200, 3))
        >>> synthesizer = pyvae.VAESynthesizer(max_iter=10, random_state=0).fit(table)
        >>> file = os.path.join(tempfile.mkdtemp(), "synthesizer.npz")
        >>> synthesizer.save(file)
        >>> rows = pyvae.load(file).sample(5, random_state=0)
        >>> rows.dtype, bool((rows == synthesizer.sample(5, random_state=0)).all())
        (dtype('int64'), True)
        """
        _persistence.save_synthesizer(self, path)

    def _state(self):
        """The fitted state but the VAE as (JSON-able dict, arrays) for save."""
        specs = [_with_labels({k: v for k, v in spec.items() if k != "knots"}, _label_to_json) for spec in self._specs]
        arrays = {f"knots/{j}": spec["knots"] for j, spec in enumerate(self._specs) if "knots" in spec}
        kinds = None if self.column_kinds is None else [[_label_to_json(k), v] for k, v in self.column_kinds.items()]
        state = dict(specs=specs, frame=self._frame, seed=self._seed, n_iter=self.n_iter_, privacy=self.privacy_,
                     column_kinds=kinds)  # here, not in the hyperparameters' JSON, which makes every key a string
        return state, arrays

    def _restore(self, state, arrays, vae):
        """The inverse of _state (pyvae.load)."""
        kinds = state["column_kinds"]
        self.column_kinds = None if kinds is None else {_label_from_json(k): v for k, v in kinds}
        self._specs = [_with_labels(spec, _label_from_json) for spec in state["specs"]]
        for j, spec in enumerate(self._specs):
            if spec["kind"] in _NUMERIC_KINDS:
                spec["knots"] = np.array(arrays[f"knots/{j}"])
        self._frame, self._seed, self.n_iter_, self.privacy_ = (state["frame"], state["seed"], state["n_iter"],
                                                                state["privacy"])
        self.vae_, self.n_features_in_ = vae, len(self._specs)
        self.column_kinds_ = {spec["name"]: spec["kind"] for spec in self._specs}
        if self._frame is not None:
            self.feature_names_in_ = np.asarray([spec["name"] for spec in self._specs], dtype=object)
        return self


# ---------------------------------------------------------------------- reading a table

def _read_table(X):
    """(names, [(values, dtype)] per column, frame): the values a 1-D array (object for
    discrete data), the dtype what the output column gets back; frame the column
    index's settings for a DataFrame (its name), None for an array."""
    if hasattr(X, "columns") and hasattr(X, "iloc"):
        names = list(X.columns)
        if len(set(map(repr, names))) != len(names):
            raise ValueError(f"X has duplicated column names: {names}.")
        if X.shape[1] == 0 or X.shape[0] == 0:
            raise ValueError(f"X is empty (shape {X.shape}).")
        return names, [_series_values(X.iloc[:, j]) for j in range(X.shape[1])], {"name": X.columns.name}
    array = np.asarray(X)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"X must be a DataFrame or a non-empty 2-D array; got shape {array.shape}.")
    dtype = {"dtype": str(array.dtype)}
    return list(range(array.shape[1])), [(array[:, j], dtype) for j in range(array.shape[1])], None


def _series_values(series):
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return series.to_numpy(dtype=object, na_value=None), {
            "dtype": "category", "categories": list(dtype.categories), "ordered": bool(dtype.ordered)}
    if isinstance(dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]"), {
            "dtype": str(dtype), "tz": str(dtype.tz)}
    if pd.api.types.is_extension_array_dtype(dtype):  # Int64, boolean, string, ...: pd.NA becomes None
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            return series.to_numpy(dtype=np.float64, na_value=np.nan), {"dtype": str(dtype)}
        return series.to_numpy(dtype=object, na_value=None), {"dtype": str(dtype)}
    if dtype.kind == "M":
        return series.to_numpy("datetime64[ns]"), {"dtype": str(dtype)}
    return series.to_numpy(), {"dtype": str(dtype)}


def _is_missing(value):
    return value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)) or \
        type(value).__name__ in ("NAType", "NaTType")


def _label_key(value):
    """A hashable key telling labels apart by type and value (True is not 1)."""
    if isinstance(value, np.generic):
        value = value.item()
    return type(value).__name__, value


def _learn_column(name, values, dtype, override):
    """The column's spec (a dict): kind, dtype, and what encoding and decoding need."""
    spec = dict(name=name, **dtype)
    kind_of = values.dtype.kind
    if kind_of in "cmV" or kind_of == "O" and not _plain_objects(values, override):
        raise TypeError(f"Column {name!r} has dtype {values.dtype} ({_types_of(values)}), which a synthesizer "
                        "cannot model: it takes numbers, booleans, strings, categories and datetimes"
                        + (" (a column of mixed types may be declared categorical in column_kinds)."
                           if kind_of == "O" else "."))
    numeric = _as_numbers(values)
    if numeric is not None and np.isinf(numeric).any():
        raise ValueError(f"Column {name!r} holds infinity; only NaN marks a missing value.")
    kind = override or _detected_kind(numeric, kind_of)
    if kind in _NUMERIC_KINDS:
        if numeric is None or (kind == "datetime") != (kind_of == "M"):
            raise ValueError(f"Column {name!r} holds {_types_of(values)}; it cannot be {kind!r} (column_kinds).")
        observed = numeric[~np.isnan(numeric)]
        if observed.size == 0:
            raise ValueError(f"Column {name!r} has no value; it cannot be {kind!r} (column_kinds).")
        if kind == "count" and ((observed < 0) | (observed != np.round(observed))).any():
            raise ValueError(f"Column {name!r} is declared a count (column_kinds) but holds values that are not "
                             "integers >= 0.")
        spec.update(kind=kind, missing=bool(np.isnan(numeric).any()), min=float(observed.min()),
                    max=float(observed.max()), mean=float(observed.mean()), std=float(observed.std()) or 1.0,
                    knots=_knots(observed), **_precision(observed, kind, kind_of))
        return spec
    present = [v for v in values if not _is_missing(v)]
    labels = {}
    for v in present:
        labels.setdefault(_label_key(v), v.item() if isinstance(v, np.generic) else v)
    labels = list(labels.values())
    if spec["dtype"] == "category":  # the categories' own order
        labels = [c for c in spec["categories"] if _label_key(c) in {_label_key(v) for v in labels}]
    else:
        try:
            labels = sorted(labels, key=_label_key)
        except TypeError:
            pass
    if kind == "binary" and len(labels) > 2:
        raise ValueError(f"Column {name!r} is declared binary (column_kinds) but holds {len(labels)} values.")
    if override is None:
        kind = "constant" if len(labels) <= 1 else "binary" if len(labels) == 2 else "categorical"
    spec.update(kind=kind, labels=labels, missing=len(present) < len(values))
    return spec


def _plain_objects(values, override):
    """Whether an object column holds what a synthesizer models: strings, booleans or numbers
    of one of these sorts, or (declared categorical) any mix of them."""
    sorts = {_sort(v) for v in values if not _is_missing(v)}
    return None not in sorts and (len(sorts) <= 1 or override == "categorical")


def _sort(value):
    if isinstance(value, (str, bytes, np.str_)):
        return "string"
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (numbers.Integral, numbers.Real, np.integer, np.floating)) and \
            not isinstance(value, (complex, np.complexfloating)):
        return "number"
    return None


def _types_of(values):
    return ", ".join(sorted({type(v).__name__ for v in values[:1000] if not _is_missing(v)})) or "no value"


def _detected_kind(numeric, kind_of):
    if numeric is None or kind_of == "b":
        return "categorical"
    if kind_of == "M":
        return "datetime"
    observed = numeric[~np.isnan(numeric)]
    distinct = np.unique(observed)
    if distinct.size <= 2:
        return "categorical"  # binary or constant, decided with the labels
    if np.all(distinct == np.round(distinct)):
        if distinct.size <= _MAX_INTEGER_CATEGORIES:
            return "categorical"
        return "count" if distinct[0] >= 0 else "continuous"
    return "continuous"


def _precision(observed, kind, kind_of):
    """{"unit": nanoseconds} for a datetime column: the largest of a day, an hour, ..., a
    nanosecond dividing its values; else {"decimals": digits after the point its values
    have}, None beyond _MAX_DECIMALS."""
    if kind_of == "M":
        return {"unit": next(u for u in _DATETIME_UNITS if np.all(np.mod(observed, u) == 0))}
    if kind == "count" or kind_of in "iu":
        return {"decimals": 0}
    scale = np.maximum(np.abs(observed), 1.0)
    return {"decimals": next((d for d in range(_MAX_DECIMALS + 1)
                              if np.all(np.abs(np.round(observed, d) - observed) <= 1e-9 * scale)), None)}


def _knots(observed):
    """The column's quantile function at probabilities 0, (i + 1/2) / K and 1: its
    sorted values when it has at most _MAX_KNOTS, else K = _MAX_KNOTS quantiles."""
    k = min(observed.size, _MAX_KNOTS)
    inner = np.quantile(observed, (np.arange(k) + 0.5) / k) if observed.size > k else np.sort(observed)
    return np.concatenate([[observed.min()], inner, [observed.max()]])


def _knot_probabilities(knots):
    k = knots.size - 2
    return np.concatenate([[0.0], (np.arange(k) + 0.5) / k, [1.0]])


# ---------------------------------------------------------------------- the VAE's columns

def _model_width(spec):
    if spec["kind"] in _NUMERIC_KINDS:
        return 1 + spec["missing"]
    k = len(spec["labels"]) + spec["missing"]
    return 0 if k == 1 else (1 if k == 2 else k)


def _blocks(spec):
    """The column's entries in the VAE's likelihood list."""
    if spec["kind"] in _NUMERIC_KINDS:
        return ["gaussian", "bernoulli"] if spec["missing"] else ["gaussian"]
    width = _model_width(spec)
    return [] if width == 0 else ["bernoulli"] if width == 1 else [("categorical", width)]


def _as_numbers(values):
    """A column's values as float64 (NaN where missing; datetimes in nanoseconds), None if not numbers."""
    if values.dtype.kind == "M":
        numbers_ = values.view(np.int64).astype(np.float64)
        numbers_[np.isnat(values)] = np.nan
        return numbers_
    if values.dtype.kind in "iuf":
        return values.astype(np.float64)
    if values.dtype.kind == "O" and all(_is_missing(v) or _sort(v) == "number" for v in values):
        return np.array([np.nan if _is_missing(v) else v for v in values], np.float64)
    return None


def _numbers(spec, values):
    """A numeric column's values as float64 (NaN when missing), checked."""
    numbers_ = _as_numbers(values)
    if numbers_ is None:
        raise ValueError(f"Column {spec['name']!r} was numeric in fit; it holds {_types_of(values)}.")
    return numbers_


def _codes(spec, values):
    """A discrete column's values as indices into labels (+ missing last), -1 for a value not seen in fit."""
    index = {_label_key(label): i for i, label in enumerate(spec["labels"])}
    missing = len(spec["labels"])
    return np.array([missing if _is_missing(v) else index.get(_label_key(v), -1) for v in values], np.int64)


def _encode(spec, values, rng):
    """The column's block of the VAE's input (n, width): a numeric column's normal scores
    (NaN where missing) and its missing indicator; a discrete column's one-hot codes."""
    n = len(values)
    if spec["kind"] in _NUMERIC_KINDS:
        x = _numbers(spec, values)
        missing = np.isnan(x)
        observed = np.sort(x[~missing])
        # Ties (a point mass) spread at random over the probability they hold, so that
        # every column's scores are continuous; decoding maps them all back to the value.
        below = np.searchsorted(observed, x[~missing], "left") / observed.size
        upto = np.searchsorted(observed, x[~missing], "right") / observed.size
        u = below + (upto - below) * rng.random(below.size)
        scores = np.full(n, np.nan)
        scores[~missing] = ndtri(np.clip(u, 0.5 / observed.size, 1 - 0.5 / observed.size))
        return np.column_stack([scores, missing.astype(np.float64)]) if spec["missing"] else scores[:, None]
    width = _model_width(spec)
    codes = _codes(spec, values)
    if width <= 1:
        return codes[:, None].astype(np.float64)[:, :width]
    return np.eye(width)[codes]


def _decode(spec, block):
    """The column's values from its block of draws: float64 for numeric kinds (NaN when
    missing), an object array of labels (None when missing) for discrete ones."""
    n = block.shape[0]
    if spec["kind"] in _NUMERIC_KINDS:
        knots = spec["knots"]
        values = np.interp(ndtr(block[:, 0]), _knot_probabilities(knots), knots)
        if "unit" in spec:  # exact in float64 for units of a second and more
            values = np.round(values / spec["unit"]) * spec["unit"]
        elif spec["decimals"] is not None:
            values = np.round(values, spec["decimals"])
        values = np.clip(values, spec["min"], spec["max"])
        if spec["missing"]:
            values[block[:, 1] == 1] = np.nan
        return values
    labels = list(spec["labels"]) + [None]
    width = block.shape[1]
    codes = np.zeros(n, np.int64) if width == 0 else block[:, 0].astype(np.int64) if width == 1 \
        else np.argmax(block, axis=1)
    return np.array(labels, dtype=object)[codes]


def _series(spec, values):
    """A DataFrame column of the fitted dtype from decoded values."""
    import pandas as pd

    if spec["dtype"] == "category":
        dtype = pd.CategoricalDtype(spec["categories"], ordered=spec["ordered"])
        return pd.Series(pd.Categorical(values, dtype=dtype))
    if spec["kind"] == "datetime":
        stamps = pd.Series(pd.to_datetime(values, unit="ns"))
        if "tz" in spec:
            stamps = stamps.dt.tz_localize("UTC").dt.tz_convert(spec["tz"])
        return stamps.astype(spec["dtype"])
    if spec["kind"] in _NUMERIC_KINDS:
        return pd.Series(values).astype(spec["dtype"])
    return pd.Series(values, dtype=object).astype(spec["dtype"])


# ---------------------------------------------------------------------- distances

def _closest_distances(A, B, exclude=None):
    """Per row of A (m, p), the Euclidean distance to the closest row of B (n, p), 0 exactly
    when a row of B equals it; exclude[i] (an index into B) is left out for row i."""
    out = np.empty(A.shape[0])
    B_sq = np.einsum("ij,ij->i", B, B)
    for start in range(0, A.shape[0], 256):
        a = A[start:start + 256]
        d2 = np.einsum("ij,ij->i", a, a)[:, None] + B_sq[None, :] - 2.0 * a @ B.T  # (chunk, n)
        if exclude is not None:
            d2[np.arange(len(a)), exclude[start:start + 256]] = np.inf
        nearest = np.argmin(d2, axis=1)
        out[start:start + 256] = np.sqrt(np.sum((a - B[nearest]) ** 2, axis=1))  # exact, not the expansion
    return out


# ---------------------------------------------------------------------- the safe format

def _with_labels(spec, convert):
    """The spec with its name, labels and categories passed through convert (to or from their text form)."""
    out = dict(spec, name=convert(spec["name"]))
    for key in ("labels", "categories"):
        if key in out:
            out[key] = [convert(v) for v in out[key]]
    return out


def _label_to_json(value):
    sort = _sort(value)
    if sort is None or isinstance(value, bytes):
        raise TypeError(f"{value!r} ({type(value).__name__}) has no safe text form: save keeps column names and "
                        "category labels that are strings, numbers or booleans (pickle the synthesizer instead).")
    value = value.item() if isinstance(value, np.generic) else value
    return [type(value).__name__, value if not isinstance(value, float) or np.isfinite(value) else repr(value)]


def _label_from_json(entry):
    kind, value = entry
    return {"str": str, "int": int, "float": float, "bool": bool}[kind](value)
