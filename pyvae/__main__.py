"""Command line: ``pyvae [demo|info]`` (also ``python -m pyvae``).

``pyvae demo`` trains a VAE on the digits data that scikit-learn ships, shows
its progress, prints the held-out ELBO and, with ``--out DIR``, writes a
report of PNG pictures to DIR. ``pyvae info`` prints the build configuration
(``pyvae.show_config()``). With no command, ``pyvae`` runs the demo.

Exit status: 0 on success, 1 on a runtime error (one line on stderr, no
traceback), 2 on a usage error, 130 when interrupted.
"""

import argparse
import os
import sys

# The PNG files of the demo report, written in this order.
REPORT_FILES = ("loss_curves.png", "latent_space.png", "reconstructions.png", "samples.png",
                "latent_traversal.png")


class _Failure(Exception):
    """A runtime error whose message is already the one line the user should read."""


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _check_report_dir(out, force):
    """Fail before training if the report cannot (or must not) be written to ``out``."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise _Failure("--out needs matplotlib for the pictures: pip install matplotlib "
                       "(or pip install \".[plot]\" in pyvae's repository)") from None
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise _Failure(f"--out {out!r} exists and is not a directory")
        if os.listdir(out) and not force:
            raise _Failure(f"--out {out!r} exists and is not empty; pass --force to write the report into it")


def _report_figures(vae, X, y):
    """The demo report's pictures of ``vae`` and the held-out rows X, y: file name ->
    a function drawing it (docs/readme_pictures.py draws the README's from here too)."""
    from . import plot

    return {
        "loss_curves.png": lambda: plot.plot_loss_curves(vae),
        "latent_space.png": lambda: plot.plot_latent_space(vae, X, y),
        "reconstructions.png": lambda: plot.plot_reconstructions(vae, X, n=16, image_shape=(8, 8)),
        "samples.png": lambda: plot.plot_samples(vae, n=36, image_shape=(8, 8), random_state=0),
        "latent_traversal.png": lambda: plot.plot_latent_traversal(vae, image_shape=(8, 8)),
    }


def _write_report(vae, X, y, out):
    """Write the demo's pictures as PNG files into ``out``; return their paths."""
    os.makedirs(out, exist_ok=True)
    figures = _report_figures(vae, X, y)
    paths = []
    for name in REPORT_FILES:
        path = os.path.join(out, name)
        figures[name]().savefig(path, dpi=100)
        paths.append(path)
    return paths


def _demo_data():
    """The demo's digits: pixels in [0, 1] for the Bernoulli likelihood, split 80/20
    into X_train, X_test, y_train, y_test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.2, random_state=0)


def _demo_model(epochs, n_components, seed, verbose=0):
    """The demo's VAE, unfitted (docs/readme_pictures.py trains the same one)."""
    from . import VAE

    # A tenth of the training rows is held out to draw the validation curve; training
    # stops when it stops improving (or after `epochs`) and keeps the best epoch.
    return VAE(max_iter=epochs, early_stopping=True, n_iter_no_change=10, verbose=verbose,
               **_demo_settings(n_components, seed))


def _why_training_stopped(vae, epochs):
    """One line: converged (and when), or stopped at the epoch limit."""
    if vae.n_iter_ < epochs:
        return (f"training converged after {vae.n_iter_} epochs: the validation ELBO stopped improving "
                f"(best {vae.best_validation_score_:.2f} nats per digit, kept)")
    return (f"training stopped at the limit of {epochs} epochs before converging (validation ELBO still "
            f"improving); pass a larger --epochs to train on")


def _demo_settings(n_components, seed):
    return dict(n_components=n_components, hidden_layer_sizes=(128,), likelihood="bernoulli", random_state=seed)


def _demo(args):
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    from . import VAE

    if args.out is not None:
        _check_report_dir(args.out, args.force)
    X_train, X_test, y_train, y_test = _demo_data()
    vae = _demo_model(args.epochs, args.n_components, args.seed, verbose=0 if args.quiet else 1)
    untrained = VAE(max_iter=1, learning_rate=1e-12, **_demo_settings(args.n_components, args.seed))
    print(f"Training a VAE on scikit-learn's digits: {X_train.shape[0]} rows x {X_train.shape[1]} pixels, "
          f"{args.n_components} latent dimensions, up to {args.epochs} epochs", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        before = untrained.fit(X_train).score(X_test)
        vae.fit(X_train)
    after = vae.score(X_test)
    if not np.isfinite(after):
        raise _Failure(f"the held-out ELBO is not finite ({after}) after training")
    bound = vae.score(X_test, n_importance=100)
    print(f"held-out ELBO per digit: {after:.2f} nats (untrained: {before:.2f}); "
          f"importance-weighted bound (K=100): {bound:.2f} nats; "
          f"active latent units: {vae.active_units_}/{args.n_components}; epochs: {vae.n_iter_}")
    print(_why_training_stopped(vae, args.epochs))
    if args.out is not None:
        paths = _write_report(vae, X_test, y_test, args.out)
        print(f"report: {len(paths)} pictures in {args.out}: " + ", ".join(os.path.basename(p) for p in paths))
    return 0


def _info(args):
    from . import show_config

    show_config()
    return 0


def _add_demo_options(parser, defaults):
    # The options exist on the top-level parser too (no command = demo); on the
    # subcommand their defaults are suppressed so `pyvae --epochs 5 demo` keeps 5.
    d = (lambda value: value) if defaults else (lambda value: argparse.SUPPRESS)
    parser.add_argument("--out", metavar="DIR", default=d(None),
                        help="write the report (PNG pictures; needs matplotlib) to DIR")
    parser.add_argument("--force", action="store_true", default=d(False),
                        help="write the report even if DIR exists and is not empty")
    parser.add_argument("--epochs", type=_positive_int, default=d(1000), metavar="N",
                        help="most training epochs (default 1000; training stops earlier when it converges)")
    parser.add_argument("--n-components", type=_positive_int, default=d(8), metavar="K",
                        help="latent dimensions (default 8)")
    parser.add_argument("--seed", type=int, default=d(0), help="random_state (default 0)")
    parser.add_argument("--quiet", action="store_true", default=d(False), help="no progress bar")


def build_parser():
    """The argument parser of the ``pyvae`` command."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="pyvae",
        description="Variational autoencoders with a hand-derived C++ core and a scikit-learn API.",
        epilog="With no command, runs the demo. Exit status: 0 success, 1 runtime error, 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"pyvae {__version__}")
    _add_demo_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", metavar="{demo,info}")
    demo = commands.add_parser(
        "demo", help="train on scikit-learn's digits, print the held-out ELBO, write a report",
        description="Train a VAE on the digits data that scikit-learn ships, show its progress, print the "
                    "held-out ELBO and, with --out DIR, write PNG pictures of what it learned to DIR.",
    )
    _add_demo_options(demo, defaults=False)
    commands.add_parser("info", help="print the build configuration (pyvae.show_config())",
                        description="Print the version and build configuration: OpenMP and its thread "
                                    "count, the BLAS, the dtypes.")
    return parser


def _one_line(exc):
    return " ".join(str(exc).split())


def main(argv=None):
    """Run the ``pyvae`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)  # exits with status 2 on a usage error
    try:
        return _info(args) if args.command == "info" else _demo(args)
    except KeyboardInterrupt:
        print("pyvae: interrupted", file=sys.stderr)
        return 130
    except _Failure as exc:
        print(f"pyvae: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # one clear line, never a traceback
        print(f"pyvae: error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
