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
the committed table uses none); `--variants '{"NAME": {...}}'` adds a VAEImputer
column per name with those overrides on top; `--peers` picks scikit-learn's
imputers (`iterative_trees`, IterativeImputer with ExtraTrees as
benchmarks/evaluate.py runs it, is not in the default set); `--cache FILE` keeps
every imputer's results between runs (a VAEImputer's under its full overrides).
One thread per process (benchmarks/evaluate.py's setting). The MIWAE table:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/impute.py --datasets breast_cancer \
        --scalings standardized --peers mean knn iterative iterative_trees \
        --variants '{"MIWAE (iwae, K=5)": {"objective": "iwae", "n_mc_samples": 5}}' \
        --cache benchmarks/impute_miwae.json --output benchmarks/IMPUTE_MIWAE.md

(benchmarks/IMPUTE_MIWAE_VARIANTS.md's header names the run of MIWAE's variants at 10%.)
"""

import argparse
import json
import os
import platform
import shlex
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evaluate  # noqa: E402  (one thread per process before NumPy loads; puts pyvae on the path)
import numpy as np  # noqa: E402
from sklearn import datasets  # noqa: E402
from sklearn.experimental import enable_iterative_imputer  # noqa: E402,F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer  # noqa: E402

from pyvae import VAEImputer  # noqa: E402

DATASETS = {
    "breast_cancer": datasets.load_breast_cancer,
    "digits": datasets.load_digits,
    "wine": datasets.load_wine,
    "diabetes": lambda: datasets.load_diabetes(scaled=False),
    "iris": datasets.load_iris,
}
PEERS = ("mean", "knn", "iterative", "iterative_trees")
DEFAULT_PEERS = ("mean", "knn", "iterative")
NAMES = {"mean": "SimpleImputer(mean)", "knn": "KNNImputer", "iterative": "IterativeImputer",
         "iterative_trees": "IterativeImputer(ExtraTrees)", "vae": "VAEImputer"}


def make_imputer(name, seed, vae_params):
    if name == "mean":
        return SimpleImputer(strategy="mean")
    if name == "knn":
        return KNNImputer()
    if name == "iterative":
        return IterativeImputer(random_state=seed)
    if name == "iterative_trees":
        return evaluate.extra_trees_imputer(seed)
    return VAEImputer(random_state=seed, **vae_params)


def run_one(name, X, rate, seed, vae_params):
    X_missing, hidden = evaluate.hide(X, rate, seed)
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


def vae_columns(args):
    """Column name -> VAEImputer overrides: the defaults' column ("vae", with --vae-params) and each variant."""
    base = json.loads(args.vae_params)
    return {"vae": base, **{name: {**base, **params} for name, params in json.loads(args.variants).items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--scalings", nargs="+", default=["standardized", "raw"])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.1, 0.2, 0.4])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--peers", nargs="+", choices=PEERS, default=list(DEFAULT_PEERS))
    parser.add_argument("--vae-params", default="{}", help="JSON overrides of VAEImputer's defaults")
    parser.add_argument("--variants", default="{}", help="JSON: column name -> further VAEImputer overrides")
    parser.add_argument("--cache", default=None, help="JSON file keeping every imputer's results between runs")
    parser.add_argument("--output", default=None, help="write the Markdown report here")
    args = parser.parse_args()
    if "knn" not in args.peers or not any(m.startswith("iterative") for m in args.peers):
        parser.error("--peers needs knn and an IterativeImputer: the report's ratios are against them")
    columns = {**{peer: None for peer in args.peers}, **vae_columns(args)}

    cache = {}
    if args.cache and os.path.exists(args.cache):
        with open(args.cache) as f:
            cache = json.load(f)
    results = {}  # (dataset, scaling, rate, column) -> list of (rmse, seconds)
    for dataset in args.datasets:
        for scaling in args.scalings:
            X = load(dataset, scaling)
            for rate in args.rates:
                for seed in args.seeds:
                    for column, params in columns.items():
                        imputer = column if params is None else "VAEImputer " + json.dumps(params, sort_keys=True)
                        key = f"{dataset}|{scaling}|{rate}|{seed}|{imputer}"
                        if key not in cache:
                            cache[key] = run_one(column if params is None else "vae", X, rate, seed, params)
                            if args.cache:
                                with open(args.cache, "w") as f:
                                    json.dump(cache, f)
                        results.setdefault((dataset, scaling, rate, column), []).append(cache[key])
                    print(f"{dataset:14s} {scaling:12s} {rate:.1f} seed {seed}: "
                          + "  ".join(f"{m} {results[(dataset, scaling, rate, m)][-1][0]:.3f}" for m in columns),
                          flush=True)
    report = format_report(results, args, columns)
    print(report)
    if args.output:
        with open(args.output, "w") as f:
            f.write(report)


def format_report(results, args, columns):
    peers = [m for m, params in columns.items() if params is None]
    vaes = [m for m, params in columns.items() if params is not None]
    iteratives = [m for m in peers if m.startswith("iterative")]
    title = {m: NAMES.get(m, m) for m in columns}
    variants = json.loads(args.variants)
    lines = [
        "# VAEImputer against scikit-learn's imputers",
        "",
        f"`python benchmarks/impute.py {shlex.join(sys.argv[1:])}` on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, one thread per imputer; VAEImputer overrides: "
        f"{json.loads(args.vae_params) or 'none (defaults)'}"
        + "".join(f"; {name}: VAEImputer with {params}" for name, params in variants.items()) + ".",
        f"Entries hidden completely at random; seeds {args.seeds}. RMSE on the hidden entries in standardized",
        "units (mean over seeds; ± their standard deviation), and the wall time of `fit_transform` in seconds.",
        "A ratio is a VAEImputer's RMSE over the peer's (below 1: the VAEImputer is better); \"Iterative\" is the "
        f"better of {', '.join(title[m] for m in iteratives)} in each row.",
        "",
        "| data | scaling | missing | " + " | ".join(title[m] for m in columns)
        + "".join(f" | {title[m]} vs Iterative | {title[m]} vs KNN" for m in vaes)
        + " | time (s): " + " / ".join(title[m] for m in columns) + " |",
        "|---|---|---|" + "---|" * (len(columns) + 2 * len(vaes) + 1),
    ]
    summary = {}
    for dataset, scaling, rate in dict.fromkeys(key[:3] for key in results):
        cells, rmse, secs = [], {}, {}
        for m in columns:
            v = np.array(results[(dataset, scaling, rate, m)])
            rmse[m], secs[m] = v[:, 0].mean(), v[:, 1].mean()
            cells.append(f"{rmse[m]:.3f} ± {v[:, 0].std():.3f}")
        iterative = min(rmse[m] for m in iteratives)
        lines.append(f"| {dataset} | {scaling} | {rate:.0%} | " + " | ".join(cells)
                     + "".join(f" | {rmse[m] / iterative:.3f} | {rmse[m] / rmse['knn']:.3f}" for m in vaes)
                     + " | " + " / ".join(f"{secs[m]:.2f}" for m in columns) + " |")
        for m in vaes:
            summary.setdefault((dataset, scaling, m), []).append((rmse[m], iterative, rmse["knn"]))
    lines += [
        "",
        "## Per data set (mean RMSE over missing rates and seeds)",
        "",
        "| data | scaling | imputer | its RMSE | Iterative | KNNImputer | beats both | within 10% of Iterative |",
        "|---|---|---|---|---|---|---|---|",
    ]
    wins, within = dict.fromkeys(vaes, 0), dict.fromkeys(vaes, 0)
    for (dataset, scaling, m), rows in summary.items():
        vae, it, knn = np.mean(rows, axis=0)
        win, close = vae < it and vae < knn, vae <= 1.1 * it
        wins[m] += win
        within[m] += close
        lines.append(f"| {dataset} | {scaling} | {title[m]} | {vae:.3f} | {it:.3f} | {knn:.3f} | "
                     f"{'yes' if win else 'no'} | {'yes' if close else 'no'} ({vae / it:.3f}) |")
    pairs = len(summary) // len(vaes)
    lines.append("")
    lines += [f"{title[m]} beats both on {wins[m]} of {pairs} (data set, scaling) pairs and is within 10% of "
              f"Iterative on {within[m]} of {pairs}." for m in vaes]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
