"""The default VAE on scikit-learn's bundled data sets, by the evaluation suite's density protocol.

These sets are examples, not evidence: pyvae's first defaults were chosen on
them (the held-out evidence is benchmarks/EVALUATION.md). Each set in its own
units (diabetes unscaled: ``load_diabetes(scaled=False)``; scikit-learn's
default copy is already centered and scaled), scored by
benchmarks/evaluate.py's ``density_split`` on its seeded 75/25 splits:
converged FactorAnalysis and a GaussianMixture (1-5 components by BIC), both
on the split standardized by its training rows with the log-Jacobian, and
``VAE(n_components=k)`` at its defaults, scored with the refined
importance-weighted bound; k = min(5, d // 2). The VAE is equivariant to a
column's scale and shift (evaluate.py's units check), so a standardized copy
would be the same comparison and is not run. Plus linear-Gaussian data where
factor analysis is the true model: a default fit against FactorAnalysis's
maximum likelihood.

    python benchmarks/tabular_quality.py --out benchmarks/TABULAR.md
"""

import argparse
import platform
import time

import evaluate  # one thread per process before NumPy loads; pyvae on the path
import numpy as np
from evaluate import SPLITS, density_split, fit_fa, latent_dimensions, mean_sd, standardizer
from sklearn import datasets

import pyvae
from pyvae import VAE

DATA_SETS = {
    "wine": lambda: datasets.load_wine().data,
    "diabetes": lambda: datasets.load_diabetes(scaled=False).data,
    "breast_cancer": lambda: datasets.load_breast_cancer().data,
    "iris": lambda: datasets.load_iris().data,
    "digits": lambda: datasets.load_digits().data,
    # exercise and physiology together: 6 features, 20 rows (5 test rows a split)
    "linnerud": lambda: np.hstack([datasets.load_linnerud().data, datasets.load_linnerud().target]),
}
# A gap this large (nats per row) comes from a peer's density collapsing on some test rows (see write_markdown).
DEGENERATE_GAP = 100


def tabular_rows(names, splits):
    rows = []
    for name in names:
        X = np.asarray(DATA_SETS[name](), dtype=np.float64)
        runs = [density_split(X, seed) for seed in splits]
        row = dict(data=name, n=len(X), d=X.shape[1], k=latent_dimensions(X.shape[1]))
        for model in ("fa", "gmm", "vae"):
            row[model] = mean_sd([r[model]["score"] for r in runs])
        for peer in ("fa", "gmm"):
            row["vae_minus_" + peer] = mean_sd([r["vae"]["score"] - r[peer]["score"] for r in runs])
        row["components"] = [r["gmm"]["components"] for r in runs]
        row["epochs"] = int(np.mean([r["vae"]["epochs"] for r in runs]))
        row["seconds"] = float(np.mean([r["vae"]["seconds"] for r in runs]))
        rows.append(row)
        print(f"{name:14s} FA {row['fa'][0]:10.3f}  GMM {row['gmm'][0]:10.3f}  VAE {row['vae'][0]:10.3f}  "
              f"(VAE - FA {row['vae_minus_fa'][0]:+.3f}, VAE - GMM {row['vae_minus_gmm'][0]:+.3f})", flush=True)
    return rows


def linear_gaussian_row(seed=0):
    """x = W z + b + noise, D = 6, k = 2, 4,000 training rows: FactorAnalysis is the true model."""
    rng = np.random.default_rng(seed)
    D, k, n_train, n_test = 6, 2, 4000, 2000
    W = rng.normal(size=(D, k))
    psi = rng.uniform(0.1, 1.0, size=D)
    X = rng.normal(size=(n_train + n_test, k)) @ W.T + rng.normal(size=D) + rng.normal(size=(n_train + n_test, D)) * np.sqrt(psi)
    X_train, X_test = X[:n_train], X[n_train:]
    mean, scale = standardizer(X_train)
    fa = fit_fa((X_train - mean) / scale, k).score((X_test - mean) / scale) - np.log(scale).sum()
    started = time.perf_counter()
    vae = VAE(n_components=k, random_state=seed, n_threads=1).fit(X_train)
    seconds = time.perf_counter() - started
    score = vae.score_samples(X_test, n_importance=1000, refine_steps=evaluate.SCORE_REFINE_STEPS).mean()
    print(f"linear-Gaussian FA {fa:.4f}  VAE {score:.4f}  ({score - fa:+.4f}) epochs {vae.n_iter_}", flush=True)
    return dict(fa=fa, vae=score, epochs=vae.n_iter_, max_iter=vae.max_iter, seconds=seconds)


