"""Saving and loading fitted models in a safe, versioned .npz format.

The file holds arrays and JSON text only and is read with
``allow_pickle=False``: loading never executes code. Saving writes a temporary
file beside the target and renames it over the target, so an interrupted
save leaves any existing file intact.
"""

import json
import os
import tempfile
import zipfile

import numpy as np

from ._threads import _core

FORMAT_NAME = "pyvae.VAE"
FORMAT_VERSION = 3
# A VAEImputer: its own fitted state, and its VAE in the format above under "vae/".
IMPUTER_FORMAT_NAME = "pyvae.VAEImputer"
IMPUTER_FORMAT_VERSION = 1
# A VAESynthesizer: its columns (JSON), their quantiles and its training rows' fingerprints,
# and its VAE in the format above under "vae/". Version 1 (no fingerprints) is not read.
SYNTHESIZER_FORMAT_NAME = "pyvae.VAESynthesizer"
SYNTHESIZER_FORMAT_VERSION = 2
# Version 1 (pyvae before internal standardization and the variance floor) reads
# as a model with neither: exactly what it computed then. Version 2 (before the
# encoder standardized count columns: no encoder_shift in fit_config) reads as a
# model whose encoder sees the counts as they are, as it did then.
_READABLE_VERSIONS = (1, 2, 3)
_VERSION_1_DEFAULTS = {"variance_floor": 0.0, "standardize": False}

# Fitted state stored as arrays, and scalars stored in the JSON header.
_ARRAYS = ("params_", "_adam_m", "_adam_v")
# float64 arrays, or absent when the model does not standardize (or has no power transform)
_STANDARDIZATION = ("mean_", "scale_", "lambdas_", "power_mean_", "power_scale_")
_SCALARS = ("n_features_in_", "n_iter_", "t_", "_baseline", "_seed", "best_loss_", "best_validation_score_",
            "active_units_", "loss_curve_", "validation_scores_", "latent_variance_")


def _json_value(value):
    if isinstance(value, np.generic):
        return value.item()
    return value


def _hyperparameters_to_text(estimator):
    """get_params() as JSON-able values."""
    hyperparameters = estimator.get_params()
    if not isinstance(hyperparameters["random_state"], (int, np.integer, type(None))):
        hyperparameters["random_state"] = None  # a RandomState instance has no safe text form
    return {k: _json_value(v) for k, v in hyperparameters.items()}


def _estimator_from_text(estimator_class, hyperparameters):
    """The estimator with the saved hyperparameters (JSON turned tuples into lists)."""
    estimator = estimator_class(**hyperparameters)
    if isinstance(estimator.hidden_layer_sizes, list):
        estimator.hidden_layer_sizes = tuple(estimator.hidden_layer_sizes)
    return estimator


def _vae_payload(model):
    """A fitted VAE as (header, arrays): JSON-able text and NumPy arrays."""
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "pyvae_version": _core.__version__,
        "hyperparameters": _hyperparameters_to_text(model),
        "fit_config": model._fit_config,
        "state": {k: _json_value(getattr(model, k)) for k in _SCALARS},
    }
    header["state"]["loss_curve_"] = [float(v) for v in model.loss_curve_]
    header["state"]["validation_scores_"] = [float(v) for v in model.validation_scores_]
    header["state"]["latent_variance_"] = [float(v) for v in model.latent_variance_]
    arrays = {name.strip("_"): np.asarray(getattr(model, name)) for name in _ARRAYS}
    for name in _STANDARDIZATION:
        if model.__dict__.get(name) is not None:
            arrays[name.strip("_")] = np.asarray(getattr(model, name), dtype=np.float64)
    if hasattr(model, "feature_names_in_"):
        arrays["feature_names_in"] = np.asarray(model.feature_names_in_, dtype=str)
    return header, arrays


def _imputer_payload(imputer):
    """A fitted VAEImputer as (header, arrays): its own state, and its VAE's
    under the prefix "vae/"."""
    vae_header, vae_arrays = _vae_payload(imputer.vae_)
    indicator = imputer.indicator_
    header = {
        "format": IMPUTER_FORMAT_NAME,
        "format_version": IMPUTER_FORMAT_VERSION,
        "pyvae_version": _core.__version__,
        "hyperparameters": _hyperparameters_to_text(imputer),
        "state": {"column_kinds": list(imputer._column_kinds), "n_components_": int(imputer.n_components_),
                  "n_iter_": int(imputer.n_iter_), "n_features_in_": int(imputer.n_features_in_),
                  "_seed": int(imputer._seed),
                  "indicator_features": None if indicator is None else [int(j) for j in indicator.features_]},
        "vae": vae_header,
    }
    arrays = {f"vae/{k}": v for k, v in vae_arrays.items() if k != "header"}
    arrays.update(mean=np.asarray(imputer.mean_, np.float64), scale=np.asarray(imputer.scale_, np.float64),
                  empty_features=np.asarray(imputer._empty_features, bool), modeled=np.asarray(imputer._modeled, bool))
    for k, categories in enumerate(imputer.categories_):
        arrays[f"categories/{k}"] = np.asarray(categories, np.float64)
    if hasattr(imputer, "feature_names_in_"):
        arrays["feature_names_in"] = np.asarray(imputer.feature_names_in_, dtype=str)
    return header, arrays


