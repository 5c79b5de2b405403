"""Training beyond one process: synchronous data parallelism over MPI.

``VAE.fit(X_local, comm=MPI.COMM_WORLD)``: each rank holds a shard of the
rows; the C++ core computes the gradient of the rank's part of every global
minibatch and sums gradient and step statistics over ranks with one
``Allreduce`` per step, so every rank applies the same Adam update. The
fit-time context below is the only place that knows about MPI; the estimator
calls its hooks, which do nothing (``_Local``) without a communicator.

See docs/distributed.md for the design and its cost model.
"""

import hashlib
import signal
import threading

import numpy as np


def _column_sums(X):
    """(count of observed entries, their sum) per column, float64; NaN entries left out."""
    observed = ~np.isnan(X)
    counts = observed.sum(axis=0).astype(np.float64)
    sums = np.where(observed, X, 0).sum(axis=0, dtype=np.float64) if counts.sum() < X.size else \
        X.sum(axis=0, dtype=np.float64)
    return counts, sums


def _column_squares(X, mean):
    """Sum per column of (x - mean)^2 over the observed entries, float64."""
    deviations = np.asarray(X, dtype=np.float64) - mean
    return np.nansum(deviations * deviations, axis=0)


def context(comm):
    """The fit-time context for ``comm``: one process when it is None."""
    return _Local() if comm is None else _MPI(comm)


class _Local:
    """One process: every hook is the identity."""

    rank, size = 0, 1
    first_row, n_total = 0, 0
    engine_kwargs = {}
    data_parallel = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def agree(self, est, error=None, n_rows=0, n_features=0, continuing=False):
        self.n_total = n_rows

    def bcast(self, value):
        return value

    def bcast_state(self, state):
        pass

    def local_rows(self, X, rows):
        return X[rows]

    def gather_rows(self, X):
        """Every rank's rows, in rank order (the rows of the whole data set)."""
        return X

    def mean(self, values):
        return float(np.mean(values))

    def sum(self, values):
        return np.asarray(values, dtype=np.float64)

    def column_moments(self, X):
        """(mean, variance) per column over all rows, NaN entries left out, in float64."""
        counts, sums = _column_sums(X)
        mean = sums / np.maximum(counts, 1)
        squares = _column_squares(X, mean)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, mean, np.nan), squares / counts

    def column_variance(self, values):
        """(variance per column over all rows, row count)."""
        n = len(values)
        return (np.var(values, axis=0, dtype=np.float64) if n > 1 else None), n

    def check_same(self, params):
        pass


