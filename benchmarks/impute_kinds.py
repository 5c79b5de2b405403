"""VAEImputer with column kinds against scikit-learn's imputers on tables that mix kinds.

The tables are scikit-learn's shipped data sets with their discrete columns
kept as they are: diabetes (raw: `sex` is a category coded 1/2), breast cancer
with its diagnosis (binary), wine and iris with their class (categorical), and
digits, whose 64 pixels are counts 0-16, with its class (categorical). Entries
are hidden completely at random; every imputer fills them from the rest of the
same matrix (fit_transform). Imputers that know no kinds get their values
rounded to the column's kind (nearest category code, 0/1, nearest count >= 0),
as a user of them would. Reported: RMSE on the hidden continuous entries and
on the hidden counts (each column in units of its standard deviation), and
the error rate on the hidden binary and categorical entries.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/impute_kinds.py --output benchmarks/IMPUTE_KINDS.md
"""

import argparse
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


def with_target(loader, kind):
    def load():
        bunch = loader()
        return np.column_stack([bunch.data, bunch.target]), ["continuous"] * bunch.data.shape[1] + [kind]
    return load


def diabetes():
    X = datasets.load_diabetes(scaled=False).data
    kinds = ["continuous"] * X.shape[1]
    kinds[1] = "categorical"  # sex, coded 1 and 2
    return X, kinds


def digits():
    bunch = datasets.load_digits()
    return np.column_stack([bunch.data, bunch.target]), ["count"] * 64 + ["categorical"]


TABLES = {
    "diabetes": diabetes,
    "breast_cancer": with_target(datasets.load_breast_cancer, "binary"),
    "wine": with_target(datasets.load_wine, "categorical"),
    "iris": with_target(datasets.load_iris, "categorical"),
    "digits": digits,
}
IMPUTERS = ("simple", "knn", "iterative", "vae", "vae_kinds")
NAMES = {"simple": "SimpleImputer (mean / most frequent)", "knn": "KNNImputer", "iterative": "IterativeImputer",
         "vae": "VAEImputer (all continuous)", "vae_kinds": "VAEImputer (column_kinds)"}


def impute(name, X_missing, kinds, seed):
    if name == "simple":
        discrete = np.array([k in ("binary", "categorical") for k in kinds])
        out = SimpleImputer(strategy="mean", keep_empty_features=True).fit_transform(X_missing)
        frequent = SimpleImputer(strategy="most_frequent", keep_empty_features=True).fit_transform(X_missing)
        out[:, discrete] = frequent[:, discrete]
        return out
    if name == "knn":
        return KNNImputer(keep_empty_features=True).fit_transform(X_missing)
    if name == "iterative":
        return IterativeImputer(random_state=seed, keep_empty_features=True).fit_transform(X_missing)
    kind_list = kinds if name == "vae_kinds" else None
    return VAEImputer(column_kinds=kind_list, random_state=seed, keep_empty_features=True).fit_transform(X_missing)


def round_to_kinds(X_filled, X_missing, kinds):
    """Each column's values as its kind allows: nearest observed category, 0/1, counts >= 0."""
    out = X_filled.copy()
    for j, kind in enumerate(kinds):
        if kind in ("binary", "categorical"):
            codes = np.unique(X_missing[~np.isnan(X_missing[:, j]), j])
            out[:, j] = codes[np.argmin(np.abs(X_filled[:, j, None] - codes[None, :]), axis=1)]
        elif kind == "count":
            out[:, j] = np.maximum(np.round(X_filled[:, j]), 0)
    return out


def scores(X, X_filled, hidden, kinds):
    """(continuous RMSE, count RMSE, discrete error rate) over the hidden entries; NaN where none."""
    kinds = np.array(kinds)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    error = (X_filled - X) / scale

    def rmse(columns):
        e = error[:, columns][hidden[:, columns]]
        return float(np.sqrt(np.mean(e**2))) if e.size else np.nan

    discrete = np.isin(kinds, ["binary", "categorical"])
    wrong = (X_filled != X)[:, discrete][hidden[:, discrete]]
    return rmse(kinds == "continuous"), rmse(kinds == "count"), float(wrong.mean()) if wrong.size else np.nan


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="+", default=list(TABLES))
    parser.add_argument("--rates", nargs="+", type=float, default=[0.1, 0.3])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    started_all = time.perf_counter()
    rows = []
    for table in args.tables:
        X, kinds = TABLES[table]()
        X = X.astype(np.float64)
        for rate in args.rates:
            results = {m: [] for m in IMPUTERS}
            for seed in args.seeds:
                hidden = np.random.default_rng(seed).random(X.shape) < rate
                X_missing = np.where(hidden, np.nan, X)
                for name in IMPUTERS:
                    started = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # ConvergenceWarnings
                        X_filled = impute(name, X_missing, kinds, seed)
                    elapsed = time.perf_counter() - started
                    if name != "vae_kinds":
                        X_filled = round_to_kinds(X_filled, X_missing, kinds)
                    results[name].append(scores(X, X_filled, hidden, kinds) + (elapsed,))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a metric with no column of its kind
                means = {m: np.nanmean(np.array(v, dtype=float), axis=0) for m, v in results.items()}
            rows.append((table, rate, means))
            print(table, rate, {m: np.round(v, 3).tolist() for m, v in means.items()}, flush=True)
    report = format_report(rows, args, time.perf_counter() - started_all)
    print(report)
    if args.output:
        with open(args.output, "w") as f:
            f.write(report)


def format_report(rows, args, seconds):
    def cell(value):
        return "–" if np.isnan(value) else f"{value:.3f}"

    lines = [
        "# VAEImputer with column kinds, on tables that mix kinds",
        "",
        f"`python benchmarks/impute_kinds.py` ({seconds / 60:.0f} minutes) on {platform.machine()}, "
        f"{os.cpu_count()} cores; every imputer at its defaults; seeds {args.seeds} (means shown).",
        "Entries hidden completely at random. Continuous and count columns: RMSE of the hidden entries in units of",
        "the column's standard deviation; binary and categorical columns: error rate of the hidden entries. Imputers",
        "without kinds are rounded to each column's kind (nearest category code, 0/1, nearest count).",
        "",
    ]
    for metric, index in (("RMSE, continuous columns", 0), ("RMSE, count columns", 1),
                          ("Error rate, binary and categorical columns", 2)):
        table_rows = [(t, r, m) for t, r, m in rows if not np.isnan(m["vae_kinds"][index])]
        if not table_rows:
            continue
        lines += [f"## {metric}", "", "| data | missing | " + " | ".join(NAMES[m] for m in IMPUTERS) + " |",
                  "|---|---|" + "---|" * len(IMPUTERS)]
        for table, rate, means in table_rows:
            best = min(means[m][index] for m in IMPUTERS)
            cells = [f"**{cell(means[m][index])}**" if means[m][index] == best else cell(means[m][index])
                     for m in IMPUTERS]
            lines.append(f"| {table} | {rate:.0%} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Time of fit_transform, seconds (mean over seeds)", "",
              "| data | missing | " + " | ".join(NAMES[m] for m in IMPUTERS) + " |",
              "|---|---|" + "---|" * len(IMPUTERS)]
    for table, rate, means in rows:
        lines.append(f"| {table} | {rate:.0%} | " + " | ".join(f"{means[m][3]:.2f}" for m in IMPUTERS) + " |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
