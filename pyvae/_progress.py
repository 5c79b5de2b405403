"""Progress of long calls: a tqdm bar when tqdm is installed, plain lines otherwise.

``verbose=0`` shows nothing at all. ``verbose=1`` shows a bar (on stderr) when
tqdm can be imported, else one printed line per epoch. ``verbose>=2`` prints one
line per epoch even where tqdm is installed, which reads better in log files.
tqdm is an optional dependency (``pip install tqdm``, or ``pip install ".[progress]"``
in pyvae's repository) and is only imported when a bar is about to be shown.

While a bar is on screen, warnings are held back and shown when it closes, so a
warning never splits the bar's line. Progress over rows (``score_samples``)
appears only once a call has run for ``ROW_PROGRESS_DELAY_S`` seconds: a quick
call shows nothing. ``warn`` issues pyvae's warnings at the user's line.
"""

import os
import sys
import time
import warnings

# Progress over rows appears only after this many seconds (tqdm's ``delay``).
ROW_PROGRESS_DELAY_S = 2.0


def warn(message, category):
    """warnings.warn at the first frame outside pyvae and scikit-learn (whose
    wrappers and pipelines may stand between): the user's line."""
    import sklearn

    inside = tuple(os.path.dirname(os.path.abspath(m.__file__)) + os.sep for m in (sys.modules[__package__], sklearn))
    frame, level = sys._getframe(1), 2  # stacklevel 2: warn's caller
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(inside):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def _load_tqdm():
    """The tqdm class, or None when tqdm is not installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def format_seconds(seconds):
    """A duration for a progress line, with digits where they matter: '840 us', '12.3 ms', '1.25 s'.

    Examples
    --------
    >>> format_seconds(0.0123), format_seconds(1.25), format_seconds(0.00084), format_seconds(75.0)
    ('12.3 ms', '1.25 s', '840 us', '75.0 s')
    """
    seconds = float(f"{seconds:.3g}")  # round first, so 0.9996 s reads "1.00 s", not "1000 ms"
    if seconds >= 100:
        return f"{seconds:.0f} s"
    value, unit = next((seconds * scale, unit) for scale, unit in ((1, "s"), (1e3, "ms"), (1e6, "us"))
                       if seconds * scale >= 1 or unit == "us")
    decimals = 0 if value >= 100 else 1 if value >= 10 else 2
    if unit == "us":
        decimals = 0
    return f"{value:.{decimals}f} {unit}"


class _HeldWarnings:
    """Records the warnings raised while a bar is on screen; ``release`` shows them.

    The warning filters in force decide, as always, which warnings are recorded
    (an "error" filter still raises at once); a recorded warning is then shown
    exactly as it would have been, only later."""

    def __init__(self):
        self._context = warnings.catch_warnings(record=True)
        self._held = self._context.__enter__()

    def release(self):
        if self._context is None:
            return
        self._context.__exit__(None, None, None)
        self._context = None
        show = getattr(warnings, "_showwarnmsg", None)  # what warn() calls to display a message
        for message in self._held:
            if show is not None:
                show(message)
            else:  # pragma: no cover - every CPython from 3.6 on has _showwarnmsg
                warnings.showwarning(message.message, message.category, message.filename, message.lineno,
                                     message.file, message.line)


class _Progress:
    """A tqdm bar over ``total`` units, or plain lines; no output when not ``verbose``.

    ``delay``: seconds before anything is shown (the bar, or the first line)."""

    def __init__(self, verbose, total, desc, unit, stream=None, delay=0.0):
        self.verbose = int(verbose)
        self.total = int(total)
        self.desc = desc
        self.stream = stream
        self.delay = float(delay)
        self.done = 0
        self.bar = None
        self.lines_printed = 0
        self._started = time.perf_counter()
        self._held_warnings = None
        if self.verbose == 1:
            tqdm = _load_tqdm()
            if tqdm is not None:
                self.bar = tqdm(total=self.total, desc=desc, unit=unit, file=stream, leave=True,
                                dynamic_ncols=True, delay=self.delay)
                self._held_warnings = _HeldWarnings()

    def _line_stream(self):
        return self.stream if self.stream is not None else sys.stdout

    def update(self, n, status=""):
        """Advance by ``n`` units; ``status`` is shown after the bar, or printed as a line."""
        self.done += n
        if not self.verbose:
            return
        if self.bar is not None:
            if status:
                self.bar.set_postfix_str(status, refresh=False)
            self.bar.update(n)
            return
        if time.perf_counter() - self._started < self.delay:
            return
        # Without tqdm: a line at each tenth of the way, not one per update (and the first one due).
        tenth_passed = 10 * self.done // self.total > 10 * (self.done - n) // self.total
        if self.done >= self.total or tenth_passed or self.lines_printed == 0:
            line = f"{self.desc} {self.done}/{self.total}"
            print(f"{line}: {status}" if status else line, file=self._line_stream(), flush=True)
            self.lines_printed += 1

    def close(self, reason=None):
        """Close the bar, show the warnings held meanwhile, then ``reason`` (a line) if given."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            stream = self.stream if self.stream is not None else sys.stderr
        else:
            stream = self._line_stream()
        if self._held_warnings is not None:
            self._held_warnings.release()
            self._held_warnings = None
        if reason and self.verbose:
            print(f"{self.desc} stopped at {self.done}/{self.total}: {reason}", file=stream, flush=True)


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
    >>> reporter = EpochReporter(verbose=2, max_epochs=30, stream=out)
    >>> reporter.epoch(1, elbo=-30.5, recon=-25.0, kl=5.5, seconds=0.0123)
    >>> reporter.close(reason="no improvement for 10 epochs")
    >>> print(out.getvalue().strip())
    Epoch 1/30: ELBO -30.5000, reconstruction -25.0000, KL 5.5000, 12.3 ms
    VAE fit stopped at 1/30: no improvement for 10 epochs
    """

    def __init__(self, verbose, max_epochs, stream=None):
        self.verbose = verbose
        self.max_epochs = max_epochs
        self._progress = _Progress(verbose, max_epochs, "VAE fit", "epoch", stream) if verbose else None
        self._last = time.perf_counter()

    def epoch(self, n_iter, elbo, recon, kl, seconds=None, validation_score=None):
        """Report one finished epoch (per-row means of the ELBO and its two terms).

        ``seconds``: the epoch's duration; None measures the time since the
        previous call (or since the reporter was made)."""
        now = time.perf_counter()
        if seconds is None:
            seconds = now - self._last
        self._last = now
        if self._progress is None:
            return
        if self._progress.bar is not None:
            status = f"ELBO {elbo:.3f}, recon {recon:.3f}, KL {kl:.3f}"
            if validation_score is not None:
                status += f", val {validation_score:.3f}"
            self._progress.update(1, status)
            return
        self._progress.done += 1
        line = (f"Epoch {n_iter}/{self.max_epochs}: ELBO {elbo:.4f}, reconstruction {recon:.4f}, "
                f"KL {kl:.4f}, {format_seconds(seconds)}")
        if validation_score is not None:
            line += f", validation ELBO {validation_score:.4f}"
        print(line, file=self._progress._line_stream(), flush=True)

    def close(self, reason=None):
        """End the report: close the bar, show the warnings held while it was on screen, then
        ``reason`` when training stopped before ``max_epochs`` (e.g. "no improvement for 10
        epochs"), as "VAE fit stopped at 84/100: <reason>". Closing twice does nothing more."""
        if self._progress is not None:
            self._progress.close(reason)
            self._progress = None


def row_progress(verbose, n_rows, desc):
    """Progress over rows (for long scoring calls): silent when not ``verbose``, and
    shown only once the call has run for ``ROW_PROGRESS_DELAY_S`` seconds."""
    return _Progress(verbose, n_rows, desc, "row", delay=ROW_PROGRESS_DELAY_S)


def by_row_slices(compute, n_rows, block, verbose, desc):
    """compute(start, stop) over about 50 consecutive slices of n_rows rows,
    concatenated, with progress over the rows (see ``row_progress``). Each slice
    but the last is a whole number of ``block`` rows: where the core computes rows
    in blocks, every block sees the rows it would see in one call."""
    step = block * max(1, -(-n_rows // (block * 50)))
    parts = []
    progress = row_progress(verbose, n_rows, desc)
    try:
        for start in range(0, n_rows, step):
            stop = min(start + step, n_rows)
            parts.append(compute(start, stop))
            progress.update(stop - start)
    finally:
        progress.close()
    return parts
