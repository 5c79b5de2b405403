"""Pictures of a fitted :class:`pyvae.VAE`, each returned as a matplotlib Figure.

matplotlib is an optional dependency (``pip install matplotlib``, or
``pip install ".[plot]"`` in pyvae's repository); it is imported when a
function here is first called, not when this module is.

The figures are plain ``matplotlib.figure.Figure`` objects, not registered with
pyplot: save one with ``fig.savefig("name.png")``, or leave it as the value of
a notebook cell to display it (with the inline backend active, e.g. after
``import matplotlib.pyplot``). Nothing global (the pyplot figure list, the
backend) is touched, so they are safe to make in loops and in scripts without
a display.

``model`` is a fitted ``VAE``, or a fitted scikit-learn ``Pipeline`` whose last
step is one (e.g. ``make_pipeline(StandardScaler(), VAE())``): the pipeline's
earlier steps then map the decoder's outputs back to the data's own units.

Images or tables: pass ``image_shape`` (e.g. ``(8, 8)`` for scikit-learn's
digits) to draw rows as images. When it is None, rows are taken for square
images if the number of features is a perfect square of at least 16 and the
model was fitted without feature names; otherwise (or with
``image_shape=False``) the data is tabular, and each feature gets a panel of
its own, named and in the data's units.
"""

import math

import numpy as np
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "plot_loss_curves",
    "plot_latent_space",
    "plot_reconstructions",
    "plot_samples",
    "plot_latent_traversal",
]

_IMAGE_CMAP = "gray_r"  # ink dark on white, as digits are usually shown
_GAP_COLOR = "#c8d4e0"  # the lines between images in a grid
_MAX_FEATURE_PANELS = 16  # tabular figures show at most this many features, the first ones
_PANEL_COLUMNS = 4


def _new_figure(figsize):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "pyvae.plot needs matplotlib, an optional dependency: pip install matplotlib "
            "(or pip install \".[plot]\" in pyvae's repository)."
        ) from exc
    return Figure(figsize=figsize, layout="constrained")


class _Fitted:
    """What the pictures need from a fitted VAE, or from a Pipeline ending in one."""

    def __init__(self, model):
        steps = getattr(model, "steps", None)
        self.model = model
        self.vae = steps[-1][1] if steps else model
        check_is_fitted(self.vae, "params_")
        self.prefix = model[:-1] if steps and len(steps) > 1 else None
        self.n_components = int(self.vae._n_features_out)
        self.n_features = int(model.n_features_in_)
        names = getattr(model, "feature_names_in_", None)
        self.has_feature_names = names is not None
        self.feature_names = [str(n) for n in names] if names is not None else [
            f"x{j}" for j in range(self.n_features)]

    def encode(self, X):
        return np.asarray(self.model.transform(X), dtype=np.float64)

    def decode(self, Z):
        """Decoder means at Z, in the data's units."""
        return np.asarray(self.model.inverse_transform(Z), dtype=np.float64)

    def sample(self, n, random_state):
        X = self.vae.sample(n, random_state=random_state)
        if self.prefix is not None:
            X = self.prefix.inverse_transform(X)
        return np.asarray(X, dtype=np.float64)

    def unit_interval(self):
        """Whether outputs lie in [0, 1] (Bernoulli, no steps before the VAE)."""
        return self.vae._decodes_probabilities() and self.prefix is None


def _resolve_image_shape(fitted, image_shape):
    """(height, width) of one image, or None for tabular data."""
    n_features = fitted.n_features
    if image_shape is False:
        return None
    if image_shape is None:
        side = math.isqrt(n_features)
        is_square = side >= 4 and side * side == n_features
        return (side, side) if is_square and not fitted.has_feature_names else None
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 2 or shape[0] * shape[1] != n_features:
        raise ValueError(f"image_shape={image_shape!r} does not hold the model's {n_features} features.")
    return shape


