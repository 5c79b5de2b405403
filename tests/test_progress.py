"""Progress: a bar (tqdm) or lines with verbose, nothing at all without."""

import io
import os
import re
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pytest

import pyvae._progress as progress
import pyvae._vae
from pyvae import VAE


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(300, 6))


def small_vae(**params):
    return VAE(n_components=2, hidden_layer_sizes=(8,), max_iter=3, n_iter_no_change=100, random_state=0,
               **params)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_verbose_0_prints_nothing(X, capsys, monkeypatch):
    monkeypatch.setattr(pyvae._vae, "_SCORE_PROGRESS_MIN_DRAWS", 1)
    vae = small_vae(verbose=0).fit(X)
    vae.score_samples(X[:50], n_importance=100)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_verbose_1_shows_a_bar_with_elbo_recon_and_kl(X, capsys):
    pytest.importorskip("tqdm")
    small_vae(verbose=1, early_stopping=True).fit(X)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "VAE fit" in captured.err and "3/3" in captured.err
    for word in ("ELBO", "recon", "KL", "val"):
        assert word in captured.err


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("verbose, without_tqdm", [(1, True), (2, False)])
def test_lines_without_tqdm_or_with_verbose_2(X, capsys, monkeypatch, verbose, without_tqdm):
    if without_tqdm:
        monkeypatch.setattr(progress, "_load_tqdm", lambda: None)
    small_vae(verbose=verbose).fit(X)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Epoch 1/3: ELBO ") and "reconstruction" in lines[0] and "KL" in lines[0]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("K, n_rows", [(40, 300), (1000, 90), (4097, 7)])
def test_score_samples_progress_gives_identical_results(X, capsys, monkeypatch, K, n_rows):
    # With verbose, long calls score in slices of rows to show progress; each slice
    # is whole blocks of the core (4096 // K rows), so the numbers equal one call's.
    vae = small_vae().fit(X)
    expected = vae.score_samples(X[:n_rows], n_importance=K)
    monkeypatch.setattr(pyvae._vae, "_SCORE_PROGRESS_MIN_DRAWS", 1)
    monkeypatch.setattr(progress, "ROW_PROGRESS_DELAY_S", 0.0)
    monkeypatch.setattr(progress, "_load_tqdm", lambda: None)
    vae.set_params(verbose=1)
    got = vae.score_samples(X[:n_rows], n_importance=K)
    np.testing.assert_array_equal(got, expected)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"score_samples (K={K}) {n_rows}/{n_rows}"
    assert 2 <= len(lines) <= 11


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_score_samples_bar(X, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(progress, "ROW_PROGRESS_DELAY_S", 0.0)
    vae = small_vae().fit(X)
    vae.set_params(verbose=1)
    vae.score_samples(X[:150], n_importance=1000)
    assert "score_samples (K=1000)" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("without_tqdm", [True, False])
def test_a_quick_score_samples_shows_no_progress(X, capsys, monkeypatch, without_tqdm):
    # Progress over rows waits ROW_PROGRESS_DELAY_S before it appears; here the
    # delay is made far longer than the call, so nothing may appear.
    if without_tqdm:
        monkeypatch.setattr(progress, "_load_tqdm", lambda: None)
    else:
        pytest.importorskip("tqdm")
    monkeypatch.setattr(pyvae._vae, "_SCORE_PROGRESS_MIN_DRAWS", 1)
    monkeypatch.setattr(progress, "ROW_PROGRESS_DELAY_S", 3600.0)
    vae = small_vae().fit(X)
    capsys.readouterr()
    vae.set_params(verbose=1)
    vae.score_samples(X[:50], n_importance=100)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_epoch_lines_give_each_epochs_duration(X, capsys):
    small_vae(verbose=2).fit(X)
    lines = capsys.readouterr().out.strip().splitlines()
    for line in lines:
        if " stopped at " in line:  # the reason training ended, after the epochs
            continue
        match = re.search(r", ([0-9.]+) (us|ms|s)(,|$)", line)
        assert match, line
        assert float(match.group(1)) > 0, line  # an epoch never reads as "0.00 s"


def test_format_seconds_keeps_three_digits_or_whole_units():
    assert [progress.format_seconds(t) for t in (2.5e-6, 0.004567, 0.25, 3.14159, 250.4)] == [
        "2 us", "4.57 ms", "250 ms", "3.14 s", "250 s"]


def test_epoch_measures_its_own_time_when_not_given():
    out = io.StringIO()
    reporter = progress.EpochReporter(verbose=2, max_epochs=2, stream=out)
    reporter.epoch(1, elbo=-3.0, recon=-2.0, kl=1.0)
    reporter.close()
    assert re.search(r"KL 1.0000, [0-9.]+ (us|ms|s)$", out.getvalue().strip())


@pytest.mark.parametrize("without_tqdm", [True, False])
def test_close_with_a_reason_says_why_training_stopped(monkeypatch, without_tqdm):
    if without_tqdm:
        monkeypatch.setattr(progress, "_load_tqdm", lambda: None)
    else:
        pytest.importorskip("tqdm")
    out = io.StringIO()
    reporter = progress.EpochReporter(verbose=1, max_epochs=100, stream=out)
    for epoch in range(1, 85):
        reporter.epoch(epoch, elbo=-3.0, recon=-2.0, kl=1.0, seconds=0.01)
    reporter.close(reason="no improvement for 10 epochs")
    reporter.close(reason="again")  # a second close adds nothing
    text = out.getvalue()
    assert text.rstrip().endswith("VAE fit stopped at 84/100: no improvement for 10 epochs")
    assert "again" not in text


def test_close_without_a_reason_adds_no_line():
    out = io.StringIO()
    reporter = progress.EpochReporter(verbose=2, max_epochs=1, stream=out)
    reporter.epoch(1, elbo=-3.0, recon=-2.0, kl=1.0, seconds=0.01)
    reporter.close()
    assert len(out.getvalue().strip().splitlines()) == 1


def test_warnings_wait_until_the_bar_closes():
    pytest.importorskip("tqdm")
    with pytest.warns(UserWarning, match="raised mid-bar") as record:
        reporter = progress.EpochReporter(verbose=1, max_epochs=3, stream=io.StringIO())
        reporter.epoch(1, elbo=-3.0, recon=-2.0, kl=1.0, seconds=0.01)
        warnings.warn("raised mid-bar", UserWarning)
        assert len(record) == 0  # held while the bar is on screen
        reporter.close()
        assert len(record) == 1  # shown once it has closed


def test_held_warnings_still_obey_the_filters():
    pytest.importorskip("tqdm")
    reporter = progress.EpochReporter(verbose=1, max_epochs=3, stream=io.StringIO())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(UserWarning):
                warnings.warn("an error now, not later", UserWarning)
    finally:
        reporter.close()


def test_fit_bar_is_not_split_by_its_convergence_warning():
    # In a fresh interpreter, so the warning reaches stderr as a user sees it.
    pytest.importorskip("tqdm")
    code = ("import numpy as np; from pyvae import VAE; "
            "VAE(n_components=2, hidden_layer_sizes=(8,), max_iter=3, n_iter_no_change=100, verbose=1, "
            "random_state=0).fit(np.random.default_rng(0).normal(size=(300, 6)))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(pyvae.__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True,
                            env=env, cwd=tempfile.gettempdir(), timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    warning = next(i for i, line in enumerate(lines) if "ConvergenceWarning" in line)
    assert "3/3" in lines[warning - 1]  # the bar's finished line comes first, whole
    assert lines[warning].startswith("<string>:1: ")  # its own line, naming the caller's (python -c) line
