"""Inference over Dask arrays: an estimator method, mapped over row blocks.

``transform``, ``score_samples`` and ``inverse_transform`` on a Dask array
map the NumPy method over its blocks of whole rows, lazily. Each method
declares what it takes and gives (:func:`dask_blockwise`); nothing here knows
the methods by name.
"""

import functools
import inspect

import numpy as np


def is_dask_collection(X):
    """A Dask array (or other collection), recognized without importing Dask."""
    return hasattr(X, "__dask_graph__") and hasattr(X, "map_blocks")


def dask_blockwise(n_in, n_out=None, dtype=None, n_outputs=None):
    """Decorate an inference method so that a Dask array in gives a Dask array out.

    The method runs unchanged on each block of rows (one chunk across the
    columns), lazily; per-row results equal the NumPy path's because every row
    is computed independently of the others.

    Parameters
    ----------
    n_in : callable
        ``n_in(est)``: the columns the method takes.
    n_out : callable or None, default=None
        ``n_out(est)``: the columns of each array it returns; None for one
        value per row.
    dtype : dtype or None, default=None
        The dtype it returns; None for the input's (float64 unless float32).
    n_outputs : callable or None, default=None
        ``n_outputs(arguments)``: how many arrays of ``n_out`` columns the
        method returns for its bound arguments (a dict); None for one.
    """

    def decorate(method):
        signature = inspect.signature(method)

        @functools.wraps(method)
        def wrapper(self, X, *args, **kwargs):
            if not is_dask_collection(X):
                return method(self, X, *args, **kwargs)
            bound = signature.bind(self, X, *args, **kwargs)
            bound.apply_defaults()
            count = 1 if n_outputs is None else n_outputs(bound.arguments)
            return _map_rows(self, method, X, args, kwargs, n_in(self), n_out and n_out(self), dtype, count)

        return wrapper

    return decorate


def _map_rows(est, method, X, args, kwargs, n_in, n_out, dtype, count):
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "params_")
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D Dask array; got {X.ndim} dimensions.")
    if X.shape[1] != n_in:
        raise ValueError(f"X has {X.shape[1]} columns, but {type(est).__name__}.{method.__name__} expects {n_in}.")
    X = X.rechunk({1: -1})  # whole rows in every block
    if dtype is None:
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    out_dtype = np.dtype(dtype)

    def block(x):
        out = method(est, x, *args, **kwargs)
        return np.hstack(out) if count > 1 else out

    if n_out is None:
        return X.map_blocks(block, drop_axis=1, dtype=out_dtype, meta=np.empty((0,), out_dtype))
    out = X.map_blocks(block, chunks=(X.chunks[0], (count * n_out,)), dtype=out_dtype,
                       meta=np.empty((0, 0), out_dtype))
    if count == 1:
        return out
    return tuple(out[:, k * n_out:(k + 1) * n_out] for k in range(count))