def _mosaic(images, n_cols):
    """Tile images (n, h, w) in rows of n_cols, one NaN pixel between them -> 2-D array."""
    n, h, w = images.shape
    n_rows = -(-n // n_cols)
    out = np.full((n_rows * (h + 1) + 1, n_cols * (w + 1) + 1), np.nan)
    for k in range(n):
        r, c = divmod(k, n_cols)
        out[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + c * (w + 1): 1 + c * (w + 1) + w] = images[k]
    return out


def _value_range(fitted, values):
    if fitted.unit_interval():
        return 0.0, 1.0
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    return (low, high) if high > low else (low - 0.5, high + 0.5)


def _show_images(ax, rows, image_shape, n_cols, vrange, title):
    """Draw rows (n, n_features) as a grid of images on ax."""
    import matplotlib

    images = np.asarray(rows, dtype=np.float64).reshape(-1, *image_shape)
    cmap = matplotlib.colormaps[_IMAGE_CMAP].with_extremes(bad=_GAP_COLOR)
    mappable = ax.imshow(_mosaic(images, n_cols), cmap=cmap, vmin=vrange[0], vmax=vrange[1],
                         interpolation="nearest", aspect="equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    return mappable


def _first_rows(X, n):
    X = X.iloc[:n] if hasattr(X, "iloc") else X[:n]
    return X, np.asarray(X, dtype=np.float64)


class _FeaturePanels:
    """A figure with one small axes per feature shown, in rows of ``_PANEL_COLUMNS``."""

    def __init__(self, fitted, figsize, title):
        shown = min(fitted.n_features, _MAX_FEATURE_PANELS)
        self.n_cols = min(_PANEL_COLUMNS, shown)
        n_rows = -(-shown // self.n_cols)
        if figsize is None:
            figsize = (2.6 * self.n_cols + 0.4, 2.1 * n_rows + 0.9)
        self.fig = _new_figure(figsize)
        axes = self.fig.subplots(n_rows, self.n_cols, squeeze=False).ravel()
        self.spare = list(axes[shown:])  # grid cells without a feature: room for the legend
        for ax in self.spare:
            ax.set_axis_off()
        if shown < fitted.n_features:
            title += f" (the first {shown} of {fitted.n_features} features)"
        self.fig.suptitle(title, fontsize=10)
        self.panels = [(j, axes[j]) for j in range(shown)]
        for j, ax in self.panels:
            ax.set_title(fitted.feature_names[j], fontsize=9)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)

    def label(self, xlabel, ylabel):
        """Axis labels on the outer panels only: every panel's axes mean the same."""
        for j, ax in self.panels:
            if j % self.n_cols == 0 and ylabel:
                ax.set_ylabel(ylabel, fontsize=8)
            if j + self.n_cols >= len(self.panels) and xlabel:
                ax.set_xlabel(xlabel, fontsize=8)

    def legend(self, title=None):
        """The first panel's legend, in a spare grid cell when there is one, else below the panels."""
        handles, labels = self.panels[0][1].get_legend_handles_labels()
        style = dict(fontsize=8, frameon=False, title=title, title_fontsize=8)
        if self.spare:
            self.spare[0].legend(handles, labels, loc="center", **style)
        else:
            self.fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 8), **style)


