"""Synthetic tables: a VAE over the columns of a mixed-type table (a DataFrame or an array)."""

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _persistence
from ._columns import (KINDS, NUMERIC_KINDS, blocks, codes_of, decode, encode, label_from_json, label_to_json,
                       learn_column, model_width, numbers_of, read_table, row_fingerprints, to_series, with_labels)
from ._progress import warn
from ._vae import VAE
from ._validation import BOOL, INT, check_hyperparameter, draw_seed, models_gaussian, unchanged_on_failure

# Early stopping holds out a tenth of the rows: on fewer than 10 times this many, none.
_MIN_HELD_OUT_ROWS = 2
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
# sample redraws the rows equal to a training row at most this many times: a model that
# draws a copy with probability p leaves n * p**21 of n rows, none unless p is near 1 (a
# table whose columns allow few distinct rows, or a model that memorizes), and the cost
# is bounded: at most this many times the first draw's.
_MAX_REDRAWS = 20


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
        Threads of the core; None uses all cores. A training step runs on one
        thread while timing it shows that faster (the same bits either way).
    reject_training_copies : bool, default=True
        Whether :meth:`sample` refuses rows equal to a training row (every
        value equal, as the returned table holds it; a missing value equals
        any missing value). ``fit`` keeps a 64-bit fingerprint of each
        distinct training row (not the rows), and ``sample`` redraws the rows
        that match, from the same random stream (the same ``random_state``
        gives the same rows), up to 20 times; rows that still match are kept,
        with a :class:`MemorizationWarning` (a table whose columns allow few
        distinct rows, or a model that memorizes). Rows near a training row
        are kept: ``privacy_`` and :meth:`privacy_report` measure how near.
        Where real rows repeat each other often, refusing copies moves some
        probability from the values they repeat to others (a table whose
        rows with a missing value repeat, say, gets fewer missing values).
        False returns the model's draws as they are.

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
    >>> rows.dtypes.equals(df.dtypes)
    True
    >>> bool(rows["size"].between(size.min(), size.max()).all()), set(rows["city"]) <= {"Oslo", "Bergen", "Molde"}
    (True, True)
    """

    def __init__(self, *, column_kinds=None, n_components=None, hidden_layer_sizes=(256,), activation="relu",
                 beta=1.0, learning_rate=1e-2, batch_size="auto", max_iter=1000, early_stopping="auto",
                 n_iter_no_change=20, random_state=None, verbose=0, n_threads=None, reject_training_copies=True):
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
        self.reject_training_copies = reject_training_copies

    def _check_params(self):
        if self.n_components is not None:
            check_hyperparameter("n_components", self.n_components, INT, (1, None))
        kinds = self.column_kinds
        if kinds is not None and (not isinstance(kinds, dict) or not all(k in KINDS for k in kinds.values())):
            raise ValueError(f"The 'column_kinds' parameter must be None or a dict mapping columns to one of "
                             f"{list(KINDS)}; got {kinds!r}.")
        check_random_state(self.random_state)
        check_hyperparameter("reject_training_copies", self.reject_training_copies, BOOL, None)

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
        return unchanged_on_failure(self, lambda: self._fit(X))

    def _fit(self, X):
        self._check_params()
        names, columns, frame = read_table(X)
        if len(columns[0][0]) < 2:
            raise ValueError(f"X has {len(columns[0][0])} row(s); a synthesizer needs at least 2 to learn from.")
        overrides = dict(self.column_kinds or {})
        unknown = [key for key in overrides if key not in names]
        if unknown:
            raise ValueError(f"column_kinds names columns that X does not have: {unknown}; X's columns are {names}.")
        seed = draw_seed(self.random_state)
        rng = np.random.default_rng(seed)
        specs = [learn_column(name, values, dtype, overrides.get(name)) for name, (values, dtype) in
                 zip(names, columns)]
        if not any(model_width(spec) for spec in specs):
            raise ValueError("No column of X varies (each holds a single value, or none); there is nothing to "
                             "learn from.")
        parts = [encode(spec, values, rng) for spec, (values, _) in zip(specs, columns)]
        Xm = np.hstack([p for p in parts if p.shape[1]])
        likelihood = [block for spec in specs for block in blocks(spec)]
        n_modelled = sum(1 for spec in specs if model_width(spec))
        n_components = self.n_components or int(np.clip(n_modelled // 2, 2, 32))
        vae = VAE(n_components=n_components, hidden_layer_sizes=self.hidden_layer_sizes, activation=self.activation,
                  likelihood=likelihood, missing="mask" if np.isnan(Xm).any() else "error", beta=self.beta,
                  standardize=models_gaussian(likelihood),  # normal scores already: no power transform
                  learning_rate=self.learning_rate, batch_size=self.batch_size, max_iter=self.max_iter,
                  early_stopping=self.early_stopping if len(Xm) >= _MIN_HELD_OUT_ROWS * 10 else False,
                  n_iter_no_change=self.n_iter_no_change,
                  random_state=seed & 0x7FFFFFFF, verbose=self.verbose, n_threads=self.n_threads)
        vae.fit(Xm)
        self.vae_, self._specs, self._frame, self._seed = vae, specs, frame, seed
        train_keys = row_fingerprints(specs, columns)
        self._training_rows = np.unique(train_keys)
        self.n_features_in_, self.n_iter_ = len(specs), int(vae.n_iter_)
        self.column_kinds_ = {spec["name"]: spec["kind"] for spec in specs}
        if frame is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        check = rng.choice(len(Xm), min(len(Xm), _CHECK_ROWS), replace=False)
        report = self._privacy(columns, None, _CHECK_ROWS, (seed >> 32) ^ 0x5DEECE66, reference_rows=np.sort(check),
                               train_keys=train_keys)
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
            With ``reject_training_copies``, no row equals a training row
            (or a :class:`MemorizationWarning` says how many do).

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
        check_hyperparameter("n_samples", n_samples, INT, (1, None))
        check_hyperparameter("reject_training_copies", self.reject_training_copies, BOOL, None)
        rng = check_random_state(random_state)  # one stream for the draws and the redraws
        columns = self._decode(self.vae_.sample(int(n_samples), random_state=rng))
        if self.reject_training_copies:
            kept = self._redraw_copies(columns, rng)
            if kept:
                warn(f"{kept} of the {n_samples} synthetic rows equal a training row even after {_MAX_REDRAWS} "
                     "redraws, and are kept: the model puts nearly all its probability there, as it does when the "
                     "table's columns allow few distinct rows (real rows then repeat each other too) or when it "
                     "memorizes its training rows (a smaller model, early_stopping or fewer epochs help). "
                     "reject_training_copies=False returns the model's draws without this check.",
                     MemorizationWarning)
        return self._build(columns)

    def _redraw_copies(self, columns, rng):
        """Replaces, in place, the rows of columns (decoded) equal to a training row with new
        draws from rng, up to _MAX_REDRAWS times; the number of rows that still are."""
        copies = np.flatnonzero(self._copies(columns))
        for _ in range(_MAX_REDRAWS):
            if copies.size == 0:
                break
            redrawn = self._decode(self.vae_.sample(copies.size, random_state=rng))
            for column, values in zip(columns, redrawn):
                column[copies] = values
            copies = copies[self._copies(redrawn)]
        return copies.size

    def _copies(self, columns):
        """Which rows of columns (decoded) equal a training row, as the returned table holds them."""
        return np.isin(row_fingerprints(self._specs, self._as_returned(columns)), self._training_rows)

    def _as_returned(self, columns):
        """Decoded columns as read_table reads the table sample returns (its dtypes: float32, say)."""
        return read_table(self._build(columns))[1]

    def _decode(self, draws):
        """Each column's values (object or float64 arrays) from the VAE's draws (n, width)."""
        columns, start = [], 0
        for spec in self._specs:
            width = model_width(spec)
            columns.append(decode(spec, draws[:, start:start + width]))
            start += width
        return columns

    def _build(self, columns):
        """The output table from each column's decoded values."""
        if self._frame is None:
            dtype = np.dtype(self._specs[0]["dtype"])
            return np.column_stack([np.asarray(c, dtype=object) for c in columns]).astype(dtype)
        import pandas as pd

        data = {spec["name"]: to_series(spec, values) for spec, values in zip(self._specs, columns)}
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
        is issued. New draws are the model's own, before :meth:`sample`
        refuses copies of training rows (``reject_training_copies``), so that
        a model that memorizes shows; ``X_synthetic=synthesizer.sample(n)``
        assesses the rows ``sample`` returns.

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
            row (``"synthetic_copies"``, ``"reference_copies"``; identical as
            ``reject_training_copies`` judges it), a left-out training row
            identical to another one.

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
        check_hyperparameter("n_samples", n_samples, INT, (1, None))
        rows = None
        if holdout is None:  # the training rows that stand in for unseen ones
            rows = np.sort(check_random_state(random_state).permutation(len(train[0][0]))[:n_samples])
        return self._privacy(train, holdout, int(n_samples), random_state, reference_rows=rows, synthetic=synthetic)

    def _read_like_fit(self, X):
        names, columns, _ = read_table(X)
        expected = [spec["name"] for spec in self._specs]
        if names != expected:
            raise ValueError(f"X's columns {names} are not the fitted ones, {expected}.")
        return columns

    def _privacy(self, train, holdout, n_samples, random_state, reference_rows, synthetic=None, train_keys=None):
        """privacy_report's dict (with the copy warning) for columns read by read_table; new draws
        unless synthetic (columns) is given. train_keys: train's row fingerprints, where known."""
        space = self._distance_space
        T = space(train)
        if synthetic is None:  # the model's draws, copies included
            synthetic = self._as_returned(self._decode(self.vae_.sample(n_samples, random_state=random_state)))
        keys = row_fingerprints(self._specs, train) if train_keys is None else train_keys
        distinct, counts = np.unique(keys, return_counts=True)
        synthetic_dcr = _closest_distances(space(synthetic), T)
        synthetic_copies = np.isin(row_fingerprints(self._specs, synthetic), distinct)
        if holdout is not None:
            reference_dcr, reference = _closest_distances(space(holdout), T), "holdout"
            reference_copies = np.isin(row_fingerprints(self._specs, holdout), distinct)
        else:
            reference_dcr, reference = _closest_distances(T[reference_rows], T, exclude=reference_rows), "leave-one-out"
            reference_copies = counts[np.searchsorted(distinct, keys[reference_rows])] > 1  # another row like it
        report = dict(synthetic_dcr=synthetic_dcr, reference_dcr=reference_dcr, reference=reference,
                      synthetic_median=float(np.median(synthetic_dcr)), reference_median=float(np.median(reference_dcr)),
                      synthetic_copies=float(np.mean(synthetic_copies)),
                      reference_copies=float(np.mean(reference_copies)))
        too_close = report["synthetic_median"] < _DCR_RATIO * report["reference_median"]
        copies = report["synthetic_copies"] > max(2 * report["reference_copies"],
                                                  report["reference_copies"] + _EXCESS_COPIES)
        if too_close or copies:
            warn(f"The synthetic rows copy training rows: {report['synthetic_copies']:.0%} are identical to one "
                  f"(real unseen rows: {report['reference_copies']:.0%}, {reference}) and their median distance to "
                  f"the closest is {report['synthetic_median']:.3g} (real unseen rows: "
                  f"{report['reference_median']:.3g}). Use a smaller model (n_components, hidden_layer_sizes), "
                  "early_stopping, or fewer epochs (max_iter).", MemorizationWarning)
        return report

    def _distance_space(self, columns):
        """The rows as points (n, p) for the distances of privacy_report (see there)."""
        parts = []
        for spec, (values, _) in zip(self._specs, columns):
            if spec["kind"] in NUMERIC_KINDS:
                values = numbers_of(spec, values)
                missing = np.isnan(values)
                z = np.where(missing, 0.0, (values - spec["mean"]) / spec["std"])
                parts.append(np.column_stack([z, missing]))
            else:
                codes = codes_of(spec, values)
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
            The file to write; an existing one is replaced only once the new
            one is complete.

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
        specs = [with_labels({k: v for k, v in spec.items() if k != "knots"}, label_to_json) for spec in self._specs]
        arrays = {f"knots/{j}": spec["knots"] for j, spec in enumerate(self._specs) if "knots" in spec}
        arrays["training_rows"] = self._training_rows
        kinds = None if self.column_kinds is None else [[label_to_json(k), v] for k, v in self.column_kinds.items()]
        state = dict(specs=specs, frame=self._frame, seed=self._seed, n_iter=self.n_iter_, privacy=self.privacy_,
                     column_kinds=kinds)  # here, not in the hyperparameters' JSON, which makes every key a string
        return state, arrays

    def _restore(self, state, arrays, vae):
        """The inverse of _state (pyvae.load)."""
        kinds = state["column_kinds"]
        self.column_kinds = None if kinds is None else {label_from_json(k): v for k, v in kinds}
        self._specs = [with_labels(spec, label_from_json) for spec in state["specs"]]
        for j, spec in enumerate(self._specs):
            if spec["kind"] in NUMERIC_KINDS:
                spec["knots"] = np.array(arrays[f"knots/{j}"])
        self._frame, self._seed, self.n_iter_, self.privacy_ = (state["frame"], state["seed"], state["n_iter"],
                                                                state["privacy"])
        self._training_rows = np.array(arrays["training_rows"])
        if self._training_rows.dtype != np.uint64 or self._training_rows.ndim != 1:
            raise ValueError(f"training_rows has dtype {self._training_rows.dtype} and shape "
                             f"{self._training_rows.shape}, not 1-D uint64 fingerprints")
        self.vae_, self.n_features_in_ = vae, len(self._specs)
        self.column_kinds_ = {spec["name"]: spec["kind"] for spec in self._specs}
        if self._frame is not None:
            self.feature_names_in_ = np.asarray([spec["name"] for spec in self._specs], dtype=object)
        return self


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