def write_markdown(path, rows, linear, command):
    lines = [
        "# The default VAE on scikit-learn's bundled data sets (examples)",
        "",
        f"`{command}` on {platform.machine()}, pyvae {pyvae.__version__}, {time.strftime('%Y-%m-%d')}; one "
        "thread. pyvae's first defaults were chosen on these sets, so they are examples, not evidence: the "
        "held-out evidence is benchmarks/EVALUATION.md, whose density protocol this table follows (the "
        "script's docstring): held-out log-likelihood in nats per row of the data in its own units (diabetes "
        f"unscaled), mean ± standard deviation over the splits {list(SPLITS)}; a gap is taken per split, "
        "then averaged (positive: the VAE is better). FactorAnalysis converged (`tol=1e-8`), GaussianMixture "
        "full covariance with 1-5 components by BIC (chosen per split), `VAE(n_components=k)` at its defaults "
        f"scored with the importance-weighted bound (K = {evaluate.N_IMPORTANCE}, q refined by "
        f"{evaluate.SCORE_REFINE_STEPS} steps; a lower bound on log p(x)).",
        "",
        "| data | rows x cols | k | FactorAnalysis | GaussianMixture (components) | VAE | VAE - FA | VAE - GMM "
        "| VAE fit s | VAE epochs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['data']} | {r['n']} x {r['d']} | {r['k']} | {evaluate.fmt(r['fa'])} | "
                     f"{evaluate.fmt(r['gmm'])} ({'/'.join(map(str, r['components']))}) | {evaluate.fmt(r['vae'])} | "
                     f"{evaluate.fmt(r['vae_minus_fa'], sign='+')} | {evaluate.fmt(r['vae_minus_gmm'], sign='+')} | "
                     f"{r['seconds']:.1f} | {r['epochs']} |")
    for peer, label in (("fa", "converged FactorAnalysis"), ("gmm", "the GaussianMixture")):
        gaps = [r["vae_minus_" + peer][0] for r in rows]
        ahead = ", ".join(r["data"] for r, g in zip(rows, gaps) if g > 0) or "none"
        behind = ", ".join(f"{r['data']} ({g:+.3f})" for r, g in zip(rows, gaps) if g <= 0) or "none"
        degenerate = [r["data"] for r, g in zip(rows, gaps) if abs(g) > DEGENERATE_GAP]
        lines += ["", f"Against {label}: the VAE ahead on {sum(g > 0 for g in gaps)} of {len(rows)} ({ahead}); "
                  f"behind on {behind}."
                  + (f" The gaps over {DEGENERATE_GAP} nats/row ({', '.join(degenerate)}) measure a degenerate "
                     "peer, not the VAE (below)." if degenerate else "")]
    lines += ["", "Degenerate peers: digits has pixels that are constant (blank) in a training split and inked in "
              "some test rows, where a Gaussian peer's fitted variance is near 0 and such a row's log-density "
              "far below -1e5; linnerud has 15 training rows a split, on which BIC "
              "picks a 5-component full-covariance mixture that puts some test rows at a density near 0."]
    lines += [
        "",
        "## Linear-Gaussian data",
        "",
        "x = W z + b + noise with D = 6, k = 2, diagonal noise, 4,000 training and 2,000 test rows: "
        "factor analysis is the true model and converged FactorAnalysis its maximum-likelihood fit. A default "
        "`VAE(n_components=2)` (nonlinear, 100 hidden units), scored with K = 1000:",
        "",
        "| FactorAnalysis | VAE (defaults) | VAE - FA | epochs (max_iter) | seconds |",
        "|---|---|---|---|---|",
        f"| {linear['fa']:.4f} | {linear['vae']:.4f} | {linear['vae'] - linear['fa']:+.4f} | "
        f"{linear['epochs']} ({linear['max_iter']}) | {linear['seconds']:.1f} |",
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=list(DATA_SETS), choices=list(DATA_SETS))
    parser.add_argument("--out", default=None, help="write the Markdown table here")
    args = parser.parse_args()
    rows = tabular_rows(args.data, SPLITS)
    linear = linear_gaussian_row()
    if args.out:
        write_markdown(args.out, rows, linear, f"python benchmarks/tabular_quality.py --out {args.out}")


if __name__ == "__main__":
    main()