def save(model, path):
    """Write the fitted VAE ``model`` to ``path`` (see :meth:`pyvae.VAE.save`)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model, "params_")
    _write(path, *_vae_payload(model))


def save_imputer(imputer, path):
    """Write the fitted VAEImputer ``imputer`` to ``path`` (see :meth:`pyvae.VAEImputer.save`)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(imputer, "vae_")
    _write(path, *_imputer_payload(imputer))


def save_synthesizer(synthesizer, path):
    """Write the fitted VAESynthesizer to ``path`` (see :meth:`pyvae.VAESynthesizer.save`)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(synthesizer, "vae_")
    state, arrays = synthesizer._state()
    vae_header, vae_arrays = _vae_payload(synthesizer.vae_)
    hyperparameters = dict(_hyperparameters_to_text(synthesizer), column_kinds=None)  # kept in the state
    header = {"format": SYNTHESIZER_FORMAT_NAME, "format_version": SYNTHESIZER_FORMAT_VERSION,
              "pyvae_version": _core.__version__, "hyperparameters": hyperparameters, "state": state,
              "vae": vae_header}
    _write(path, header, dict(arrays, **{f"vae/{k}": v for k, v in vae_arrays.items()}))


def _write(path, header, arrays):
    """Writes the .npz atomically: a temporary file beside the target, renamed over it."""
    arrays = dict(arrays, header=np.array(json.dumps(header)))
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".pyvae-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _pickle_advice(path):
    """A message for a pickle or joblib file handed to pyvae.load, or None."""
    with open(path, "rb") as f:
        head = f.read(8)
    # Pickle protocol 2+ starts with 0x80; joblib's compressed files with a zlib
    # header (0x78 and a check byte), or gzip, bz2, xz or lz4 magic.
    zlib = len(head) > 1 and head[0] == 0x78 and (0x7800 + head[1]) % 31 == 0
    magic = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x04\x22\x4d\x18")
    if head[:1] == b"\x80" or zlib or any(head.startswith(m) for m in magic):
        return (f"{path!r} looks like a pickle or joblib file, not one written by VAE.save / VAEImputer.save: "
                "read it with pickle.load or joblib.load (which run code from the file: only for files "
                "you trust). pyvae.load reads pyvae's own .npz format.")
    return None


def load(path, classes):
    """Read ``path`` back into the estimator it holds; ``classes`` maps the
    format names to the estimator classes (see :func:`pyvae.load`).

    The classes are passed in rather than imported, so that the estimators'
    modules can import this one without a cycle.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        advice = _pickle_advice(path)
        if advice:
            raise ValueError(advice) from None
        raise ValueError(f"{path!r} is not a readable pyvae model file (truncated or corrupted?): {exc}") from exc
    try:
        header = json.loads(str(contents["header"]))
    except (KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path!r} is not a pyvae model file: no valid header") from exc
    if header.get("format") == IMPUTER_FORMAT_NAME:
        return _imputer_from(path, header, contents, classes)
    if header.get("format") == SYNTHESIZER_FORMAT_NAME:
        return _synthesizer_from(path, header, contents, classes)
    return _vae_from(path, header, contents, classes[FORMAT_NAME])


