"""Progress of long calls: a tqdm bar when tqdm is installed, plain lines otherwise.

``verbose=0`` shows nothing at all. ``verbose=1`` shows a bar (on stderr) when
tqdm can be imported, else one printed line per epoch. ``verbose>=2`` prints one
line per epoch even where tqdm is installed, which reads better in log files.
tqdm is an optional dependency (``pip install tqdm``, or ``pip install ".[progress]"``
in pyvae's repository) and is only
imported when a bar is about to be shown.
"""

import sys


def _load_tqdm():
    """The tqdm class, or None when tqdm is not installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class _Progress:
    """A tqdm bar over ``total`` units, or plain lines; no output when not ``verbose``."""

    def __init__(self, verbose, total, desc, unit, stream=None):
        self.verbose = int(verbose)
        self.total = int(total)
        self.desc = desc
        self.stream = stream
        self.done = 0
        self.bar = None
        if self.verbose == 1:
            tqdm = _load_tqdm()
            if tqdm is not None:
                self.bar = tqdm(total=self.total, desc=desc, unit=unit, file=stream, leave=True,
                                dynamic_ncols=True)

    def update(self, n, status=""):
        """Advance by ``n`` units; ``status`` is shown after the bar, or printed as a line."""
        self.done += n
        if not self.verbose:
            return
        if self.bar is not None:
            if status:
                self.bar.set_postfix_str(status, refresh=False)
            self.bar.update(n)
        elif self.done >= self.total or 10 * self.done // self.total > 10 * (self.done - n) // self.total:
            # Without tqdm: a line at each tenth of the way, not one per update.
            stream = self.stream if self.stream is not None else sys.stdout
            print(f"{self.desc} {self.done}/{self.total}: {status}" if status else
                  f"{self.desc} {self.done}/{self.total}", file=stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EpochReporter:
    """Reports the epochs of ``VAE.fit``: ELBO, reconstruction and KL per row.

    Parameters
    ----------
    verbose : int
        0: nothing; 1: a tqdm bar, or a line per epoch without tqdm; 2 or more:
        a line per epoch.
    max_epochs : int
        Length of the bar (training may stop earlier).
    stream : file-like or None, default=None
        Where to write; None means stderr for the bar and stdout for lines.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> reporter = EpochReporter(verbose=2, max_epochs=3, stream=out)
    >>> reporter.epoch(1, elbo=-30.5, recon=-25.0, kl=5.5, seconds=0.01)
    >>> reporter.close()
    >>> print(out.getvalue().strip())
    Epoch 1/3: ELBO -30.5000, reconstruction -25.0000, KL 5.5000, 0.01 s
    """

    def __init__(self, verbose, max_epochs, stream=None):
        self.verbose = verbose
        self.max_epochs = max_epochs
        self._progress = _Progress(verbose, max_epochs, "VAE fit", "epoch", stream) if verbose else None

    def epoch(self, n_iter, elbo, recon, kl, seconds, validation_score=None):
        """Report one finished epoch (per-row means of the ELBO and its two terms)."""
        if self._progress is None:
            return
        if self._progress.bar is not None:
            status = f"ELBO {elbo:.3f}, recon {recon:.3f}, KL {kl:.3f}"
            if validation_score is not None:
                status += f", val {validation_score:.3f}"
            self._progress.update(1, status)
            return
        line = (f"Epoch {n_iter}/{self.max_epochs}: ELBO {elbo:.4f}, reconstruction {recon:.4f}, "
                f"KL {kl:.4f}, {seconds:.2f} s")
        if validation_score is not None:
            line += f", validation ELBO {validation_score:.4f}"
        stream = self._progress.stream if self._progress.stream is not None else sys.stdout
        print(line, file=stream, flush=True)

    def close(self):
        """End the report (closes the bar)."""
        if self._progress is not None:
            self._progress.close()


def row_progress(verbose, n_rows, desc):
    """A progress bar over rows (for long scoring calls); silent when not ``verbose``."""
    return _Progress(verbose, n_rows, desc, "row")
