"""pyvae.plot: each figure renders with Agg to a non-empty PNG of the expected pixel size."""

import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError

import pyvae
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
    # 5 features: not an image; each feature gets a panel.
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
    titles = [ax.get_title() for ax in plot.plot_reconstructions(vae, X, n=6).axes if ax.get_visible()]
    assert titles[:5] == ["x0", "x1", "x2", "x3", "x4"]


def test_bad_arguments(model, digits):
    X, _ = digits
    with pytest.raises(ValueError, match="image_shape"):
        plot.plot_reconstructions(model, X, image_shape=(7, 7))
    with pytest.raises(ValueError, match="kind"):
        plot.plot_samples(model, kind="median")
    with pytest.raises(ValueError, match="dims"):
        plot.plot_latent_traversal(model, dims=[5])
    with pytest.raises(ValueError, match="center"):
        plot.plot_latent_traversal(model, center=[0.0])
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
    with pytest.raises(ImportError, match=r"pip install matplotlib"):
        plot.plot_samples(model)


# --------------------------------------------------------------------------
# What a reader needs: clipping shown, titles inside the figure, tabular data
# drawn per feature in its own units and names.
# --------------------------------------------------------------------------

def test_loss_curve_marks_the_epochs_below_the_axis(model):
    import copy

    clipped = copy.deepcopy(model)
    clipped.loss_curve_ = [200.0, 150.0, 120.0] + list(31.0 - 0.1 * np.arange(27))
    clipped.validation_scores_ = []
    ax = plot.plot_loss_curves(clipped).axes[0]
    bottom = ax.get_ylim()[0]
    assert bottom > -80  # the scale follows the later epochs...
    markers = [line for line in ax.get_lines() if line.get_marker() == "v"]
    assert len(markers) == 1 and list(markers[0].get_xdata()) == [1, 2, 3]  # ...and says what it cut
    assert np.all(markers[0].get_ydata() == bottom)
    assert markers[0].get_label() == "below the axis: epochs 1-3 (lowest -200)"
    assert "below the axis" in [t.get_text() for t in ax.get_legend().get_texts()][-1]

    clipped.loss_curve_ = list(31.0 - 0.1 * np.arange(30))
    ax = plot.plot_loss_curves(clipped).axes[0]
    assert not [line for line in ax.get_lines() if line.get_marker() == "v"]  # nothing cut, nothing marked


def inside_figure(fig, artist):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)  # lays the figure out (constrained layout) as savefig would
    box = artist.get_window_extent(renderer)
    return fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_latent_traversal_title_fits_and_names_agree(digits):
    X, _ = digits
    vae = VAE(n_components=8, hidden_layer_sizes=(32,), likelihood="bernoulli", max_iter=2, random_state=0).fit(X)
    fig = plot.plot_latent_traversal(vae, image_shape=(8, 8))
    ax = fig.axes[0]
    assert inside_figure(fig, fig._suptitle)
    rows = [t.get_text().split()[0] for t in ax.get_yticklabels()]  # "z3 (inactive)" -> "z3"
    assert rows == [f"z{i}" for i in range(1, 9)]
    # The axis names the centre without a latent name outside z1..z8.
    assert "z0" not in ax.get_xlabel() and "z = 0" in ax.get_xlabel()


@pytest.fixture(scope="module")
def wine():
    from sklearn.datasets import load_wine

    return load_wine(as_frame=True)


@pytest.fixture(scope="module")
def wine_model(wine):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import warnings
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make_pipeline(StandardScaler(), VAE(n_components=2, hidden_layer_sizes=(16,), max_iter=20,
                                                   random_state=0)).fit(wine.data)


def visible(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.axison]


