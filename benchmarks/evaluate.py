"""The default VAE and VAEImputer against converged, stronger peers on the suite's evaluation part.

The tables are benchmarks/suite.json's (the rule: benchmarks/suite.py,
benchmarks/SUITE.md); ``--part tuning`` or ``--part both`` runs the others, and
``--part reserve`` a check on tables neither part holds: the first
``--n-reserve`` of the reserve (tables the rule kept but did not draw) in an
order drawn with RESERVE_SEED, fixed before any of them was run.

Density, per table and per split (``train_test_split(X, test_size=0.25,
random_state=s)`` for s in SPLITS): held-out log-likelihood in nats per row of
the raw data, for

- ``VAE(n_components=k)``, every other setting at its default (n_threads=1),
  scored with ``score_samples(X_test, n_importance=500, refine_steps=500)``
  (a lower bound on log p(x), of each row's q(z|x) refined by 500 steps on the
  row's own ELBO first: the number chosen on the tuning part,
  benchmarks/tune_score_refinement.py); it standardizes inside itself and
  scores the raw data;
- ``FactorAnalysis(k, tol=1e-8, max_iter=10000)``, converged (exact SVD);
- ``GaussianMixture(covariance_type="full")`` with 1-5 components chosen by
  BIC on the training split (``random_state=0``, ``max_iter=500``);

with k = min(5, d // 2). FactorAnalysis and GaussianMixture are fitted on the
training split standardized by its own mean and standard deviation, and their
scores get the log-Jacobian of that map, -sum(log scale), so that all three
score densities of the raw data (FactorAnalysis is scale-equivariant, so this
only helps its numerics; GaussianMixture's ``reg_covar=1e-6`` becomes relative
to each column's spread). The report's "units check" verifies both claims on
the first table.

Imputation, per table, missing rate and mask seed: a fraction of the entries
hidden completely at random, every imputer filling the whole matrix
(``fit_transform``); RMSE on the hidden entries with each column's error
divided by its standard deviation, for ``VAEImputer()`` and ``ConditionalVAEImputer()`` at their defaults
and ``VAEImputer(objective="iwae", n_mc_samples=K)`` for K = 10, 20 (n_threads=1),
``IterativeImputer(max_iter=25)`` (BayesianRidge),
``IterativeImputer(ExtraTreesRegressor(n_estimators=50), max_iter=10)``,
``KNNImputer()`` on the data standardized by its observed entries, and the
column mean. Every fit is timed.

    python benchmarks/evaluate.py --out benchmarks/EVALUATION.md
    python benchmarks/evaluate.py --quick           # smoke run: 2 tables, 1 split, 1 rate, 1 mask
"""

import argparse
import json
import os
import platform
import sys
import time
import warnings

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core per process: NumPy's BLAS, scikit-learn's OpenMP

import numpy as np  # noqa: E402
from sklearn.decomposition import FactorAnalysis  # noqa: E402
from sklearn.ensemble import ExtraTreesRegressor  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.experimental import enable_iterative_imputer  # noqa: E402,F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import pyvae  # noqa: E402
import suite  # noqa: E402
from pyvae import VAE, ConditionalVAEImputer, VAEImputer  # noqa: E402

SPLITS = (0, 1, 2)
RATES = (0.1, 0.2, 0.3)
MASKS = (0, 1)
N_IMPORTANCE = 500
SCORE_REFINE_STEPS = 500  # benchmarks/TUNE_SCORE_REFINEMENT.md
# The reserve check's order of the reserve (suite.py's SEED + 1), fixed before its results were seen.
RESERVE_SEED = 2024_25
DENSITY_MODELS = ("fa", "gmm", "vae")
PEER_IMPUTERS = ("mean", "knn", "ii_br", "ii_et")
# pyvae's imputers, each judged against the peers: the two at their defaults, and VAEImputer trained on the
# importance-weighted bound with K = 10 and 20 draws (MIWAE's objective; benchmarks/TUNE_IMPUTER.md's second
# round of issue 24: more accurate on the tuning part, about K times the training cost, so not the default).
VAE_IMPUTERS = ("vae", "vaeac", "vae_iwae10", "vae_iwae20")
IMPUTERS = PEER_IMPUTERS + VAE_IMPUTERS
IWAE_DRAWS = {"vae_iwae10": 10, "vae_iwae20": 20}
NAMES = {"fa": "FactorAnalysis", "gmm": "GaussianMixture", "vae": "VAE", "mean": "mean", "knn": "KNNImputer",
         "ii_br": "Iterative (BayesianRidge)", "ii_et": "Iterative (ExtraTrees)"}
