"""pyvae.plot: each figure renders with Agg to a non-empty PNG of the expected pixel size."""

import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError

from pyvae import VAE

pytest.importorskip("matplotlib")
from pyvae import plot  # noqa: E402

DPI = 50


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


@pytest.fixture(scope="module")
def model(digits):
    X, _ = digits
    return VAE(n_components=3, hidden_layer_sizes=(32,), likelihood="bernoulli", max_iter=4,
               early_stopping=True, random_state=0).fit(X)


def png_size(path):
    """(width, height) of a PNG, read from its IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def render(fig, path, figsize):
    assert tuple(fig.get_size_inches()) == pytest.approx(figsize)
    fig.savefig(path, dpi=DPI)
    assert png_size(path) == (round(figsize[0] * DPI), round(figsize[1] * DPI))
    import matplotlib.image

    pixels = matplotlib.image.imread(str(path))
    assert pixels.std() > 0.01  # something was drawn, not a blank canvas


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_each_figure_renders_to_a_png_of_the_expected_size(model, digits, tmp_path):
    X, y = digits
    cases = {
        "loss_curves": (plot.plot_loss_curves(model), (6.4, 4.0)),
        "latent_space": (plot.plot_latent_space(model, X, y), (6.0, 5.0)),
        "reconstructions": (plot.plot_reconstructions(model, X, image_shape=(8, 8)), (8.0, 4.4)),
        "samples": (plot.plot_samples(model, n=16), (5.0, 5.0)),
        "latent_traversal": (plot.plot_latent_traversal(model, figsize=(7.0, 3.0)), (7.0, 3.0)),
        "samples_sampled": (plot.plot_samples(model, n=10, kind="sample", figsize=(4, 3)), (4, 3)),
    }
    for name, (fig, figsize) in cases.items():
        render(fig, tmp_path / f"{name}.png", figsize)


def test_figures_are_not_registered_with_pyplot(model):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot.plot_samples(model)
    assert plt.get_fignums() == before


def test_latent_space_axes_say_what_they_show(model, digits):
    X, y = digits
    assert plot.plot_latent_space(model, X, y).axes[0].get_xlabel().startswith("PC 1 of the posterior means")
    ax = plot.plot_latent_space(model, X, y, dims=(2, 0)).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("z3", "z1")
    legend = plot.plot_latent_space(model, X, y).axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [str(c) for c in range(10)]
    # Real-valued labels get a colour bar instead of a legend.
    fig = plot.plot_latent_space(model, X, X[:, 20])
    assert fig.axes[0].get_legend() is None and len(fig.axes) == 2
    with pytest.raises(ValueError, match="one label per row"):
        plot.plot_latent_space(model, X, y[:10])
    with pytest.raises(ValueError, match="dims"):
        plot.plot_latent_space(model, X, dims=(0, 3))


def test_reconstructions_show_the_model_outputs(model, digits):
    X, _ = digits
    fig = plot.plot_reconstructions(model, X, n=4, n_cols=4)
    originals, recon = (ax.get_images()[0].get_array() for ax in fig.axes)
    # One row of four 8 x 8 images with one-pixel gaps: 10 x 37.
    assert originals.shape == recon.shape == (10, 37)
    expected = model.inverse_transform(model.transform(X[:4]))
    np.testing.assert_allclose(recon[1:9, 1:9], expected[0].reshape(8, 8))
    np.testing.assert_allclose(originals[1:9, 10:18], X[1].reshape(8, 8))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("n_components", [1, 2])
def test_tabular_data_and_small_latent_spaces(n_components, tmp_path):
    # 5 features: not an image; rows are drawn as strips.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    vae = VAE(n_components=n_components, hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X)
    figures = [
        plot.plot_loss_curves(vae),  # no validation curve without early_stopping
        plot.plot_latent_space(vae, X, (X[:, 0] > 0)),
        plot.plot_latent_space(vae, X),
        plot.plot_reconstructions(vae, X, n=6),
        plot.plot_samples(vae, n=4),
        plot.plot_latent_traversal(vae, n_steps=5),
    ]
    for i, fig in enumerate(figures):
        render(fig, tmp_path / f"{i}.png", tuple(fig.get_size_inches()))
    assert plot.plot_reconstructions(vae, X, n=6).axes[0].get_images()[0].get_array().shape == (13, 7)


def test_bad_arguments(model, digits):
    X, _ = digits
    with pytest.raises(ValueError, match="image_shape"):
        plot.plot_reconstructions(model, X, image_shape=(7, 7))
    with pytest.raises(ValueError, match="kind"):
        plot.plot_samples(model, kind="median")
    with pytest.raises(ValueError, match="dims"):
        plot.plot_latent_traversal(model, dims=[5])
    with pytest.raises(ValueError, match="z0"):
        plot.plot_latent_traversal(model, z0=[0.0])
    for function, args in [(plot.plot_loss_curves, ()), (plot.plot_samples, ()),
                           (plot.plot_latent_space, (X,)), (plot.plot_reconstructions, (X,)),
                           (plot.plot_latent_traversal, ())]:
        with pytest.raises(NotFittedError):
            function(VAE(), *args)


def test_matplotlib_is_optional(model, monkeypatch, tmp_path):
    # Importing pyvae.plot does not import matplotlib... (run away from the repository
    # root, where `python -c` would import the source tree instead of the tested pyvae)
    code = "import sys, pyvae.plot; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert result.stdout.strip() == "False", result.stderr
    # ...and without it, a plot function says how to get it.
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install \"pyvae\[plot\]\""):
        plot.plot_samples(model)
