"""The default step size on MNIST: test ELBO after 20 epochs of 784-400-20 (issue 24).

``VAE(n_components=20, hidden_layer_sizes=(400,), likelihood="bernoulli",
max_iter=20, random_state=seed)``, every other setting at its default unless
a candidate overrides it (``--learning-rates``), trained on the 60,000
MNIST training images (grey levels in [0, 1]) and scored on the 10,000 test
images (ELBO per image, nats, higher is better), with the number of dead
encoder units (hidden units that output 0 on every test image) beside it.

    PYVAE_MNIST_DIR=../shared/data/mnist env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        python benchmarks/mnist_defaults.py --out benchmarks/MNIST_DEFAULTS.md
"""

import argparse
import platform
import time
import warnings

import numpy as np

import pyvae
from pyvae import VAE
from pyvae._training import initial_learning_rate  # the step "auto" resolves to


def dead_units(vae, X):
    """Encoder hidden units that stay at 0 (ReLU) on every row of X."""
    hidden = vae.hidden_layer_sizes[0]
    # The first encoder layer leads the parameter buffer: W (784, hidden) row-major, then b (hidden).
    W = vae.params_[: 784 * hidden].reshape(784, hidden)
    b = vae.params_[784 * hidden: 785 * hidden]
    pre = X @ W + b
    return int((pre.max(axis=0) <= 0).sum())


def run(data, learning_rate, seed, threads):
    kwargs = {} if learning_rate is None else dict(learning_rate=learning_rate)
    vae = VAE(n_components=20, hidden_layer_sizes=(400,), likelihood="bernoulli", max_iter=20, random_state=seed,
              n_threads=threads, **kwargs)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: 20 epochs is the setting
        vae.fit(data.X_train)
    seconds = time.perf_counter() - started
    return dict(learning_rate=initial_learning_rate(vae, data.X_train.shape[1]),
                elbo=float(vae.score(data.X_test)), dead=dead_units(vae, data.X_test), seconds=seconds,
                epochs=int(vae.n_iter_))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learning-rates", nargs="+", default=["1e-2", "default", "1e-3"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    data = pyvae.load_mnist(download_if_missing=False)
    rows = []
    for lr in args.learning_rates:
        for seed in args.seeds:
            r = run(data, None if lr == "default" else float(lr), seed, args.threads)
            r.update(setting=lr, seed=seed)
            rows.append(r)
            print(f"{lr:>8s} seed {seed}: test ELBO {r['elbo']:.2f}  dead units {r['dead']}/400  "
                  f"{r['seconds']:.0f} s", flush=True)
    if args.out:
        lines = ["# The default step size on MNIST (784-400-20, Bernoulli, 20 epochs)", "",
                 f"`python benchmarks/mnist_defaults.py --out {args.out} --learning-rates "
                 f"{' '.join(args.learning_rates)} --seeds {' '.join(map(str, args.seeds))}` "
                 f"(protocol: the script's docstring), pyvae {pyvae.__version__}, {platform.machine()}, "
                 f"{args.threads} threads, {time.strftime('%Y-%m-%d')}.", "",
                 "| learning_rate | seed | test ELBO (nats/image) | dead encoder units (of 400) | fit s |",
                 "|---|---|---|---|---|"]
        for r in rows:
            name = f"default ({r['learning_rate']:.4g})" if r["setting"] == "default" else r["setting"]
            lines.append(f"| {name} | {r['seed']} | {r['elbo']:.2f} | {r['dead']} | {r['seconds']:.0f} |")
        lines += ["", "| learning_rate | mean test ELBO over the seeds | mean dead units |", "|---|---|---|"]
        for lr in args.learning_rates:
            mine = [r for r in rows if r["setting"] == lr]
            name = f"default ({mine[0]['learning_rate']:.4g})" if lr == "default" else lr
            lines.append(f"| {name} | {np.mean([r['elbo'] for r in mine]):.2f} | "
                         f"{np.mean([r['dead'] for r in mine]):.0f} |")
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