def test_tabular_reconstructions_per_feature_in_the_datas_units(wine, wine_model):
    X = wine.data
    fig = plot.plot_reconstructions(wine_model, X)
    panels = visible(fig)
    assert [ax.get_title() for ax in panels] == list(X.columns)  # names, not grey stripes
    expected = wine_model.inverse_transform(wine_model.transform(X))
    proline = panels[list(X.columns).index("proline")]
    points = proline.collections[0].get_offsets()
    np.testing.assert_allclose(points[:, 0], X["proline"].to_numpy())  # original units (hundreds)
    np.testing.assert_allclose(points[:, 1], np.asarray(expected)[:, -1], rtol=1e-6)
    assert proline.get_xlabel() == "data" and panels[0].get_ylabel() == "reconstruction"
    assert any(t.get_text().startswith("R\u00b2 ") for t in proline.texts)


def test_tabular_samples_beside_the_data(wine, wine_model):
    fig = plot.plot_samples(wine_model, X=wine.data, n=300)
    panels = visible(fig)
    assert [ax.get_title() for ax in panels] == list(wine.data.columns)
    labels = [t.get_text() for legend in [ax.get_legend() for ax in fig.axes] if legend for t in legend.get_texts()]
    assert labels == ["model", "data"]
    # The histograms span the data's own units: proline's in the hundreds.
    low, high = panels[-1].get_xlim()
    assert low < 500 and high > 1500
    with pytest.raises(ValueError, match="tabular data only"):
        plot.plot_samples(wine_model, X=wine.data, image_shape=(1, 13))


def test_tabular_traversal_lines_per_latent_coordinate(wine, wine_model):
    fig = plot.plot_latent_traversal(wine_model, n_steps=5)
    panels = visible(fig)
    assert [ax.get_title() for ax in panels] == list(wine.data.columns)
    assert [line.get_label() for line in panels[0].get_lines()] == ["z1", "z2"]
    assert inside_figure(fig, fig._suptitle)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_images_or_tables(tmp_path):
    pd = pytest.importorskip("pandas")
    X = np.random.default_rng(0).random(size=(60, 16))
    vae = VAE(hidden_layer_sizes=(4,), likelihood="bernoulli", max_iter=1, random_state=0).fit(X)
    assert plot.plot_samples(vae).axes[0].get_images()  # 16 unnamed features: 4 x 4 images
    assert not visible(plot.plot_samples(vae, image_shape=False))[0].get_images()
    named = VAE(hidden_layer_sizes=(4,), likelihood="bernoulli", max_iter=1, random_state=0).fit(
        pd.DataFrame(X, columns=[f"f{j}" for j in range(16)]))
    assert visible(plot.plot_samples(named))[0].get_title() == "f0"  # named columns: a table
    wide = VAE(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(np.random.default_rng(0).normal(size=(60, 20)))
    fig = plot.plot_reconstructions(wide, np.zeros((5, 20)))
    assert len(visible(fig)) == 16 and "the first 16 of 20 features" in fig._suptitle.get_text()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_latent_traversal_marks_the_inactive_dimensions(tmp_path):
    X = load_digits().data / 16.0
    vae = VAE(n_components=8, hidden_layer_sizes=(128,), likelihood="bernoulli", early_stopping=True,
              n_iter_no_change=10, max_iter=300, random_state=0).fit(X)
    variance = vae.transform(X).var(axis=0)  # the posterior means' spread over the data
    labels = [t.get_text() for t in plot.plot_latent_traversal(vae, image_shape=(8, 8)).axes[0].get_yticklabels()]
    inactive = [d for d, label in enumerate(labels) if label.endswith("(inactive)")]
    assert 0 < len(inactive) == 8 - vae.active_units_ < 8  # digits leave some of 8 dimensions unused
    assert variance[inactive].max() < 1e-2 < variance[[d for d in range(8) if d not in inactive]].min()
    path = tmp_path / "vae.npz"
    vae.save(path)
    np.testing.assert_array_equal(pyvae.load(path).latent_variance_, vae.latent_variance_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_loss_curves_name_the_objective_trained_on(digits):
    X, _ = digits
    iwae = VAE(n_components=2, hidden_layer_sizes=(8,), likelihood="bernoulli", objective="iwae", n_mc_samples=3,
               max_iter=2, random_state=0).fit(X)
    assert plot.plot_loss_curves(iwae).axes[0].get_ylabel().startswith("importance-weighted bound (K=3) per row")
