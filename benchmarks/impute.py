"""VAEImputer against scikit-learn's imputers on the real data sets shipped with scikit-learn.

Entries are hidden completely at random (MCAR) at several rates; every imputer
fills them from the rest of the same matrix (fit_transform), and the root-mean-
square error on the hidden entries is reported in standardized units (each
column's error divided by that column's standard deviation over the full data),
with the wall time of fit_transform. Every imputer runs with its default
settings; seeds drive the mask and the imputers' own randomness.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/impute.py --scalings standardized --output FILE

(benchmarks/IMPUTE.md holds that run, a raw-units run with `--scalings raw --seeds 0`, and notes)

`--vae-params '{"max_iter": 100}'` overrides VAEImputer's defaults (for tuning;
the committed table uses none), and `--cache FILE` keeps the peers' results
between runs.
"""

import argparse
import json
import os
import platform
import sys
import time
import warnings

import numpy as np
from sklearn import datasets
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pyvae import VAEImputer  # noqa: E402

DATASETS = {
    "breast_cancer": datasets.load_breast_cancer,
    "digits": datasets.load_digits,
    "wine": datasets.load_wine,
    "diabetes": lambda: datasets.load_diabetes(scaled=False),
    "iris": datasets.load_iris,
}
PEERS = ("mean", "knn", "iterative")


def make_imputer(name, seed, vae_params):
    if name == "mean":
        return SimpleImputer(strategy="mean")
    if name == "knn":
        return KNNImputer()
    if name == "iterative":
        return IterativeImputer(random_state=seed)
    return VAEImputer(random_state=seed, **vae_params)


def hide_entries(X, rate, seed):
    """X with a fraction `rate` of its entries set to NaN, completely at random."""
    hidden = np.random.default_rng(seed).random(X.shape) < rate
    X_missing = X.copy()
    X_missing[hidden] = np.nan
    return X_missing, hidden


def run_one(name, X, rate, seed, vae_params):
    X_missing, hidden = hide_entries(X, rate, seed)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # IterativeImputer's ConvergenceWarning
        X_filled = make_imputer(name, seed, vae_params).fit_transform(X_missing)
    elapsed = time.perf_counter() - started
    error = ((X_filled - X) / scale)[hidden]
    return float(np.sqrt(np.mean(error**2))), elapsed


def load(name, scaling):
    X = DATASETS[name]().data.astype(np.float64)
    if scaling == "standardized":
        X = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    return X


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--scalings", nargs="+", default=["standardized", "raw"])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.1, 0.2, 0.4])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--vae-params", default="{}", help="JSON overrides of VAEImputer's defaults")
    parser.add_argument("--cache", default=None, help="JSON file keeping the peers' results between runs")
    parser.add_argument("--output", default=None, help="write the Markdown report here")
    args = parser.parse_args()
    vae_params = json.loads(args.vae_params)

    cache = {}
    if args.cache and os.path.exists(args.cache):
        with open(args.cache) as f:
            cache = json.load(f)
    results = {}  # (dataset, scaling, rate, imputer) -> list of (rmse, seconds)
    for dataset in args.datasets:
        for scaling in args.scalings:
            X = load(dataset, scaling)
            for rate in args.rates:
                for seed in args.seeds:
                    for imputer in PEERS + ("vae",):
                        key = f"{dataset}|{scaling}|{rate}|{seed}|{imputer}"
                        if imputer != "vae" and key in cache:
                            value = cache[key]
                        else:
                            value = run_one(imputer, X, rate, seed, vae_params)
                            if imputer != "vae":
                                cache[key] = value
                        results.setdefault((dataset, scaling, rate, imputer), []).append(value)
                    row = {m: results[(dataset, scaling, rate, m)][-1][0] for m in PEERS + ("vae",)}
                    print(f"{dataset:14s} {scaling:12s} {rate:.1f} seed {seed}: "
                          + "  ".join(f"{m} {r:.3f}" for m, r in row.items()), flush=True)
            if args.cache:
                with open(args.cache, "w") as f:
                    json.dump(cache, f)
    report = format_report(results, args, vae_params)
    print(report)
    if args.output:
        with open(args.output, "w") as f:
            f.write(report)


def format_report(results, args, vae_params):
    names = {"mean": "SimpleImputer(mean)", "knn": "KNNImputer", "iterative": "IterativeImputer", "vae": "VAEImputer"}
    lines = [
        "# VAEImputer against scikit-learn's imputers",
        "",
        f"`python benchmarks/impute.py` on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; VAEImputer overrides: {vae_params or 'none (defaults)'}.",
        f"Entries hidden completely at random; seeds {args.seeds}. RMSE on the hidden entries in standardized",
        "units (mean over seeds; ± their standard deviation), and the wall time of `fit_transform` in seconds.",
        "A ratio is VAEImputer's RMSE over the peer's (below 1: VAEImputer is better).",
        "",
        "| data | scaling | missing | " + " | ".join(names[m] for m in PEERS + ("vae",))
        + " | vs Iterative | vs KNN | time: Iterative / KNN / VAE (s) |",
        "|---|---|---|" + "---|" * (len(PEERS) + 1) + "---|---|---|",
    ]
    summary = {}
    for (dataset, scaling, rate, imputer), values in results.items():
        if imputer != "vae":
            continue
        cells, rmse, secs = [], {}, {}
        for m in PEERS + ("vae",):
            v = np.array(results[(dataset, scaling, rate, m)])
            rmse[m], secs[m] = v[:, 0].mean(), v[:, 1].mean()
            cells.append(f"{rmse[m]:.3f} ± {v[:, 0].std():.3f}")
        vs_it, vs_knn = rmse["vae"] / rmse["iterative"], rmse["vae"] / rmse["knn"]
        lines.append(f"| {dataset} | {scaling} | {rate:.0%} | " + " | ".join(cells)
                     + f" | {vs_it:.3f} | {vs_knn:.3f} | {secs['iterative']:.2f} / {secs['knn']:.2f} / {secs['vae']:.2f} |")
        summary.setdefault((dataset, scaling), []).append((rmse["vae"], rmse["iterative"], rmse["knn"]))
    lines += [
        "",
        "## Per data set (mean RMSE over missing rates and seeds)",
        "",
        "| data | scaling | VAEImputer | IterativeImputer | KNNImputer | beats both | within 10% of Iterative |",
        "|---|---|---|---|---|---|---|",
    ]
    wins = within = 0
    for (dataset, scaling), rows in summary.items():
        vae, it, knn = np.mean(rows, axis=0)
        win, close = vae < it and vae < knn, vae <= 1.1 * it
        wins += win
        within += close
        lines.append(f"| {dataset} | {scaling} | {vae:.3f} | {it:.3f} | {knn:.3f} | {'yes' if win else 'no'} "
                     f"| {'yes' if close else 'no'} ({vae / it:.3f}) |")
    lines += ["", f"VAEImputer beats both on {wins} of {len(summary)} (data set, scaling) pairs and is within 10% "
              f"of IterativeImputer on {within} of {len(summary)}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
