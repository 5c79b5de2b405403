"""Command line: ``python -m pyvae [demo|info]``.

With no command, runs the demo: a VAE on the digits data that scikit-learn
ships, with the held-out ELBO printed at the end.
"""

import argparse
import sys


def _demo(args):
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from . import VAE

    X = load_digits().data / 16.0
    X_train, X_test = train_test_split(X, test_size=0.2, random_state=0)
    vae = VAE(n_components=args.n_components, hidden_layer_sizes=(128,), likelihood="bernoulli",
              max_iter=args.epochs, random_state=args.seed, verbose=0 if args.quiet else 1)
    initial = VAE(n_components=args.n_components, hidden_layer_sizes=(128,), likelihood="bernoulli",
                  max_iter=1, learning_rate=1e-12, random_state=args.seed)
    print(f"Training a VAE on digits: {X_train.shape[0]} rows x {X_train.shape[1]} pixels, "
          f"{args.n_components} latent dimensions, {args.epochs} epochs")
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        before = initial.fit(X_train).score(X_test)
        vae.fit(X_train)
    after = vae.score(X_test)
    print(f"held-out ELBO per digit: {after:.2f} nats (untrained: {before:.2f}); "
          f"importance-weighted bound (K=100): {vae.score(X_test, n_importance=100):.2f} nats; "
          f"active latent units: {vae.active_units_}/{args.n_components}")
    return 0 if np.isfinite(after) else 1


def _info(args):
    from . import show_config

    show_config()
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="pyvae", description="Variational autoencoders with a C++ core.")
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser("demo", help="train on scikit-learn's digits and report the held-out ELBO")
    for p in (parser, demo):
        p.add_argument("--epochs", type=int, default=50, help="training epochs (default 50)")
        p.add_argument("--n-components", type=int, default=8, help="latent dimensions (default 8)")
        p.add_argument("--seed", type=int, default=0, help="random_state (default 0)")
        p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    commands.add_parser("info", help="print the build configuration")
    args = parser.parse_args(argv)
    try:
        return _info(args) if args.command == "info" else _demo(args)
    except Exception as exc:  # one clear line, no traceback
        print(f"pyvae: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