def _vae_from(path, header, contents, estimator_class):
    if header.get("format") != FORMAT_NAME:
        raise ValueError(f"{path!r} is not a pyvae model file (format {header.get('format')!r}).")
    if header.get("format_version") not in _READABLE_VERSIONS:
        raise ValueError(
            f"{path!r} has format version {header.get('format_version')!r}; this pyvae "
            f"reads version {FORMAT_VERSION}. Load it with the pyvae version that wrote it "
            f"({header.get('pyvae_version')})."
        )
    hyperparameters = header["hyperparameters"]
    if header["format_version"] == 1:
        hyperparameters = {**_VERSION_1_DEFAULTS, **hyperparameters}
    model = _estimator_from_text(estimator_class, hyperparameters)
    model._fit_config = {"variance_floor": 0.0, **header["fit_config"]}
    for name, value in header["state"].items():
        setattr(model, name, value)
    # Files written before latent_variance_ existed: unknown, so nothing is marked inactive.
    model.latent_variance_ = np.asarray(header["state"].get("latent_variance_", [np.inf] * model._fit_config.get(
        "n_components", 0)), dtype=np.float64)
    for name in _ARRAYS:
        array = contents.get(name.strip("_"))
        if array is None or array.dtype != np.float32 or array.ndim != 1:
            raise ValueError(f"{path!r} is corrupted: {name} is missing or malformed.")
        setattr(model, name, np.array(array))
    for name in _STANDARDIZATION:
        array = contents.get(name.strip("_"))
        if array is not None and (array.dtype != np.float64 or array.shape != (model.n_features_in_,)):
            raise ValueError(f"{path!r} is corrupted: {name} is malformed.")
        setattr(model, name, None if array is None else np.array(array))
    if (model.mean_ is None) != (model.scale_ is None):
        raise ValueError(f"{path!r} is corrupted: it holds only one of mean_ and scale_.")
    if len({model.lambdas_ is None, model.power_mean_ is None, model.power_scale_ is None}) > 1 or \
            (model.lambdas_ is not None and model.mean_ is None):
        raise ValueError(f"{path!r} is corrupted: its power transform is incomplete.")
    if "feature_names_in" in contents:
        model.feature_names_in_ = contents["feature_names_in"].astype(object)
    n_params = model._n_params()
    if any(getattr(model, name).size != n_params for name in _ARRAYS):
        raise ValueError(f"{path!r} is corrupted: the parameter buffers do not match the architecture.")
    return model


def _inner_vae(path, header, contents, classes, what, version):
    """The VAE inside an estimator's file (under "vae/"), once the file's version is checked."""
    if header.get("format_version") != version:
        raise ValueError(
            f"{path!r} has {what} format version {header.get('format_version')!r}; this pyvae reads version "
            f"{version}. Load it with the pyvae version that wrote it ({header.get('pyvae_version')})."
        )
    vae_contents = {key[len("vae/"):]: value for key, value in contents.items() if key.startswith("vae/")}
    return _vae_from(path, header["vae"], vae_contents, classes[FORMAT_NAME])


def _imputer_from(path, header, contents, classes):
    from sklearn.impute import MissingIndicator

    vae = _inner_vae(path, header, contents, classes, "imputer", IMPUTER_FORMAT_VERSION)
    # Files from before refine_steps imputed with the encoder's q as it is: they still do.
    imputer = _estimator_from_text(classes[IMPUTER_FORMAT_NAME], {"refine_steps": 0, **header["hyperparameters"]})
    state = header["state"]
    try:
        kinds = list(state["column_kinds"])
        imputer.mean_, imputer.scale_ = np.array(contents["mean"]), np.array(contents["scale"])
        imputer._empty_features, imputer._modeled = np.array(contents["empty_features"]), np.array(contents["modeled"])
    except KeyError as exc:
        raise ValueError(f"{path!r} is corrupted: the imputer's {exc} is missing.") from None
    d = int(state["n_features_in_"])
    if any(a.shape != (d,) for a in (imputer.mean_, imputer.scale_, imputer._empty_features, imputer._modeled)) \
            or len(kinds) != d:
        raise ValueError(f"{path!r} is corrupted: the imputer's per-feature arrays do not match its features.")
    categorical = [j for j, kind in enumerate(kinds) if kind == "categorical"]
    imputer.categories_ = [np.array(contents[f"categories/{k}"]) for k in range(len(categorical))]
    imputer._column_kinds = kinds
    imputer._categorical_index = {j: i for i, j in enumerate(categorical)}
    imputer.vae_, imputer.n_features_in_ = vae, d
    imputer.n_components_, imputer.n_iter_, imputer._seed = state["n_components_"], state["n_iter_"], state["_seed"]
    if "feature_names_in" in contents:
        imputer.feature_names_in_ = contents["feature_names_in"].astype(object)
    imputer.indicator_ = None
    if state["indicator_features"] is not None:
        # The indicator is refitted on one row missing exactly where the fit's data had holes.
        pattern = np.zeros((1, d))
        pattern[0, state["indicator_features"]] = np.nan
        imputer.indicator_ = MissingIndicator(missing_values=np.nan, error_on_new=False).fit(pattern)
    return imputer


def _synthesizer_from(path, header, contents, classes):
    vae = _inner_vae(path, header, contents, classes, "synthesizer", SYNTHESIZER_FORMAT_VERSION)
    synthesizer = _estimator_from_text(classes[SYNTHESIZER_FORMAT_NAME], header["hyperparameters"])
    try:
        return synthesizer._restore(header["state"], contents, vae)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path!r} is corrupted: the synthesizer's state is incomplete ({exc!r}).") from None
