"""The README's pictures, and the numbers that say whether they are current.

    python docs/readme_pictures.py             # writes docs/wine_reconstructions.png, docs/demo_samples.png
                                               # and docs/readme_pictures.json
    python docs/readme_pictures.py --out DIR   # also the wine model's other four pictures, into DIR

wine_reconstructions.png is the README's tabular example: a StandardScaler and
a VAE in one Pipeline, so the picture shows each feature by its name and in its
units. demo_samples.png is what ``pyvae demo --out report/`` writes as
samples.png, from the same code (pyvae/__main__.py) and the demo's defaults.

readme_pictures.json holds what each picture shows, as numbers: the R^2 printed
in each wine panel, and the mean grey level of each of the 36 drawn digits
(the picture prints no numbers), with the model's epochs and score and what
the numbers depend on besides the code (the BLAS kernel, the instruction set).
The script runs itself on the path every x86-64 CPU with AVX2 reproduces bit
for bit (PYVAE_ISA=avx2, OPENBLAS_CORETYPE=Haswell; see tests/trajectory.py),
so tests/test_docs.py, drawing the pictures again from the current code with
``--numbers``, compares exactly: when it fails, the committed pictures are
stale; run this script.
"""

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import warnings

import numpy as np
from sklearn.datasets import load_wine
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import pyvae
from pyvae import VAE, plot
from pyvae.__main__ import _demo_data, _demo_model, _report_figures, build_parser

HERE = os.path.dirname(os.path.abspath(__file__))
# The reproducible path the pictures are drawn on (tests/trajectory.py's "avx2-Haswell").
PINS = {"PYVAE_ISA": "avx2", "OPENBLAS_CORETYPE": "Haswell"}
NUMBERS = os.path.join(HERE, "readme_pictures.json")
DIGIT_SHAPE = (8, 8)


def environment():
    """What the pictures' numbers depend on besides the code: float rounding in the
    BLAS kernel and in the core's vectorized loops changes where training ends."""
    with contextlib.redirect_stdout(io.StringIO()):  # show_config prints as it returns
        config = pyvae.show_config()
    return {key: str(config.get(key)) for key in ("blas", "blas_kernel", "elementwise_isa", "build_type")}


def wine_reconstructions():
    """(figure, numbers) of the README's tabular example."""
    wine = load_wine(as_frame=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = make_pipeline(StandardScaler(), VAE(n_components=2, early_stopping=True, max_iter=500,
                                                    random_state=0)).fit(wine.data)
    for w in caught:
        print(f"warning while fitting the wine model: {w.category.__name__}: {w.message}")
    fig = plot.plot_reconstructions(model, wine.data)
    vae = model[-1]
    numbers = {"epochs": vae.n_iter_, "validation_elbo": round(vae.best_validation_score_, 4),
               "r2": panel_r2(fig)}
    return model, wine, fig, numbers


def panel_r2(fig):
    """{feature: R^2} as printed in the panels of a tabular reconstruction figure."""
    shown = {}
    for ax in fig.axes:
        for text in ax.texts:
            found = re.fullmatch("R\u00b2 (-?[0-9.]+)", text.get_text())
            if found:
                shown[ax.get_title()] = float(found.group(1))
    return shown


def demo_samples():
    """(figure, numbers) of the samples picture of ``pyvae demo``, at its defaults."""
    defaults = build_parser().parse_args([])
    X_train, X_test, y_train, y_test = _demo_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the demo stops at its epoch limit (ConvergenceWarning), as the CLI
        vae = _demo_model(defaults.epochs, defaults.n_components, defaults.seed).fit(X_train)
    fig = _report_figures(vae, X_test, y_test)["samples.png"]()
    numbers = {"epochs": vae.n_iter_, "held_out_elbo": round(vae.score(X_test), 4), "grey_levels": grey_levels(fig)}
    return fig, numbers


def grey_levels(fig):
    """Each image of an image grid drawn by pyvae.plot (one-pixel gaps), in drawing
    order, at a quarter of its resolution: the mean of each 2 x 2 block of pixels,
    row by row (mean grey levels alone hardly tell one digit from another)."""
    grid = np.ma.filled(fig.axes[0].get_images()[0].get_array().astype(np.float64), np.nan)
    h, w = DIGIT_SHAPE
    n_rows, n_cols = (grid.shape[0] - 1) // (h + 1), (grid.shape[1] - 1) // (w + 1)
    tiles = grid[1:, 1:].reshape(n_rows, h + 1, n_cols, w + 1)[:, :h, :, :w].transpose(0, 2, 1, 3)
    blocks = tiles.reshape(n_rows * n_cols, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    return [" ".join(f"{v:.3f}" for v in image.ravel()) for image in blocks if np.isfinite(image).all()]


def pinned():
    return all(os.environ.get(key) == value for key, value in PINS.items())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", metavar="DIR", help="also write the wine model's five pictures into DIR")
    parser.add_argument("--numbers", action="store_true", help="print the pictures' numbers as JSON; write nothing")
    args = parser.parse_args()
    if not pinned():  # again, on the reproducible path (the variables are read when pyvae and OpenBLAS load)
        done = subprocess.run([sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env={**os.environ, **PINS},
                              check=False)
        sys.exit(done.returncode)
    if args.numbers:
        json.dump({"environment": environment(), "wine_reconstructions.png": wine_reconstructions()[-1],
                   "demo_samples.png": demo_samples()[-1]}, sys.stdout)
        return

    model, wine, fig, wine_numbers = wine_reconstructions()
    print(f"wine: {wine.data.shape[0]} rows x {wine.data.shape[1]} features; {wine_numbers['epochs']} epochs; "
          f"R^2 {wine_numbers['r2']}")
    fig.savefig(os.path.join(HERE, "wine_reconstructions.png"), dpi=80)
    fig, demo_numbers = demo_samples()
    print(f"demo: {demo_numbers['epochs']} epochs; held-out ELBO {demo_numbers['held_out_elbo']:.2f} nats per digit")
    fig.savefig(os.path.join(HERE, "demo_samples.png"), dpi=100)
    record = {"made_by": "python docs/readme_pictures.py", "pyvae": pyvae.__version__,
              "environment": environment(),
              "wine_reconstructions.png": wine_numbers, "demo_samples.png": demo_numbers}
    with open(NUMBERS, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    print(f"wrote wine_reconstructions.png, demo_samples.png and readme_pictures.json into {HERE}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        pictures = {
            "loss_curves.png": plot.plot_loss_curves(model),
            "latent_space.png": plot.plot_latent_space(model, wine.data, wine.target),
            "reconstructions.png": plot.plot_reconstructions(model, wine.data),
            "samples.png": plot.plot_samples(model, X=wine.data),
            "latent_traversal.png": plot.plot_latent_traversal(model),
        }
        for name, picture in pictures.items():
            picture.savefig(os.path.join(args.out, name), dpi=100)
        print(f"wrote {len(pictures)} pictures into {args.out}")


if __name__ == "__main__":
    main()
