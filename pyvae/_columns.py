"""The columns of a mixed-type table as a VAE models them: each column's kind, what
encodes it for the model (normal scores, one-hot codes, missing indicators) and what
decodes the model's draws back into values of the column's dtype."""

import hashlib
import numbers

import numpy as np
from scipy.special import ndtr, ndtri

KINDS = ("continuous", "count", "datetime", "binary", "categorical")
NUMERIC_KINDS = ("continuous", "count", "datetime")
# Integer-valued columns with at most this many distinct values are categorical.
_MAX_INTEGER_CATEGORIES = 10
# A numeric column's marginal is kept as at most this many quantiles (its sorted
# values when it has fewer rows).
_MAX_KNOTS = 1000
_MAX_DECIMALS = 10
_DATETIME_UNITS = (86_400e9, 3_600e9, 60e9, 1e9, 1e6, 1e3, 1.0)  # a day, ..., a nanosecond


# ---------------------------------------------------------------------- reading a table

def read_table(X):
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


def learn_column(name, values, dtype, override):
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
    if kind in NUMERIC_KINDS:
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

def model_width(spec):
    if spec["kind"] in NUMERIC_KINDS:
        return 1 + spec["missing"]
    k = len(spec["labels"]) + spec["missing"]
    return 0 if k == 1 else (1 if k == 2 else k)


def blocks(spec):
    """The column's entries in the VAE's likelihood list."""
    if spec["kind"] in NUMERIC_KINDS:
        return ["gaussian", "bernoulli"] if spec["missing"] else ["gaussian"]
    width = model_width(spec)
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


def numbers_of(spec, values):
    """A numeric column's values as float64 (NaN when missing), checked."""
    numbers_ = _as_numbers(values)
    if numbers_ is None:
        raise ValueError(f"Column {spec['name']!r} was numeric in fit; it holds {_types_of(values)}.")
    return numbers_


def codes_of(spec, values):
    """A discrete column's values as indices into labels (+ missing last), -1 for a value not seen in fit."""
    index = {_label_key(label): i for i, label in enumerate(spec["labels"])}
    missing = len(spec["labels"])
    return np.array([missing if _is_missing(v) else index.get(_label_key(v), -1) for v in values], np.int64)


def row_fingerprints(specs, columns):
    """A 64-bit fingerprint (uint64) of each row of columns read by read_table: two rows'
    agree exactly when every value does (numbers as float64, so -0.0 is 0.0; labels by type
    and value; a missing value of any sort is one value), but for collisions, about
    n * m / 2**64 among n rows against m. A label fit did not see matches no training row."""
    parts = []
    for spec, (values, _) in zip(specs, columns):
        if spec["kind"] in NUMERIC_KINDS:
            x = numbers_of(spec, values) + 0.0  # -0.0 + 0.0 is 0.0
            x[np.isnan(x)] = np.nan  # one bit pattern for every NaN
        else:
            x = codes_of(spec, values).astype(np.float64)
        parts.append(x)
    rows = np.ascontiguousarray(np.column_stack(parts))
    return np.array([int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little")
                     for row in rows], dtype=np.uint64)


def encode(spec, values, rng):
    """The column's block of the VAE's input (n, width): a numeric column's normal scores
    (NaN where missing) and its missing indicator; a discrete column's one-hot codes."""
    n = len(values)
    if spec["kind"] in NUMERIC_KINDS:
        x = numbers_of(spec, values)
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
    width = model_width(spec)
    codes = codes_of(spec, values)
    if width <= 1:
        return codes[:, None].astype(np.float64)[:, :width]
    return np.eye(width)[codes]


def decode(spec, block):
    """The column's values from its block of draws: float64 for numeric kinds (NaN when
    missing), an object array of labels (None when missing) for discrete ones."""
    n = block.shape[0]
    if spec["kind"] in NUMERIC_KINDS:
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


def to_series(spec, values):
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
    if spec["kind"] in NUMERIC_KINDS:
        return pd.Series(values).astype(spec["dtype"])
    return pd.Series(values, dtype=object).astype(spec["dtype"])


# ---------------------------------------------------------------------- the safe format

def with_labels(spec, convert):
    """The spec with its name, labels and categories passed through convert (to or from their text form)."""
    out = dict(spec, name=convert(spec["name"]))
    for key in ("labels", "categories"):
        if key in out:
            out[key] = [convert(v) for v in out[key]]
    return out


def label_to_json(value):
    sort = _sort(value)
    if sort is None or isinstance(value, bytes):
        raise TypeError(f"{value!r} ({type(value).__name__}) has no safe text form: save keeps column names and "
                        "category labels that are strings, numbers or booleans (pickle the synthesizer instead).")
    value = value.item() if isinstance(value, np.generic) else value
    return [type(value).__name__, value if not isinstance(value, float) or np.isfinite(value) else repr(value)]


def label_from_json(entry):
    kind, value = entry
    return {"str": str, "int": int, "float": float, "bool": bool}[kind](value)
