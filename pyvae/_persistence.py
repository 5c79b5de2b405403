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
# Version 1 (pyvae before internal standardization and the variance floor) reads
# as a model with neither: exactly what it computed then. Version 2 (before the
# encoder standardized count columns: no encoder_shift in fit_config) reads as a
# model whose encoder sees the counts as they are, as it did then.
_READABLE_VERSIONS = (1, 2, 3)
_VERSION_1_DEFAULTS = {"variance_floor": 0.0, "standardize": False}

# Fitted state stored as arrays, and scalars stored in the JSON header.
_ARRAYS = ("params_", "_adam_m", "_adam_v")
_STANDARDIZATION = ("mean_", "scale_")  # float64 arrays, or absent when the model does not standardize
_SCALARS = ("n_features_in_", "n_iter_", "t_", "_baseline", "_seed", "best_loss_", "best_validation_score_",
            "active_units_", "loss_curve_", "validation_scores_")


def _json_value(value):
    if isinstance(value, np.generic):
        return value.item()
    return value


def save(model, path):
    """Write the fitted estimator ``model`` to ``path`` (see :meth:`pyvae.VAE.save`)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model, "params_")
    hyperparameters = model.get_params()
    if not isinstance(hyperparameters["random_state"], (int, np.integer, type(None))):
        hyperparameters["random_state"] = None  # a RandomState instance has no safe text form
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "pyvae_version": _core.__version__,
        "hyperparameters": {k: _json_value(v) for k, v in hyperparameters.items()},
        "fit_config": model._fit_config,
        "state": {k: _json_value(getattr(model, k)) for k in _SCALARS},
    }
    header["state"]["loss_curve_"] = [float(v) for v in model.loss_curve_]
    header["state"]["validation_scores_"] = [float(v) for v in model.validation_scores_]
    arrays = {name.strip("_"): np.asarray(getattr(model, name)) for name in _ARRAYS}
    for name in _STANDARDIZATION:
        if model.__dict__.get(name) is not None:
            arrays[name.strip("_")] = np.asarray(getattr(model, name), dtype=np.float64)
    if hasattr(model, "feature_names_in_"):
        arrays["feature_names_in"] = np.asarray(model.feature_names_in_, dtype=str)
    arrays["header"] = np.array(json.dumps(header))

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


def load(path, estimator_class):
    """Read ``path`` back into an ``estimator_class`` (:class:`pyvae.VAE`; see :func:`pyvae.load`).

    The class is passed in rather than imported, so that the estimator's
    module can import this one without a cycle.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise ValueError(f"{path!r} is not a readable pyvae model file (truncated or corrupted?): {exc}") from exc
    try:
        header = json.loads(str(contents["header"]))
    except (KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path!r} is not a pyvae model file: no valid header") from exc
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
    model = estimator_class(**hyperparameters)
    if isinstance(model.hidden_layer_sizes, list):
        model.hidden_layer_sizes = tuple(model.hidden_layer_sizes)
    model._fit_config = {"variance_floor": 0.0, **header["fit_config"]}
    for name, value in header["state"].items():
        setattr(model, name, value)
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
    if "feature_names_in" in contents:
        model.feature_names_in_ = contents["feature_names_in"].astype(object)
    n_params = model._engine().n_params
    if any(getattr(model, name).size != n_params for name in _ARRAYS):
        raise ValueError(f"{path!r} is corrupted: the parameter buffers do not match the architecture.")
    return model