def plot_loss_curves(model, *, figsize=(6.4, 4.0)):
    """Training and validation ELBO per epoch.

    Parameters
    ----------
    model : VAE or Pipeline
        A fitted model.
    figsize : tuple of float, default=(6.4, 4.0)
        Figure size in inches.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes: the training ELBO per row (``-loss_curve_``, averaged over
        each epoch's minibatches while training), and ``validation_scores_``
        (the held-out ELBO at the end of each epoch; ``early_stopping`` only)
        with the best epoch marked. When the first epochs lie far below the
        rest, the y-axis is fitted to the later ones; the epochs below it are
        then marked by triangles on the bottom edge and a note gives their
        lowest value.

    Examples
    --------
    >>> import numpy as np
    >>> from pyvae import VAE
    >>> from pyvae.plot import plot_loss_curves
    >>> X = np.random.default_rng(0).normal(size=(200, 4))
    >>> vae = VAE(hidden_layer_sizes=(8,), max_iter=5, early_stopping=True, random_state=0).fit(X)
    >>> fig = plot_loss_curves(vae)
    >>> [line.get_label() for line in fig.axes[0].get_lines()][:2]
    ['training', 'validation']
    """
    vae = _Fitted(model).vae
    fig = _new_figure(figsize)
    ax = fig.subplots()
    train = -np.asarray(vae.loss_curve_, dtype=np.float64)
    series = [("training", "C0", train)]
    ax.plot(np.arange(1, train.size + 1), train, label="training", color="C0")
    if len(vae.validation_scores_):
        val = np.asarray(vae.validation_scores_, dtype=np.float64)
        series.append(("validation", "C1", val))
        ax.plot(np.arange(1, val.size + 1), val, label="validation", color="C1")
        best = int(np.argmax(val))
        ax.plot([best + 1], [val[best]], "o", color="C1", label=f"best (epoch {best + 1})")
    # The first epochs can sit far below the rest; keep the scale on the later ones
    # and mark what falls below it, so the cut is never silent.
    values = np.concatenate([s for _, _, s in series])
    values = values[np.isfinite(values)]
    if values.size > 4:
        tail = np.concatenate([s[len(s) // 10:] for _, _, s in series])
        tail = tail[np.isfinite(tail)]
        high, low = float(np.max(values)), float(np.min(tail))
        if high - float(np.min(values)) <= 2 * (high - low):  # all fits without squashing the later epochs
            low = float(np.min(values))
        margin = 0.05 * (high - low) if high > low else 1.0
        bottom = low - margin
        ax.set_ylim(bottom, high + margin)
        below_epochs, lowest, markers = set(), np.inf, []
        for _, color, s in series:
            below = np.flatnonzero(np.isfinite(s) & (s < bottom))
            if below.size:
                markers += ax.plot(below + 1, np.full(below.size, bottom), "v", color=color, markersize=6,
                                   clip_on=False, zorder=3)
                below_epochs.update((below + 1).tolist())
                lowest = min(lowest, float(np.min(s[below])))
        if markers:
            epochs = sorted(below_epochs)
            which = f"epoch {epochs[0]}" if len(epochs) == 1 else (
                f"epochs {epochs[0]}-{epochs[-1]}" if epochs[-1] - epochs[0] + 1 == len(epochs)
                else f"{len(epochs)} epochs")
            markers[0].set_label(f"below the axis: {which} (lowest {lowest:.4g})")
    ax.set_xlabel("epoch")
    objective = "ELBO" if getattr(vae, "objective", "elbo") == "elbo" else (
        f"importance-weighted bound (K={vae.n_mc_samples})")
    ax.set_ylabel(f"{objective} per row (nats, higher is better)")
    ax.set_title(f"Training: {vae.n_iter_} epochs", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return fig


def plot_latent_space(model, X, y=None, *, dims=None, max_classes=20, figsize=(6.0, 5.0)):
    """The posterior means of X in two dimensions, coloured by label.

    Parameters
    ----------
    model : VAE or Pipeline
        A fitted model.
    X : array-like of shape (n_samples, n_features)
        Data to encode (``model.transform(X)``, the posterior means).
    y : array-like of shape (n_samples,), default=None
        Labels for the colours: at most ``max_classes`` distinct values get one
        colour each and a legend; more (or real-valued ones) get a colour bar.
    dims : tuple of two int, default=None
        Latent dimensions to show (0-based; drawn as z1, z2, ...). None: both
        with ``n_components == 2``, the only one (against a jitter) with 1,
        and the first two principal components of the posterior means (a PCA
        of ``model.transform(X)``) with more than 2; the axis labels say which.
    max_classes : int, default=20
        Largest number of distinct labels drawn as classes.
    figsize : tuple of float, default=(6.0, 5.0)
        Figure size in inches.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One scatter plot, one point per row of X.

    Examples
    --------
    >>> import numpy as np
    >>> from pyvae import VAE
    >>> from pyvae.plot import plot_latent_space
    >>> X = np.random.default_rng(0).normal(size=(200, 4))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> vae = VAE(n_components=3, hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X)
    >>> fig = plot_latent_space(vae, X, y)
    >>> fig.axes[0].get_xlabel()
    'PC 1 of the posterior means (3 dims)'
    """
    fitted = _Fitted(model)
    Z = fitted.encode(X)
    k = fitted.n_components
    if dims is not None:
        dims = tuple(int(d) for d in dims)
        if len(dims) != 2 or not all(0 <= d < k for d in dims):
            raise ValueError(f"dims must be two latent dimensions in [0, {k}); got {dims!r}.")
        xy = Z[:, list(dims)]
        labels = [f"z{d + 1}" for d in dims]
    elif k == 1:
        jitter = np.random.RandomState(0).uniform(-1, 1, size=len(Z))
        xy = np.column_stack([Z[:, 0], jitter])
        labels = ["z1", "jitter (the latent space is 1-D)"]
    elif k == 2:
        xy, labels = Z, ["z1", "z2"]
    else:
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2).fit_transform(Z)
        labels = [f"PC {i} of the posterior means ({k} dims)" for i in (1, 2)]

    fig = _new_figure(figsize)
    ax = fig.subplots()
    style = dict(s=10, alpha=0.75, linewidths=0)
    if y is None:
        ax.scatter(xy[:, 0], xy[:, 1], color="C0", **style)
    else:
        y = np.asarray(y)
        if y.shape != (len(xy),):
            raise ValueError(f"y must have shape ({len(xy)},), one label per row of X; got {y.shape}.")
        classes = np.unique(y)
        if classes.size <= max_classes and (y.dtype.kind in "biuOSU" or np.all(classes == np.round(classes))):
            import matplotlib

            cmap = matplotlib.colormaps["tab10" if classes.size <= 10 else "tab20"]
            for i, c in enumerate(classes):
                mask = y == c
                ax.scatter(xy[mask, 0], xy[mask, 1], color=cmap(i % cmap.N), label=str(c), **style)
            ax.legend(title="label", loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2, frameon=False)
        else:
            points = ax.scatter(xy[:, 0], xy[:, 1], c=y.astype(np.float64), cmap="viridis", **style)
            fig.colorbar(points, ax=ax, label="y")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title("Latent space: posterior means E[z | x]", fontsize=10)
    ax.grid(alpha=0.3)
    return fig


def plot_reconstructions(model, X, *, n=None, image_shape=None, n_cols=None, figsize=None):
    """The first ``n`` rows of X beside their reconstructions.

    Parameters
    ----------
    model : VAE or Pipeline
        A fitted model.
    X : array-like of shape (n_samples, n_features)
        Data; its first ``n`` rows are shown.
    n : int, default=None
        Number of rows; None is 16 images, or up to 500 rows of tabular data.
    image_shape : tuple of two int, False or None, default=None
        (height, width) of one image; False for tabular data; see the
        module's notes.
    n_cols : int, default=None
        Images per row of each grid; None makes the grids about square.
    figsize : tuple of float, default=None
        Figure size in inches; None is (8.0, 4.4) for images and sized to the
        panels for tabular data.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Images: two grids with the same layout, the originals on the left and
        on the right the decoder means at the posterior means,
        ``model.inverse_transform(model.transform(X))``. Tabular data: a
        panel per feature plotting each row's reconstruction against its
        value, in the data's units, with the diagonal (a perfect
        reconstruction) and R^2.

    Examples
    --------
    >>> import numpy as np
    >>> from pyvae import VAE
    >>> from pyvae.plot import plot_reconstructions
    >>> X = np.random.default_rng(0).random(size=(100, 16))
    >>> vae = VAE(hidden_layer_sizes=(8,), likelihood="bernoulli", max_iter=5, random_state=0).fit(X)
    >>> fig = plot_reconstructions(vae, X, n=8, image_shape=(4, 4))
    >>> [ax.get_title() for ax in fig.axes]
    ['originals', 'reconstructions']
    >>> fig = plot_reconstructions(vae, X, image_shape=False)  # one panel per feature
    >>> [ax.get_title() for ax in fig.axes][:3]
    ['x0', 'x1', 'x2']
    """
    fitted = _Fitted(model)
    shape = _resolve_image_shape(fitted, image_shape)
    n = (16 if shape is not None else 500) if n is None else int(n)
    X, originals = _first_rows(X, n)
    recon = fitted.decode(fitted.encode(X))
    if shape is None:
        return _tabular_reconstructions(fitted, originals, recon, figsize)
    n_cols = int(n_cols) if n_cols else math.ceil(math.sqrt(len(originals)))
    vrange = _value_range(fitted, originals)
    fig = _new_figure((8.0, 4.4) if figsize is None else figsize)
    left, right = fig.subplots(1, 2)
    _show_images(left, originals, shape, n_cols, vrange, "originals")
    mappable = _show_images(right, recon, shape, n_cols, vrange, "reconstructions")
    if not fitted.unit_interval():  # grey levels in the data's units: say which
        fig.colorbar(mappable, ax=[left, right], shrink=0.8, label="value")
    return fig


def _tabular_reconstructions(fitted, originals, recon, figsize):
    grid = _FeaturePanels(fitted, figsize, f"Reconstructions of {len(originals)} rows: decoder mean at E[z | x] "
                                           "against the data (on the dashed diagonal: exact)")
    for j, ax in grid.panels:
        x, r = originals[:, j], recon[:, j]
        ax.scatter(x, r, s=8, alpha=0.6, linewidths=0, color="C0")
        finite = np.isfinite(x) & np.isfinite(r)
        if finite.any():
            lo = float(min(x[finite].min(), r[finite].min()))
            hi = float(max(x[finite].max(), r[finite].max()))
            ax.plot([lo, hi], [lo, hi], "--", color="0.4", linewidth=0.8)
            ss = float(np.sum((x[finite] - x[finite].mean()) ** 2))
            if ss > 0:
                r2 = 1.0 - float(np.sum((x[finite] - r[finite]) ** 2)) / ss
                ax.text(0.04, 0.96, f"R\u00b2 {r2:.2f}", transform=ax.transAxes, fontsize=7, va="top")
    grid.label("data", "reconstruction")
    return grid.fig


def plot_samples(model, *, n=None, image_shape=None, n_cols=None, kind=None, X=None, random_state=0,
                 figsize=None):
    """Draws from the model's prior, decoded: a grid of images, or per-feature histograms.

    Parameters
    ----------
    model : VAE or Pipeline
        A fitted model.
    n : int, default=None
        Number of draws; None is 16 images, or 1,000 rows of tabular data.
    image_shape : tuple of two int, False or None, default=None
        (height, width) of one image; False for tabular data; see the
        module's notes.
    n_cols : int, default=None
        Images per row; None makes the grid about square.
    kind : {"mean", "sample"}, default=None
        ``"mean"`` shows the decoder means E[x | z] at z ~ N(0, I)
        (``model.inverse_transform`` of standard normal draws), what one
        usually wants to see of images; ``"sample"`` shows x ~ p(x | z) from
        ``model.sample`` (0/1 pixels for the Bernoulli likelihood), whose
        spread is comparable with the data's. None: ``"mean"`` for images,
        ``"sample"`` for tabular data.
    X : array-like of shape (n_samples, n_features), default=None
        Tabular data only: data to draw beside the model's, per feature.
    random_state : int, RandomState instance or None, default=0
        Seed of the draws.
    figsize : tuple of float, default=None
        Figure size in inches; None is (5.0, 5.0) for images and sized to the
        panels for tabular data.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Images: one grid of ``n`` images. Tabular data: a panel per feature
        with the histogram of the draws (and of ``X``), in the data's units.

    Examples
    --------
    >>> import numpy as np
    >>> from pyvae import VAE
    >>> from pyvae.plot import plot_samples
    >>> X = np.random.default_rng(0).random(size=(100, 16))
    >>> vae = VAE(hidden_layer_sizes=(8,), likelihood="bernoulli", max_iter=5, random_state=0).fit(X)
    >>> fig = plot_samples(vae, n=9)
    >>> fig.axes[0].get_images()[0].get_array().shape  # 3 x 3 images of 4 x 4 pixels, 1-pixel gaps
    (16, 16)
    """
    from sklearn.utils import check_random_state

    fitted = _Fitted(model)
    shape = _resolve_image_shape(fitted, image_shape)
    if kind is None:
        kind = "mean" if shape is not None else "sample"
    if kind not in ("mean", "sample"):
        raise ValueError(f"kind must be 'mean' or 'sample'; got {kind!r}.")
    if X is not None and shape is not None:
        raise ValueError("X is drawn beside the samples for tabular data only; pass image_shape=False.")
    n = (16 if shape is not None else 1000) if n is None else int(n)
    if kind == "mean":
        z = check_random_state(random_state).standard_normal((n, fitted.n_components))
        rows = fitted.decode(z)
        what = "decoder means E[x | z], z ~ N(0, I)"
    else:
        rows = fitted.sample(n, random_state)
        what = "x ~ p(x | z), z ~ N(0, I)"
    if shape is None:
        return _tabular_samples(fitted, rows, what, None if X is None else _first_rows(X, len(X))[1], figsize)
    n_cols = int(n_cols) if n_cols else math.ceil(math.sqrt(n))
    fig = _new_figure((5.0, 5.0) if figsize is None else figsize)
    ax = fig.subplots()
    mappable = _show_images(ax, rows, shape, n_cols, _value_range(fitted, rows), f"Samples: {what}")
    if not fitted.unit_interval():
        fig.colorbar(mappable, ax=ax, shrink=0.8, label="value")
    return fig


def _tabular_samples(fitted, rows, what, data, figsize):
    title = f"{len(rows)} samples: {what}" + (f", beside {len(data)} rows of data" if data is not None else "")
    grid = _FeaturePanels(fitted, figsize, title)
    for j, ax in grid.panels:
        values = [rows[:, j]] + ([data[:, j]] if data is not None else [])
        finite = np.concatenate([v[np.isfinite(v)] for v in values])
        if finite.size == 0:
            continue
        bins = np.histogram_bin_edges(finite, bins=25)
        ax.hist(rows[:, j][np.isfinite(rows[:, j])], bins=bins, density=True, color="C0", alpha=0.45,
                label="model")
        if data is not None:
            ax.hist(data[:, j][np.isfinite(data[:, j])], bins=bins, density=True, histtype="step", color="k",
                    linewidth=1.2, label="data")
        ax.set_yticks([])
    grid.label("value", "density")
    grid.legend()
    return grid.fig


def plot_latent_traversal(model, *, dims=None, n_steps=9, span=3.0, center=None, image_shape=None,
                          figsize=None):
    """Decode lines through latent space, one latent dimension at a time.

    Line ``i`` holds the decoder means along ``center + t * e_d`` for latent
    dimension ``d = dims[i]`` (drawn as z1, z2, ...), with ``t`` evenly spaced
    in ``[-span, span]``. An inactive dimension (its posterior mean hardly
    varies over the training rows, ``latent_variance_[d] <= 1e-2``: the
    decoder ignores it) is labelled "(inactive)", and drawn dotted in the
    tabular form.

    Parameters
    ----------
    model : VAE or Pipeline
        A fitted model.
    dims : sequence of int, default=None
        Latent dimensions to traverse (0-based); None takes the first (up to) 8.
    n_steps : int, default=9
        Points per line.
    span : float, default=3.0
        Half-length of each line, in prior standard deviations.
    center : array-like of shape (n_components,), default=None
        Centre of the lines; None is the prior mean 0. Pass e.g.
        ``model.transform(X[:1])[0]`` to vary one encoded row.
    image_shape : tuple of two int, False or None, default=None
        (height, width) of one image; False for tabular data; see the
        module's notes.
    figsize : tuple of float, default=None
        Figure size in inches; None sizes it to the grid.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Images: one grid, a row per latent dimension and a column per step.
        Tabular data: a panel per feature with one line per latent
        dimension, the feature's decoder mean (in the data's units) against
        ``t``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyvae import VAE
    >>> from pyvae.plot import plot_latent_traversal
    >>> X = np.random.default_rng(0).random(size=(100, 16))
    >>> vae = VAE(n_components=3, hidden_layer_sizes=(8,), likelihood="bernoulli", max_iter=5,
    ...           random_state=0).fit(X)
    >>> fig = plot_latent_traversal(vae, n_steps=5)
    >>> [tick.get_text() for tick in fig.axes[0].get_yticklabels()]  # uniform noise: nothing to encode
    ['z1 (inactive)', 'z2 (inactive)', 'z3 (inactive)']
    """
    fitted = _Fitted(model)
    shape = _resolve_image_shape(fitted, image_shape)
    k = fitted.n_components
    dims = list(range(min(k, 8))) if dims is None else [int(d) for d in dims]
    if not dims or not all(0 <= d < k for d in dims):
        raise ValueError(f"dims must be latent dimensions in [0, {k}); got {dims!r}.")
    n_steps = int(n_steps)
    if n_steps < 2:
        raise ValueError(f"n_steps must be at least 2; got {n_steps}.")
    origin = np.zeros(k) if center is None else np.asarray(center, dtype=np.float64).reshape(-1)
    if origin.shape != (k,):
        raise ValueError(f"center must have shape ({k},); got {np.shape(center)}.")
    steps = np.linspace(-float(span), float(span), n_steps)
    Z = np.repeat(origin[None, :], len(dims) * n_steps, axis=0)
    for i, d in enumerate(dims):
        Z[i * n_steps:(i + 1) * n_steps, d] += steps
    rows = fitted.decode(Z)  # (len(dims) * n_steps, n_features)
    labels = _traversal_labels(fitted, dims)
    where = "z = 0, the prior mean" if center is None else "the given center"
    if shape is None:
        return _tabular_traversal(fitted, rows.reshape(len(dims), n_steps, -1), labels, steps, where, figsize)

    if figsize is None:  # about 0.75 inch per image, and room for the title and labels
        figsize = (min(1.2 + 0.75 * n_steps, 12.0), min(1.6 + 0.75 * len(dims), 12.0))
    fig = _new_figure(figsize)
    ax = fig.subplots()
    mappable = _show_images(ax, rows, shape, n_steps, _value_range(fitted, rows), "")
    fig.suptitle("Latent traversal: decoder means as one latent coordinate moves", fontsize=10)
    h, w = shape
    ax.set_xticks([1 + c * (w + 1) + (w - 1) / 2 for c in range(n_steps)], [f"{t:g}" for t in steps])
    ax.set_yticks([1 + r * (h + 1) + (h - 1) / 2 for r in range(len(dims))], labels)
    ax.set_xlabel(f"value of the moving coordinate (the others stay at {where}), in prior standard deviations",
                  fontsize=8)
    ax.set_ylabel("latent coordinate that moves")
    ax.tick_params(length=0)
    if not fitted.unit_interval():
        fig.colorbar(mappable, ax=ax, shrink=0.8, label="value")
    return fig


def _traversal_labels(fitted, dims):
    """"z1", "z3 (inactive)", ...: a dimension is inactive when its posterior mean
    hardly varies over the training rows (VAE.latent_variance_, as active_units_
    counts): the decoder has learned to ignore it."""
    inactive = fitted.vae._inactive_dimensions()
    return [f"z{d + 1}" + (" (inactive)" if inactive[d] else "") for d in dims]


def _tabular_traversal(fitted, blocks, labels, steps, where, figsize):
    import matplotlib

    grid = _FeaturePanels(fitted, figsize, "Latent traversal: decoder mean of each feature as one latent "
                                           f"coordinate moves (the others stay at {where})")
    cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    for j, ax in grid.panels:
        for i, label in enumerate(labels):
            ax.plot(steps, blocks[i, :, j], color=cmap(i % cmap.N), linewidth=1.2, label=label,
                    linestyle=":" if label.endswith("(inactive)") else "-")
    grid.label("moving coordinate (prior s.d.)", "decoder mean")
    grid.legend(title="latent coordinate\nthat moves")
    return grid.fig
