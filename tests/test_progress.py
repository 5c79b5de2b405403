"""Progress: a bar (tqdm) or lines with verbose, nothing at all without."""

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
    monkeypatch.setattr(progress, "_load_tqdm", lambda: None)
    vae.set_params(verbose=1)
    got = vae.score_samples(X[:n_rows], n_importance=K)
    np.testing.assert_array_equal(got, expected)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"score_samples (K={K}) {n_rows}/{n_rows}"
    assert 2 <= len(lines) <= 11


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_score_samples_bar(X, capsys):
    pytest.importorskip("tqdm")
    vae = small_vae().fit(X)
    vae.set_params(verbose=1)
    vae.score_samples(X[:150], n_importance=1000)
    assert "score_samples (K=1000)" in capsys.readouterr().err
