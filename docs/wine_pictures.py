"""The README's tabular picture: pyvae.plot on scikit-learn's wine data, in its own units.

    python docs/wine_pictures.py               # writes docs/wine_reconstructions.png
    python docs/wine_pictures.py --out DIR     # also the other four pictures, into DIR

The model is the README's tabular example: a StandardScaler and a VAE in one
Pipeline, so the pictures show each feature by its name and in its units.
"""

import argparse
import os
import warnings

from sklearn.datasets import load_wine
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pyvae import VAE, plot

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", metavar="DIR", help="also write all five pictures into DIR")
    args = parser.parse_args()

    wine = load_wine(as_frame=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = make_pipeline(StandardScaler(), VAE(n_components=2, early_stopping=True, max_iter=500,
                                                    random_state=0)).fit(wine.data)
    for w in caught:
        print(f"warning while fitting: {w.category.__name__}: {w.message}")
    vae = model[-1]
    print(f"wine: {wine.data.shape[0]} rows x {wine.data.shape[1]} features; {vae.n_iter_} epochs; "
          f"validation ELBO {vae.best_validation_score_:.2f} nats per row (standardized units)")

    path = os.path.join(HERE, "wine_reconstructions.png")
    plot.plot_reconstructions(model, wine.data).savefig(path, dpi=80)
    print(f"wrote {path}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        pictures = {
            "loss_curves.png": plot.plot_loss_curves(model),
            "latent_space.png": plot.plot_latent_space(model, wine.data, wine.target),
            "reconstructions.png": plot.plot_reconstructions(model, wine.data),
            "samples.png": plot.plot_samples(model, X=wine.data),
            "latent_traversal.png": plot.plot_latent_traversal(model),
        }
        for name, fig in pictures.items():
            fig.savefig(os.path.join(args.out, name), dpi=100)
        print(f"wrote {len(pictures)} pictures into {args.out}")


if __name__ == "__main__":
    main()