IMPUTER_NAMES = {"vae": "VAEImputer", "vaeac": "ConditionalVAEImputer", "vae_iwae10": "VAEImputer (IWAE, K=10)",
                 "vae_iwae20": "VAEImputer (IWAE, K=20)"}
SHORT_NAMES = {"knn": "KNN", "ii_br": "BR", "ii_et": "ET", "vae": "VAE", "vaeac": "Conditional",
               "vae_iwae10": "IWAE10", "vae_iwae20": "IWAE20"}


def latent_dimensions(d):
    return max(1, min(5, d // 2))


def standardizer(X_train):
    """(mean, scale) of the training split; a constant column keeps scale 1."""
    mean, scale = X_train.mean(axis=0), X_train.std(axis=0)
    return mean, np.where(scale > 0, scale, 1.0)


def timed(fit):
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        result = fit()
    return result, time.perf_counter() - started, any(issubclass(w.category, ConvergenceWarning) for w in caught)


def fit_fa(Z_train, k):
    return FactorAnalysis(k, tol=1e-8, max_iter=10000, svd_method="lapack").fit(Z_train)


def fit_gmm(Z_train):
    """Full-covariance mixtures of 1-5 components; the one with the lowest BIC on the training rows."""
    fits = [GaussianMixture(c, covariance_type="full", max_iter=500, random_state=0).fit(Z_train) for c in range(1, 6)]
    return min(fits, key=lambda g: g.bic(Z_train))


def density_split(X, seed):
    """One split: {model: dict(score, seconds, ...)} in nats per row of the raw data."""
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=seed)
    k = latent_dimensions(X.shape[1])
    mean, scale = standardizer(X_train)
    jacobian = -np.log(scale).sum()
    Z_train, Z_test = (X_train - mean) / scale, (X_test - mean) / scale
    out = {}
    fa, seconds, warned = timed(lambda: fit_fa(Z_train, k))
    out["fa"] = dict(score=float(fa.score(Z_test) + jacobian), seconds=seconds, iterations=int(fa.n_iter_),
                     warned=warned)
    gmm, seconds, warned = timed(lambda: fit_gmm(Z_train))
    out["gmm"] = dict(score=float(gmm.score(Z_test) + jacobian), seconds=seconds, components=int(gmm.n_components),
                      warned=warned)
    vae, seconds, warned = timed(lambda: VAE(n_components=k, random_state=seed, n_threads=1).fit(X_train))
    started = time.perf_counter()
    score = float(vae.score_samples(X_test, n_importance=N_IMPORTANCE, refine_steps=SCORE_REFINE_STEPS).mean())
    out["vae"] = dict(score=score, seconds=seconds, score_seconds=time.perf_counter() - started,
                      epochs=int(vae.n_iter_), warned=warned)
    return out


def units_check(X):
    """Split 0 of one table: FactorAnalysis standardized + log-Jacobian against the same model's Gaussian density
    evaluated on the raw rows (must agree), FactorAnalysis fitted on the raw rows, and the VAE on X against 10 X
    (must differ by d log 10)."""
    from scipy.stats import multivariate_normal

    X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
    k = latent_dimensions(X.shape[1])
    mean, scale = standardizer(X_train)
    fa = fit_fa((X_train - mean) / scale, k)
    standardized = fa.score((X_test - mean) / scale) - np.log(scale).sum()
    covariance = fa.get_covariance() * np.outer(scale, scale)  # the same model in raw units
    # allow_singular: a table whose columns span many orders of magnitude has a covariance in raw units that
    # fails SciPy's positive-definiteness test in floating point, though it is positive definite.
    raw_density = multivariate_normal(fa.mean_ * scale + mean, covariance, allow_singular=True).logpdf(X_test).mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fa_raw = fit_fa(X_train, k)
    vae = VAE(n_components=k, random_state=0, n_threads=1)
    one = vae.fit(X_train).score_samples(X_test, n_importance=N_IMPORTANCE).mean()
    ten = vae.fit(10 * X_train).score_samples(10 * X_test, n_importance=N_IMPORTANCE).mean()
    return dict(fa_standardized=float(standardized), fa_raw_density=float(raw_density),
                fa_raw_fit=float(fa_raw.score(X_test)), fa_raw_iterations=int(fa_raw.n_iter_),
                fa_iterations=int(fa.n_iter_), vae=float(one), vae_times_10=float(ten), d=X.shape[1])


def fa_convergence(X):
    """Split 0: FactorAnalysis's held-out score at max_iter=10000 (the one reported) and at 100000."""
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
    mean, scale = standardizer(X_train)
    Z_train, Z_test = (X_train - mean) / scale, (X_test - mean) / scale
    k = latent_dimensions(X.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        short = fit_fa(Z_train, k)
        long = FactorAnalysis(k, tol=1e-8, max_iter=100000, svd_method="lapack").fit(Z_train)
    return dict(score=float(short.score(Z_test)), score_long=float(long.score(Z_test)),
                iterations_long=int(long.n_iter_))


def hide(X, rate, seed):
    hidden = np.random.default_rng(seed).random(X.shape) < rate
    X_missing = X.copy()
    X_missing[hidden] = np.nan
    return X_missing, hidden


def knn_standardized(X_missing):
    mean, scale = np.nanmean(X_missing, axis=0), np.nanstd(X_missing, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return KNNImputer().fit_transform((X_missing - mean) / scale) * scale + mean


def extra_trees_imputer(seed):
    trees = ExtraTreesRegressor(n_estimators=50, random_state=seed, n_jobs=1)
    return IterativeImputer(estimator=trees, max_iter=10, random_state=seed)


def make_imputer(name, seed):
    if name == "mean":
        return SimpleImputer(strategy="mean").fit_transform
    if name == "knn":
        return knn_standardized
    if name == "ii_br":
        return IterativeImputer(max_iter=25, random_state=seed).fit_transform
    if name == "ii_et":
        return extra_trees_imputer(seed).fit_transform
    if name == "vaeac":
        return ConditionalVAEImputer(random_state=seed, n_threads=1).fit_transform
    if name in IWAE_DRAWS:
        return VAEImputer(objective="iwae", n_mc_samples=IWAE_DRAWS[name], random_state=seed, n_threads=1).fit_transform
    return VAEImputer(random_state=seed, n_threads=1).fit_transform


def impute_one(X, rate, seed, name):
    X_missing, hidden = hide(X, rate, seed)
    scale = X.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    X_filled, seconds, warned = timed(lambda: make_imputer(name, seed)(X_missing))
    error = ((X_filled - X) / scale)[hidden]
    return dict(rmse=float(np.sqrt(np.mean(error**2))), seconds=seconds, warned=warned)


def run(names, splits, rates, masks, results, cache_path=None):
    """Fill `results` (a dict keyed by strings, kept in the cache file between runs)."""
    def save():
        if cache_path:
            with open(cache_path, "w") as f:
                json.dump(results, f)

    def compute(key, work):
        if key not in results:
            started = time.perf_counter()
            results[key] = work()
            results["seconds"] = results.get("seconds", 0.0) + time.perf_counter() - started
            save()
        return results[key]

    for name in names:
        X, columns = suite.load_table(name)
        results[f"{name}|shape"] = list(X.shape)
        for seed in splits:
            key = f"{name}|density|{seed}"
            compute(key, lambda: density_split(X, seed))
            r = results[key]
            print(f"{name:32s} split {seed}: FA {r['fa']['score']:9.3f}  GMM {r['gmm']['score']:9.3f} "
                  f"({r['gmm']['components']})  VAE {r['vae']['score']:9.3f}  "
                  f"[{r['fa']['seconds']:.1f} / {r['gmm']['seconds']:.1f} / {r['vae']['seconds']:.1f} s]", flush=True)
        for rate in rates:
            for seed in masks:
                row = {}
                for imputer in IMPUTERS:
                    key = f"{name}|impute|{rate}|{seed}|{imputer}"
                    row[imputer] = compute(key, lambda: impute_one(X, rate, seed, imputer))
                print(f"{name:32s} {rate:.0%} mask {seed}: "
                      + "  ".join(f"{m} {row[m]['rmse']:.3f} ({row[m]['seconds']:.1f} s)" for m in IMPUTERS),
                      flush=True)
        if splits and 0 in splits:
            check = compute(f"{name}|fa_check", lambda: fa_convergence(X))
            print(f"{name:32s} FactorAnalysis at 10,000 / {check['iterations_long']:,} iterations: "
                  f"{check['score']:.4f} / {check['score_long']:.4f} (standardized units)", flush=True)


def mean_sd(values):
    values = np.asarray(values, dtype=float)
    return values.mean(), (values.std(ddof=1) if values.size > 1 else 0.0)


def density_rows(results, names, splits):
    rows = []
    for name in names:
        runs = [results[f"{name}|density|{s}"] for s in splits]
        row = dict(name=name, shape=results[f"{name}|shape"], k=latent_dimensions(results[f"{name}|shape"][1]))
        for m in DENSITY_MODELS:
            row[m] = mean_sd([r[m]["score"] for r in runs])
            row[m + "_seconds"] = float(np.mean([r[m]["seconds"] for r in runs]))
            row[m + "_warned"] = any(r[m].get("warned") for r in runs)
        row["gmm_components"] = [r["gmm"]["components"] for r in runs]
        row["vae_epochs"] = int(np.mean([r["vae"]["epochs"] for r in runs]))
        row["fa_iterations"] = int(np.max([r["fa"]["iterations"] for r in runs]))
        # the gap per split, then its mean and spread: the splits are paired
        for peer in ("fa", "gmm"):
            row["vae_minus_" + peer] = mean_sd([r["vae"]["score"] - r[peer]["score"] for r in runs])
        rows.append(row)
    return rows


def impute_rows(results, names, rates, masks):
    rows = []
    for name in names:
        for rate in rates:
            runs = [{m: results[f"{name}|impute|{rate}|{s}|{m}"] for m in IMPUTERS} for s in masks]
            row = dict(name=name, rate=rate)
            for m in IMPUTERS:
                row[m] = mean_sd([r[m]["rmse"] for r in runs])
                row[m + "_seconds"] = float(np.mean([r[m]["seconds"] for r in runs]))
            row["best_ii"] = min(row["ii_br"][0], row["ii_et"][0])
            rows.append(row)
    return rows


def fmt(pair, digits=3, sign=""):
    return f"{pair[0]:{sign}.{digits}f} ± {pair[1]:.{digits}f}"


def write_markdown(path, results, names, part, args, check):
    splits, rates, masks = args.splits, args.rates, args.masks
    dens = density_rows(results, names, splits)
    imp = impute_rows(results, names, rates, masks)
    command = "python benchmarks/evaluate.py" + (f" --part {part}" if part != "evaluation" else "") + \
        (f" --n-reserve {len(names)}" if part == "reserve" else "") + \
        (" --density-only" if not args.rates else "") + \
        (" --quick" if args.quick else "") + f" --out {os.path.relpath(path, os.path.join(HERE, '..'))}"
    import sklearn

    lines = [
        f"# The default VAE and VAEImputer on the suite's {part} part",
        "",
        f"`{command}` on {platform.processor() or platform.machine()} ({os.cpu_count()} cores, shared with another "
        f"engineer's jobs: times are wall times under that load), pyvae {pyvae.__version__}, scikit-learn "
        f"{sklearn.__version__}, {time.strftime('%Y-%m-%d')}; {results['seconds'] / 60:.0f} minutes of computing in "
        "all. One process, one thread "
        "everywhere (`n_threads=1`, `n_jobs=1`, BLAS and OpenMP at 1 thread). Tables: benchmarks/SUITE.md "
        + (f"({len(names)} tables, {part} part)" if part != "reserve" else f"(its reserve: the first {len(names)} "
         f"in the order RESERVE_SEED = {RESERVE_SEED} draws, fixed before any ran; no setting was chosen on them, "
         "but gt/towny's first run, with the VAE 18-28 nats per row behind FactorAnalysis, is why the VAE has a "
         "power transform now: benchmarks/POWER.md)")
        + ". The protocol is benchmarks/evaluate.py's docstring; in short:",
        "",
        f"- Density: {len(splits)} seeded 75/25 splits (seeds {list(splits)}); held-out log-likelihood in nats per "
        f"row of the raw data; `VAE(n_components=k)` at its defaults scored with the importance-weighted bound "
        f"(K = {N_IMPORTANCE}, a lower bound on log p(x), of each row's q(z|x) refined by {SCORE_REFINE_STEPS} "
        "Adam steps on the row's own ELBO first: `refine_steps`, the number chosen on the tuning part in "
        "benchmarks/TUNE_SCORE_REFINEMENT.md), `FactorAnalysis(k, tol=1e-8, max_iter=10000)` "
        "(converged, exact SVD), `GaussianMixture` (full covariance, 1-5 components by BIC on the training split); "
        "k = min(5, d // 2). Mean ± standard deviation over the splits; a gap is the VAE's score minus the peer's, "
        "per split, then averaged (positive: the VAE is better).",
        "- Imputation: not run (`--density-only`)." if not rates else
        f"- Imputation: {', '.join(f'{r:.0%}' for r in rates)} of the entries hidden at random, mask seeds "
        f"{list(masks)}; RMSE on the hidden entries in standardized units (mean ± standard deviation over the "
        "masks); `VAEImputer()` and `ConditionalVAEImputer()` at their defaults; `IterativeImputer(max_iter=25)` (BayesianRidge); "
        "`IterativeImputer(ExtraTreesRegressor(n_estimators=50), max_iter=10)`; `KNNImputer()` on standardized "
        "data; column means. A ratio is the VAE's RMSE over the peer's (below 1: the VAE is better).",
        "",
    ]
    if check:
        lines += [
            f"Units check ({names[0]}, split 0): FactorAnalysis fitted on standardized rows scores "
            f"{check['fa_standardized']:.4f} with the log-Jacobian, and the same model's Gaussian density evaluated on "
            f"the raw rows is {check['fa_raw_density']:.4f}; the VAE fitted and scored on X gives {check['vae']:.4f}, "
            f"on 10 X {check['vae_times_10']:.4f}, a gap of {check['vae'] - check['vae_times_10']:.4f} where "
            f"d log 10 = {check['d'] * np.log(10):.4f}: all three models score the data in its own units. "
            f"FactorAnalysis fitted on the raw rows instead stops after {check['fa_raw_iterations']} iterations at "
            f"{check['fa_raw_fit']:.4f} (standardized: {check['fa_iterations']} iterations), which is why the peers "
            "are fitted on standardized rows.",
            "",
        ]
    lines += [
        "## Density: held-out log-likelihood (nats per row, higher is better)",
        "",
        "| table | rows x cols | k | FactorAnalysis | GaussianMixture (components) | VAE | VAE - FA | VAE - GMM "
        "| fit s: FA / GMM / VAE | FA iterations (most) | VAE epochs |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in dens:
        comps = "/".join(str(c) for c in r["gmm_components"])
        lines.append(
            f"| {r['name']} | {r['shape'][0]} x {r['shape'][1]} | {r['k']} | {fmt(r['fa'])} | {fmt(r['gmm'])} "
            f"({comps}) | {fmt(r['vae'])} | {fmt(r['vae_minus_fa'], sign='+')} | {fmt(r['vae_minus_gmm'], sign='+')} | "
            f"{r['fa_seconds']:.1f} / {r['gmm_seconds']:.1f} / {r['vae_seconds']:.1f} | {r['fa_iterations']} | "
            f"{r['vae_epochs']}"
            f"{' (warned)' if r['vae_warned'] else ''} |")
    lines += ["", "A win or a loss is counted on the mean gap; \"clear\" ones are those whose mean gap exceeds its "
              "standard deviation over the splits.", "",
              "| VAE against | wins (clear) | losses (clear) | median gap | worst gap (table) | best gap (table) |",
              "|---|---|---|---|---|---|"]
    for peer in ("fa", "gmm"):
        gaps = np.array([r["vae_minus_" + peer][0] for r in dens])
        spread = np.array([r["vae_minus_" + peer][1] for r in dens])
        worst, best = int(np.argmin(gaps)), int(np.argmax(gaps))
        lines.append(f"| {NAMES[peer]} | {int((gaps > 0).sum())} ({int((gaps > spread).sum())}) | "
                     f"{int((gaps < 0).sum())} ({int((gaps < -spread).sum())}) | "
                     f"{np.median(gaps):+.3f} | {gaps[worst]:+.3f} ({dens[worst]['name']}) | "
                     f"{gaps[best]:+.3f} ({dens[best]['name']}) |")
    fa_gaps = np.array([r["vae_minus_fa"][0] for r in dens])
    behind = [f"{r['name']} ({g:+.3f})" for r, g in zip(dens, fa_gaps) if g < -0.5]
    split_gaps = [(name, s, results[f"{name}|density|{s}"]["vae"]["score"]
                   - results[f"{name}|density|{s}"]["fa"]["score"]) for name in names for s in splits]
    split_behind = [f"{name} split {s} ({g:+.3f})" for name, s, g in split_gaps if g < -0.5]
    lines += [
        "",
        f"Target (issue 24): the default VAE within 0.5 nats/row of converged FactorAnalysis on every table: "
        + ("**holds**" if not behind else f"**fails** on {len(behind)} of {len(dens)}: {', '.join(behind)}")
        + " on the mean over splits; split by split, "
        + (f"{len(split_behind)} of {len(split_gaps)} splits {'is' if len(split_behind) == 1 else 'are'} more than "
           f"0.5 behind: {', '.join(split_behind)}."
           if split_behind else f"none of the {len(split_gaps)} splits is more than 0.5 behind."),
        "",
    ]
    checks = [(name, results[f"{name}|fa_check"]) for name in names if f"{name}|fa_check" in results]
    if checks:
        moved = max(abs(c["score_long"] - c["score"]) for _, c in checks)
        warned = sum(results[f"{name}|density|{s}"]["fa"]["warned"] for name in names for s in splits)
        lines += [
            f"FactorAnalysis converged: scikit-learn's `tol` applies to the total log-likelihood of the training rows, "
            f"so `tol=1e-8` is met rarely; {warned} of {len(names) * len(splits)} fits stop at `max_iter=10000` "
            "(a noise variance creeping toward 0). Refitted with `max_iter=100000` (split 0, every table), the "
            f"held-out score moves by at most {moved:.4f} nats/row, so the FactorAnalysis column is its optimum to "
            "the digits shown.",
            "",
        ]
    if imp:  # (none with --density-only)
        lines += [
            "## Imputation: RMSE on the hidden entries (standardized units, lower is better)",
            "",
            "| table | missing | mean | KNNImputer | Iterative (BayesianRidge) | Iterative (ExtraTrees) | "
            + " | ".join(IMPUTER_NAMES[m] for m in VAE_IMPUTERS) + " | "
            + " | ".join(f"{SHORT_NAMES[m]} / best Iterative" for m in VAE_IMPUTERS)
            + " | fit s: " + " / ".join(SHORT_NAMES[m] for m in IMPUTERS[1:]) + " |",
            "|---|---|---|---|---|---|" + "---|---|" * len(VAE_IMPUTERS) + "---|",
        ]
        for r in imp:
            lines.append(
                f"| {r['name']} | {r['rate']:.0%} | {fmt(r['mean'])} | {fmt(r['knn'])} | {fmt(r['ii_br'])} | "
                f"{fmt(r['ii_et'])} | " + " | ".join(fmt(r[m]) for m in VAE_IMPUTERS) + " | "
                + " | ".join(f"{r[m][0] / r['best_ii']:.3f}" for m in VAE_IMPUTERS) + " | "
                + " / ".join(f"{r[m + '_seconds']:.1f}" for m in IMPUTERS[1:]) + " |")
        for ours in VAE_IMPUTERS:
            lines += ["", f"| {IMPUTER_NAMES[ours]} against | wins | losses | median ratio | worst ratio (table, rate) "
                      "| best ratio (table, rate) | median time ratio |", "|---|---|---|---|---|---|---|"]
            for peer in ("ii_br", "ii_et", "knn", "mean", *(v for v in VAE_IMPUTERS if v != ours)):
                ratios = np.array([r[ours][0] / r[peer][0] for r in imp])
                worst, best = int(np.argmax(ratios)), int(np.argmin(ratios))
                seconds = np.median([r[ours + "_seconds"] / max(r[peer + "_seconds"], 1e-3) for r in imp])
                time_ratio = f"{seconds:.2f}x" if seconds < 1 else f"{seconds:.1f}x"
                label = IMPUTER_NAMES[peer] if peer in IMPUTER_NAMES else NAMES[peer]
                lines.append(f"| {label} | {int((ratios < 1).sum())} | "
                             f"{int((ratios > 1).sum())} | {np.median(ratios):.3f} | {ratios[worst]:.3f} "
                             f"({imp[worst]['name']}, {imp[worst]['rate']:.0%}) | {ratios[best]:.3f} "
                             f"({imp[best]['name']}, {imp[best]['rate']:.0%}) | {time_ratio} |")
        def warned_fits(imputer):
            return sum(results[f"{r['name']}|impute|{r['rate']}|{m}|{imputer}"]["warned"] for r in imp for m in masks)

        n = len(imp)
        lines += [
            "",
            f"IterativeImputer warned that it had not converged (its `tol`) in {warned_fits('ii_et')} of "
            f"{len(imp) * len(masks)} ExtraTrees fits and {warned_fits('ii_br')} of {len(imp) * len(masks)} "
            "BayesianRidge "
            "fits; the numbers are those after its last round.",
        ]
        for ours in VAE_IMPUTERS:
            to_best = np.array([r[ours][0] / r["best_ii"] for r in imp])
            beats_all = sum(r[ours][0] < min(r["ii_br"][0], r["ii_et"][0], r["knn"][0]) for r in imp)
            within10, within25 = int((to_best <= 1.10).sum()), int((to_best <= 1.25).sum())
            over25 = [f"{r['name']} {r['rate']:.0%} ({x:.3f})" for r, x in zip(imp, to_best) if x > 1.25]
            lines += [
                "",
                f"Targets (issue 24) for {IMPUTER_NAMES[ours]}, over the (table, missing rate) pairs:",
                "",
                f"- within 10% of the better IterativeImputer on at least 90%: {within10} of {n} ({within10 / n:.0%}): "
                + ("**holds**." if within10 >= 0.9 * n else "**fails**."),
                f"- never more than 25% behind it: {n - within25} pairs more than 25% behind: "
                + ("**holds**." if not over25 else f"**fails** ({', '.join(over25)})."),
                f"- beats both IterativeImputers and KNNImputer on most: on {beats_all} of {n}: "
                + ("**holds**." if beats_all > n / 2 else "**fails**."),
            ]
    lines += [
        "",
        "## In plain words",
        "",
        *plain_statement(dens, imp),
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def plain_statement(dens, imp):
    """Where the VAE wins and loses, from the numbers above."""
    def names(rows, test):
        chosen = [r["name"] for r in rows if test(r)]
        return ", ".join(chosen) if chosen else "none"

    def tables(test):
        by_table = {}
        for r in imp:
            by_table.setdefault(r["name"], []).append(test(r))
        return ", ".join(t for t, v in by_table.items() if all(v)) or "none"

    statements = [
        "- Density, VAE against converged FactorAnalysis: better on "
        f"{names(dens, lambda r: r['vae_minus_fa'][0] > 0)}; worse on "
        f"{names(dens, lambda r: r['vae_minus_fa'][0] < 0)}.",
        "- Density, VAE against GaussianMixture: better on "
        f"{names(dens, lambda r: r['vae_minus_gmm'][0] > 0)}; worse on "
        f"{names(dens, lambda r: r['vae_minus_gmm'][0] < 0)}.",
        "- Density, unstable across splits (a standard deviation over 2 nats/row for some model: a few test rows "
        f"scored far below the rest): {names(dens, lambda r: max(r[m][1] for m in DENSITY_MODELS) > 2)}.",
    ]
    if not imp:
        return statements
    return statements + [
        "- Imputation: VAEImputer has the lowest error of all five at every missing rate on "
        f"{tables(lambda r: r['vae'][0] <= min(r[m][0] for m in PEER_IMPUTERS))}; it is behind the better "
        f"IterativeImputer at every rate on {tables(lambda r: r['vae'][0] > r['best_ii'])}; and behind KNNImputer at "
        f"every rate on {tables(lambda r: r['vae'][0] > r['knn'][0])}. The better IterativeImputer is the "
        f"ExtraTrees one on {sum(r['ii_et'][0] < r['ii_br'][0] for r in imp)} of {len(imp)} (table, rate) pairs; "
        "VAEImputer's RMSE is a median "
        f"{100 * (np.median([r['vae'][0] / r['ii_et'][0] for r in imp]) - 1):+.1f}% against it, "
        f"{100 * (np.median([r['vae'][0] / r['ii_br'][0] for r in imp]) - 1):+.1f}% against BayesianRidge and "
        f"{100 * (np.median([r['vae'][0] / r['knn'][0] for r in imp]) - 1):+.1f}% against KNNImputer.",
        "- Imputation, ConditionalVAEImputer: the lowest error of all six at every missing rate on "
        f"{tables(lambda r: r['vaeac'][0] <= min(r[m][0] for m in (*PEER_IMPUTERS, 'vae')))}; behind the better "
        "IterativeImputer at "
        f"every rate on {tables(lambda r: r['vaeac'][0] > r['best_ii'])}. Its RMSE is a median "
        + ", ".join(f"{100 * (np.median([r['vaeac'][0] / r[m][0] for r in imp]) - 1):+.1f}% against "
                    f"{'VAEImputer' if m == 'vae' else NAMES[m]}" for m in ("ii_et", "ii_br", "knn", "vae"))
        + f"; its fit + transform takes a median {np.median([r['vaeac_seconds'] / r['vae_seconds'] for r in imp]):.0f}x "
        f"VAEImputer's time and {np.median([r['vaeac_seconds'] / r['ii_et_seconds'] for r in imp]):.1f}x "
        "the ExtraTrees IterativeImputer's.",
        *(f"- Imputation, {IMPUTER_NAMES[m]}: RMSE a median "
          f"{100 * (np.median([r[m][0] / r['vae'][0] for r in imp]) - 1):+.1f}% against the default VAEImputer's "
          f"and {100 * (np.median([r[m][0] / r['ii_et'][0] for r in imp]) - 1):+.1f}% against the ExtraTrees "
          f"IterativeImputer's, in a median {np.median([r[m + '_seconds'] / r['vae_seconds'] for r in imp]):.1f}x "
          "the default's time." for m in IWAE_DRAWS),
    ]


def reserve_draw(reserve, n):
    """The first n of the reserve (sorted by name in suite.json) in RESERVE_SEED's order."""
    order = np.random.default_rng(RESERVE_SEED).permutation(len(reserve))
    return [reserve[i] for i in order[:n]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("evaluation", "tuning", "both", "reserve"), default="evaluation")
    parser.add_argument("--n-reserve", type=int, default=8, help="with --part reserve: how many reserve tables")
    parser.add_argument("--density-only", action="store_true", help="the density rows only, no imputation")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 tables, 1 split, 20%% missing, 1 mask")
    parser.add_argument("--tables", nargs="+", default=None, help="only these tables (package/item)")
    parser.add_argument("--cache", default=None, help="JSON file keeping results between runs (resume)")
    parser.add_argument("--out", default=None, help="write the Markdown report here")
    args = parser.parse_args()
    with open(os.path.join(HERE, "suite.json")) as f:
        split = json.load(f)
    names = {"evaluation": split["evaluation"], "tuning": split["tuning"],
             "both": split["tuning"] + split["evaluation"],
             "reserve": reserve_draw(split["reserve"], args.n_reserve)}[args.part]
    if args.tables:
        names = [n for n in names if n in args.tables]
    args.splits, args.rates, args.masks = SPLITS, () if args.density_only else RATES, MASKS
    if args.quick:
        names, args.splits, args.rates, args.masks = names[:2], SPLITS[:1], (0.2,), MASKS[:1]
    results = {}
    if args.cache and os.path.exists(args.cache):
        with open(args.cache) as f:
            results = json.load(f)
    started = time.perf_counter()
    key = f"{names[0]}|units_check"
    if key not in results:
        results[key] = units_check(suite.load_table(names[0])[0])
        results["seconds"] = results.get("seconds", 0.0) + time.perf_counter() - started
    print(f"units check: {results[key]}", flush=True)
    run(names, args.splits, args.rates, args.masks, results, args.cache)
    wall = time.perf_counter() - started
    print(f"{wall / 60:.1f} minutes this run, {results['seconds'] / 60:.1f} minutes of computing in all", flush=True)
    if args.out:
        write_markdown(args.out, results, names, args.part, args, results[key])


if __name__ == "__main__":
    main()
