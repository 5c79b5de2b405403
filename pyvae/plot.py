"""Pictures of a fitted :class:`pyvae.VAE`, each returned as a matplotlib Figure.

matplotlib is an optional dependency (``pip install matplotlib``, or
``pip install ".[plot]"`` in pyvae's repository); it is
imported when a function here is first called, not when this module is.

The figures are plain ``matplotlib.figure.Figure`` objects, not registered with
pyplot: save one with ``fig.savefig("name.png")``, or leave it as the value of
a notebook cell to display it (with the inline backend active, e.g. after
``import matplotlib.pyplot``). Nothing global (the pyplot figure list, the
backend) is touched, so they are safe to make in loops and in scripts without
a display.

Images: pass ``image_shape`` (e.g. ``(8, 8)`` for scikit-learn's digits). When
it is None and the number of features is a perfect square, square images are
assumed; otherwise each row is drawn as a one-pixel-high strip of its
features, so every function also works on tabular data.
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


def _new_figure(figsize):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "pyvae.plot needs matplotlib, an optional dependency: pip install matplotlib "
            "(or pip install \".[plot]\" in pyvae's repository)."
        ) from exc
    return Figure(figsize=figsize, layout="constrained")


def _check_fitted(model):
    check_is_fitted(model, "params_")
    return model._fit_config


def _resolve_image_shape(model, image_shape):
    """(height, width) of one image, or None for rows drawn as strips."""
    n_features = model.n_features_in_
    if image_shape is None:
        side = math.isqrt(n_features)
        return (side, side) if side * side == n_features else None
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


def _value_range(config, values):
    if config["likelihood"] == "bernoulli":
        return 0.0, 1.0
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    return (low, high) if high > low else (low - 0.5, high + 0.5)


def _show_grid(ax, rows, image_shape, n_cols, vrange, title):
    """Draw rows (n, n_features) as a grid of images (or strips) on ax."""
    import matplotlib

    rows = np.asarray(rows, dtype=np.float64)
    if image_shape is None:  # tabular data: each row a strip, stacked
        images, n_cols, aspect = rows[:, None, :], 1, "auto"
    else:
        images, aspect = rows.reshape(-1, *image_shape), "equal"
    cmap = matplotlib.colormaps[_IMAGE_CMAP].with_extremes(bad=_GAP_COLOR)
    mappable = ax.imshow(_mosaic(images, n_cols), cmap=cmap, vmin=vrange[0], vmax=vrange[1],
                         interpolation="nearest", aspect=aspect)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    return mappable


def _first_rows(X, n):
    X = X.iloc[:n] if hasattr(X, "iloc") else X[:n]
    return X, np.asarray(X, dtype=np.float64)


def plot_loss_curves(model, *, figsize=(6.4, 4.0)):
    """Training and validation ELBO per epoch.

    Parameters
    ----------
    model : VAE
        A fitted model.
    figsize : tuple of float, default=(6.4, 4.0)
        Figure size in inches.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes: the training ELBO per row (``-loss_curve_``, averaged over
        each epoch's minibatches while training), and ``validation_scores_``
        (the held-out ELBO at the end of each epoch; ``early_stopping`` only)
        with the best epoch marked.

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
    _check_fitted(model)
    fig = _new_figure(figsize)
    ax = fig.subplots()
    train = -np.asarray(model.loss_curve_, dtype=np.float64)
    epochs = np.arange(1, train.size + 1)
    ax.plot(epochs, train, label="training", color="C0")
    shown = [train]
    if len(model.validation_scores_):
        val = np.asarray(model.validation_scores_, dtype=np.float64)
        ax.plot(np.arange(1, val.size + 1), val, label="validation", color="C1")
        best = int(np.argmax(val))
        ax.plot([best + 1], [val[best]], "o", color="C1", label=f"best (epoch {best + 1})")
        shown.append(val)
    # The first epochs can sit far below the rest; keep the scale on the later ones.
    values = np.concatenate(shown)
    values = values[np.isfinite(values)]
    if values.size > 4:
        tail = np.concatenate([s[len(s) // 10:] for s in shown])
        low, high = float(np.min(tail)), float(np.max(values))
        margin = 0.05 * (high - low) if high > low else 1.0
        ax.set_ylim(low - margin, high + margin)
    ax.set_xlabel("epoch")
    ax.set_ylabel("ELBO per row (nats, higher is better)")
    ax.set_title(f"Training: {model.n_iter_} epochs", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def plot_latent_space(model, X, y=None, *, dims=None, max_classes=20, figsize=(6.0, 5.0)):
    """The posterior means of X in two dimensions, coloured by label.

    Parameters
    ----------
    model : VAE
        A fitted model.
    X : array-like of shape (n_samples, n_features)
        Data to encode (``model.transform(X)``, the posterior means).
    y : array-like of shape (n_samples,), default=None
        Labels for the colours: at most ``max_classes`` distinct values get one
        colour each and a legend; more (or real-valued ones) get a colour bar.
    dims : tuple of two int, default=None
        Latent dimensions to show. None: both with ``n_components == 2``, the
        only one (against a jitter) with 1, and the first two principal
        components of the posterior means (a PCA of ``model.transform(X)``)
        with more than 2; the axis labels say which.
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
    config = _check_fitted(model)
    Z = np.asarray(model.transform(X), dtype=np.float64)
    k = config["n_components"]
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


def plot_reconstructions(model, X, *, n=16, image_shape=None, n_cols=None, figsize=(8.0, 4.4)):
    """The first ``n`` rows of X beside their reconstructions.

    Parameters
    ----------
    model : VAE
        A fitted model.
    X : array-like of shape (n_samples, n_features)
        Data; its first ``n`` rows are shown.
    n : int, default=16
        Number of rows.
    image_shape : tuple of two int, default=None
        (height, width) of one image; see the module's notes.
    n_cols : int, default=None
        Images per row of each grid; None makes the grids about square.
    figsize : tuple of float, default=(8.0, 4.4)
        Figure size in inches.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Two grids with the same layout: the originals on the left, and on the
        right the decoder means at the posterior means,
        ``model.inverse_transform(model.transform(X))``.

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
    """
    config = _check_fitted(model)
    shape = _resolve_image_shape(model, image_shape)
    X, originals = _first_rows(X, int(n))
    recon = np.asarray(model.inverse_transform(model.transform(X)), dtype=np.float64)
    n_cols = int(n_cols) if n_cols else math.ceil(math.sqrt(len(originals)))
    vrange = _value_range(config, originals)
    fig = _new_figure(figsize)
    left, right = fig.subplots(1, 2)
    _show_grid(left, originals, shape, n_cols, vrange, "originals")
    _show_grid(right, recon, shape, n_cols, vrange, "reconstructions")
    return fig


def plot_samples(model, *, n=16, image_shape=None, n_cols=None, kind="mean", random_state=0, figsize=(5.0, 5.0)):
    """A grid of draws from the model's prior, decoded.

    Parameters
    ----------
    model : VAE
        A fitted model.
    n : int, default=16
        Number of draws.
    image_shape : tuple of two int, default=None
        (height, width) of one image; see the module's notes.
    n_cols : int, default=None
        Images per row; None makes the grid about square.
    kind : {"mean", "sample"}, default="mean"
        ``"mean"`` shows the decoder means E[x | z] at z ~ N(0, I)
        (``model.inverse_transform`` of standard normal draws), which is what
        one usually wants to see; ``"sample"`` shows x ~ p(x | z) from
        ``model.sample`` (0/1 pixels for the Bernoulli likelihood).
    random_state : int, RandomState instance or None, default=0
        Seed of the draws.
    figsize : tuple of float, default=(5.0, 5.0)
        Figure size in inches.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One grid of ``n`` images.

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

    config = _check_fitted(model)
    shape = _resolve_image_shape(model, image_shape)
    n = int(n)
    if kind == "mean":
        z = check_random_state(random_state).standard_normal((n, config["n_components"]))
        rows = model.inverse_transform(z)
        title = "Samples: decoder means E[x | z], z ~ N(0, I)"
    elif kind == "sample":
        rows = model.sample(n, random_state=random_state)
        title = "Samples: x ~ p(x | z), z ~ N(0, I)"
    else:
        raise ValueError(f"kind must be 'mean' or 'sample'; got {kind!r}.")
    rows = np.asarray(rows, dtype=np.float64)
    n_cols = int(n_cols) if n_cols else math.ceil(math.sqrt(n))
    fig = _new_figure(figsize)
    _show_grid(fig.subplots(), rows, shape, n_cols, _value_range(config, rows), title)
    return fig


def plot_latent_traversal(model, *, dims=None, n_steps=9, span=3.0, z0=None, image_shape=None, figsize=None):
    """Decode lines through latent space, one latent dimension at a time.

    Row ``i`` shows the decoder means along ``z0 + t * e_d`` for latent
    dimension ``d = dims[i]``, with ``t`` evenly spaced in ``[-span, span]``.

    Parameters
    ----------
    model : VAE
        A fitted model.
    dims : sequence of int, default=None
        Latent dimensions to traverse; None takes the first (up to) 8.
    n_steps : int, default=9
        Points per line.
    span : float, default=3.0
        Half-length of each line, in prior standard deviations.
    z0 : array-like of shape (n_components,), default=None
        Centre of the lines; None is the prior mean 0. Pass e.g.
        ``model.transform(X[:1])[0]`` to vary one encoded row.
    image_shape : tuple of two int, default=None
        (height, width) of one image; see the module's notes. For strips
        (tabular data), each dimension's line is a block of ``n_steps`` strips.
    figsize : tuple of float, default=None
        Figure size in inches; None sizes it to the grid.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One grid: a row per latent dimension, a column per step.

    Examples
    --------
    >>> import numpy as np
    >>> from pyvae import VAE
    >>> from pyvae.plot import plot_latent_traversal
    >>> X = np.random.default_rng(0).random(size=(100, 16))
    >>> vae = VAE(n_components=3, hidden_layer_sizes=(8,), likelihood="bernoulli", max_iter=5,
    ...           random_state=0).fit(X)
    >>> fig = plot_latent_traversal(vae, n_steps=5)
    >>> [tick.get_text() for tick in fig.axes[0].get_yticklabels()]
    ['z1', 'z2', 'z3']
    """
    config = _check_fitted(model)
    shape = _resolve_image_shape(model, image_shape)
    k = config["n_components"]
    dims = list(range(min(k, 8))) if dims is None else [int(d) for d in dims]
    if not dims or not all(0 <= d < k for d in dims):
        raise ValueError(f"dims must be latent dimensions in [0, {k}); got {dims!r}.")
    n_steps = int(n_steps)
    if n_steps < 2:
        raise ValueError(f"n_steps must be at least 2; got {n_steps}.")
    center = np.zeros(k) if z0 is None else np.asarray(z0, dtype=np.float64).reshape(-1)
    if center.shape != (k,):
        raise ValueError(f"z0 must have shape ({k},); got {np.shape(z0)}.")
    steps = np.linspace(-float(span), float(span), n_steps)
    Z = np.repeat(center[None, :], len(dims) * n_steps, axis=0)
    for i, d in enumerate(dims):
        Z[i * n_steps:(i + 1) * n_steps, d] += steps
    rows = np.asarray(model.inverse_transform(Z), dtype=np.float64)  # (len(dims) * n_steps, n_features)
    vrange = _value_range(config, rows)

    if figsize is None:
        if shape is not None:  # about 0.75 inch per image
            figsize = (min(1.0 + 0.75 * n_steps, 12.0), min(1.2 + 0.75 * len(dims), 12.0))
        else:
            figsize = (8.0, min(1.5 + 0.9 * len(dims), 12.0))
    fig = _new_figure(figsize)
    ax = fig.subplots()
    if shape is not None:
        _show_grid(ax, rows, shape, n_steps, vrange, "Latent traversal: decoder means along each latent axis")
        h, w = shape
        ax.set_xticks([1 + c * (w + 1) + (w - 1) / 2 for c in range(n_steps)], [f"{t:g}" for t in steps])
        ax.set_yticks([1 + r * (h + 1) + (h - 1) / 2 for r in range(len(dims))], [f"z{d + 1}" for d in dims])
    else:
        blocks = rows.reshape(len(dims), n_steps, -1)  # each dimension's line as one block of strips
        import matplotlib

        cmap = matplotlib.colormaps[_IMAGE_CMAP].with_extremes(bad=_GAP_COLOR)
        ax.imshow(_mosaic(blocks, 1), cmap=cmap, vmin=vrange[0], vmax=vrange[1], interpolation="nearest",
                  aspect="auto")
        ax.set_title("Latent traversal: decoder means along each latent axis", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([1 + r * (n_steps + 1) + (n_steps - 1) / 2 for r in range(len(dims))],
                      [f"z{d + 1}" for d in dims])
    origin = "z0 = 0" if z0 is None else "z0"
    if shape is not None:
        ax.set_xlabel(f"step along the axis from {origin}, in prior standard deviations")
    else:
        ax.set_xlabel(f"features; each block: {n_steps} steps from {-span:g} to {span:g} along the axis "
                      f"from {origin}, top to bottom")
    ax.tick_params(length=0)
    return fig