class _MPI:
    """Data parallelism over the ranks of an mpi4py communicator.

    Each rank passes its own rows; the global row order is the ranks' shards
    concatenated by rank. Every collective here is called by every rank at the
    same point of ``fit``, so a rank never waits for a call that will not come.
    """

    data_parallel = True

    def __init__(self, comm):
        try:
            from mpi4py import MPI
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("fit(..., comm=...) needs mpi4py: pip install mpi4py mpich "
                              "(or pip install \".[mpi]\" in pyvae's repository)") from exc
        if not isinstance(comm, MPI.Comm):
            raise TypeError(f"comm must be an mpi4py communicator (e.g. MPI.COMM_WORLD); got {type(comm).__name__}.")
        self.MPI, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.first_row = self.n_total = 0
        self.engine_kwargs = {}
        self.stop, self._previous_handler = False, None

    # ---- Ctrl-C: a flag that travels with the gradient ---------------------------

    def __enter__(self):
        # A KeyboardInterrupt raised on one rank between two collectives would
        # leave the others waiting; during fit, SIGINT only sets a flag, the
        # next step's Allreduce carries it, and every rank stops after that step.
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
        if self.stop and exc_type is None:
            raise KeyboardInterrupt  # arrived after the last step: not swallowed
        return False

    def _on_sigint(self, signum, frame):
        self.stop = True

    # ---- before training: agree, or fail together -----------------------------

    def agree(self, est, error=None, n_rows=0, n_features=0, continuing=False):
        """Exchange every rank's verdict on its input; raise on every rank if one failed.

        The rank that failed re-raises its own exception (the caller does, after
        this returns); every other rank raises a RuntimeError naming it.
        """
        params = {k: v for k, v in est.get_params().items() if k not in ("random_state", "verbose", "n_threads")}
        mine = (
            None if error is None else f"{type(error).__name__}: {error}",
            int(n_rows),
            int(n_features),
            bool(continuing),
            hashlib.sha256(repr(sorted(params.items())).encode()).hexdigest(),
        )
        everyone = self.comm.allgather(mine)
        failed = [(k, e[0]) for k, e in enumerate(everyone) if e[0] is not None]
        if failed:
            if error is not None:
                return  # the caller re-raises this rank's own exception
            k, message = failed[0]
            raise RuntimeError(f"rank {k} of {self.size} could not start training, so no rank does: {message}")
        for what, index in (("n_features", 2), ("whether to continue a previous fit", 3), ("hyperparameters", 4)):
            values = [e[index] for e in everyone]
            if len(set(values)) > 1:
                shown = values if index != 4 else "differ"
                raise ValueError(f"The ranks disagree on {what}: {shown}. Every rank must fit the same model.")
        counts = [e[1] for e in everyone]
        self.n_total, self.first_row = sum(counts), sum(counts[: self.rank])
        self.engine_kwargs = {"allreduce": self._allreduce, "first_row": self.first_row}

    def bcast(self, value):
        return self.comm.bcast(value, root=0)

    def bcast_state(self, state):
        """Parameters and optimizer state come from rank 0, once, at the start."""
        for buffer in (state.params, state.m, state.v):
            self.comm.Bcast(buffer, root=0)
        state.step, state.baseline = self.comm.bcast((state.step, state.baseline), root=0)

    # ---- every step -----------------------------------------------------------

    def _allreduce(self, buffer):
        """The core's per-step hook: sum grad | step scalars over ranks, in place.
        The last scalar is the stop flag: any rank's Ctrl-C stops every rank."""
        if self.stop:
            buffer[-1] = 1
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)

    # ---- every epoch, and at the end -----------------------------------------

    def local_rows(self, X, rows):
        """This rank's rows among the sorted global indices ``rows``."""
        lo, hi = np.searchsorted(rows, [self.first_row, self.first_row + len(X)])
        return X[rows[lo:hi] - self.first_row]

    def gather_rows(self, X):
        """Every rank's rows, in rank order (the rows of the whole data set)."""
        return np.concatenate(self.comm.allgather(np.ascontiguousarray(X)))

    def mean(self, values):
        """Mean over every rank's values (float64)."""
        total = np.array([np.sum(values, dtype=np.float64), len(values)], dtype=np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, total, op=self.MPI.SUM)
        return float(total[0] / total[1]) if total[1] > 0 else float("nan")

    def sum(self, values):
        """Elementwise sum over ranks (float64)."""
        total = np.array(values, dtype=np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, total, op=self.MPI.SUM)
        return total

    def column_moments(self, X):
        """(mean, variance) per column over every rank's rows, NaN entries left out, in float64."""
        counts, sums = _column_sums(X)
        self.comm.Allreduce(self.MPI.IN_PLACE, counts, op=self.MPI.SUM)
        self.comm.Allreduce(self.MPI.IN_PLACE, sums, op=self.MPI.SUM)
        mean = sums / np.maximum(counts, 1)
        squares = _column_squares(X, mean)  # two passes: no cancellation
        self.comm.Allreduce(self.MPI.IN_PLACE, squares, op=self.MPI.SUM)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, mean, np.nan), squares / counts

    def column_variance(self, values):
        """(variance per column over every rank's rows, total row count)."""
        values = np.asarray(values, dtype=np.float64)
        n = np.array([len(values)], dtype=np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, n, op=self.MPI.SUM)
        total = values.sum(axis=0)
        self.comm.Allreduce(self.MPI.IN_PLACE, total, op=self.MPI.SUM)
        mean = total / max(n[0], 1.0)
        squares = ((values - mean) ** 2).sum(axis=0)  # two passes: no cancellation
        self.comm.Allreduce(self.MPI.IN_PLACE, squares, op=self.MPI.SUM)
        return (squares / n[0] if n[0] > 1 else None), int(n[0])

    def check_same(self, params):
        """Every rank must end with the same bytes; a mismatch means the MPI
        library's sums differed between ranks, which the design assumes they do not."""
        digest = hashlib.sha256(np.ascontiguousarray(params).tobytes()).hexdigest()
        if len(set(self.comm.allgather(digest))) > 1:
            raise RuntimeError(
                "The ranks ended with different parameters: this MPI library's Allreduce did not return "
                "bit-identical sums on every rank. Please report it, with the MPI library's version."
            )
