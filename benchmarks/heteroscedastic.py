"""likelihood="gaussian_heteroscedastic" (a variance per row from the decoder) and training on the
importance-weighted bound (objective="iwae") against the default VAE, FactorAnalysis and
GaussianMixture: on scikit-learn's digits, and on the suite.

Digits: ``load_digits().data`` as shipped (1797 x 64, raw 0..16), 75/25 splits for
the seeds in DIGITS_SPLITS; held-out ``score_samples(X_test, n_importance=500)``
in nats per row of the raw data for ``VAE(n_components=k)`` with each setting of
DIGITS_SETTINGS; ``FactorAnalysis(k, tol=1e-8, max_iter=10000)`` for k in
DIGITS_FA_K on the standardized split with the log-Jacobian (benchmarks/evaluate.py).

Suite: benchmarks/evaluate.py's ``density_split`` (FactorAnalysis,
GaussianMixture by BIC, the default VAE) on every table and split, and beside it
the VAE with each setting of SUITE_SETTINGS (heteroscedastic, IWAE-trained with
K = 5 draws per row, both), same k and seed, scored the same way. The setting is
chosen on the suite's tuning part (median gap to GaussianMixture) and reported on
the evaluation part. ``--cache FILE`` keeps every model's score per split: a
setting added here is computed alone, the others are read back.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/heteroscedastic.py \
        --out benchmarks/HETEROSCEDASTIC.md --cache benchmarks/heteroscedastic.json
    python benchmarks/heteroscedastic.py --quick   # 2 tables a part, 1 split, 1 digits seed
"""

import argparse
import json
import os
import platform
import time

import evaluate  # sets one thread per process before NumPy loads; puts pyvae on the path
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import pyvae
import sklearn
import suite
from evaluate import N_IMPORTANCE, SPLITS, density_split, fit_fa, latent_dimensions, mean_sd, standardizer, timed
from pyvae import VAE

HERE = evaluate.HERE
DIGITS_SPLITS = (0, 1, 2)
DIGITS_K = 10
DIGITS_FA_K = (10, 20)
SUITE_SETTINGS = {
    "hetero": dict(likelihood="gaussian_heteroscedastic"),
    "hetero_floor": dict(likelihood="gaussian_heteroscedastic", variance_floor=1e-2),
    "iwae": dict(objective="iwae", n_mc_samples=5),
    "hetero_iwae": dict(likelihood="gaussian_heteroscedastic", objective="iwae", n_mc_samples=5),
}
SUITE_NAMES = {"hetero": "VAE heteroscedastic", "hetero_floor": "VAE heteroscedastic, variance_floor=1e-2",
               "iwae": "VAE trained on IWAE (K=5)", "hetero_iwae": "VAE heteroscedastic, trained on IWAE (K=5)"}
DIGITS_SETTINGS = {"VAE (default Gaussian)": dict(), **{SUITE_NAMES[m]: s for m, s in SUITE_SETTINGS.items()}}


def vae_score(settings, k, seed, X_train, X_test):
    """Held-out nats per row of a VAE(n_components=k, **settings) fitted on X_train; NaN where training diverged
    (the estimator refuses the fit; the table says so rather than losing the other splits)."""
    try:
        vae, seconds, warned = timed(lambda: VAE(n_components=k, random_state=seed, n_threads=1, **settings)
                                     .fit(X_train))
    except FloatingPointError as error:
        return dict(score=float("nan"), median=float("nan"), worst=float("nan"), diverged=str(error))
    scores = vae.score_samples(X_test, n_importance=N_IMPORTANCE)
    return dict(score=float(scores.mean()), median=float(np.median(scores)), worst=float(scores.min()),
                seconds=seconds, epochs=int(vae.n_iter_), warned=warned)


def digits_split(seed, out):
    """Complete `out` (a split's results so far, by model name) with every model it lacks."""
    X = load_digits().data
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=seed)
    mean, scale = standardizer(X_train)
    jacobian = -np.log(scale).sum()
    for k in DIGITS_FA_K:
        if f"FactorAnalysis (k={k})" in out:
            continue
        fa, seconds, warned = timed(lambda: fit_fa((X_train - mean) / scale, k))
        scores = fa.score_samples((X_test - mean) / scale) + jacobian
        out[f"FactorAnalysis (k={k})"] = dict(score=float(scores.mean()), median=float(np.median(scores)),
                                              worst=float(scores.min()), seconds=seconds, warned=warned,
                                              iterations=int(fa.n_iter_))
    for name, settings in DIGITS_SETTINGS.items():
        if name not in out:
            out[name] = vae_score(settings, DIGITS_K, seed, X_train, X_test)
    return out


def suite_split(X, seed, out):
    """Complete `out` (a split's results so far) with density_split's models and each of SUITE_SETTINGS it lacks."""
    if not all(m in out for m in evaluate.DENSITY_MODELS):
        out.update(density_split(X, seed))
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=seed)
    for key, settings in SUITE_SETTINGS.items():
        if key not in out:
            out[key] = vae_score(settings, latent_dimensions(X.shape[1]), seed, X_train, X_test)
    return out


def cached(results, key, complete, cache_path):
    """results[key] completed by complete(the models it holds so far): a model added to the script is computed
    on its own, the cached ones are kept."""
    held = dict(results.get(key, {}))
    started = time.perf_counter()
    completed = complete(dict(held))
    if completed.keys() != held.keys():
        results[key] = completed
        results["seconds"] = results.get("seconds", 0.0) + time.perf_counter() - started
        if cache_path:
            with open(cache_path, "w") as f:
                json.dump(results, f)
    return results[key]


def suite_rows(results, names, splits):
    """Per table: each model's mean score and the gap of each VAE to GaussianMixture and FactorAnalysis."""
    rows = []
    for name in names:
        runs = [results[f"{name}|{s}"] for s in splits]
        row = dict(name=name, shape=results[f"{name}|shape"])
        for m in ("fa", "gmm", "vae", *SUITE_SETTINGS):
            row[m] = mean_sd([r[m]["score"] for r in runs])[0]
        for m in ("vae", *SUITE_SETTINGS):
            # A split whose training diverged (NaN) makes the table a loss, the worst gap there is.
            row[m + "_gmm"] = _worst_if_nan(np.mean([r[m]["score"] - r["gmm"]["score"] for r in runs]))
            row[m + "_fa"] = _worst_if_nan(np.mean([r[m]["score"] - r["fa"]["score"] for r in runs]))
        rows.append(row)
    return rows


def _worst_if_nan(gap):
    return -np.inf if np.isnan(gap) else float(gap)


def _cell(value, sign=""):
    """A score or gap for the tables; "diverged" where a split's training diverged."""
    return f"{value:{sign}.3f}" if np.isfinite(value) else "diverged"


def summary(rows, model):
    gaps = np.array([r[model + "_gmm"] for r in rows])
    fa = np.array([r[model + "_fa"] for r in rows])
    return dict(median_gmm=float(np.median(gaps)), wins_gmm=int((gaps > 0).sum()), median_fa=float(np.median(fa)),
                wins_fa=int((fa > 0).sum()), n=len(rows))


def write_markdown(path, results, parts, args, chosen):
    lines = [
        "# A decoder whose noise depends on z (likelihood=\"gaussian_heteroscedastic\") and training on the "
        "importance-weighted bound (objective=\"iwae\")",
        "",
        f"`python benchmarks/heteroscedastic.py --out {os.path.relpath(path, os.path.join(HERE, '..'))}"
        f"{' --cache ' + os.path.relpath(args.cache, os.path.join(HERE, '..')) if args.cache else ''}"
        f"{' --quick' if args.quick else ''}` on {platform.machine()} (2 cores shared with other jobs), pyvae "
        f"{pyvae.__version__}, scikit-learn {sklearn.__version__}, {time.strftime('%Y-%m-%d')}; "
        f"{results['seconds'] / 60:.1f} minutes of computing in all, one thread everywhere. The protocol is the "
        "script's docstring. Scores: held-out log-likelihood in nats per row of the raw data (higher is better); "
        f"the VAEs' are importance-weighted bounds with K = {N_IMPORTANCE}.",
        "",
        "## scikit-learn's digits as shipped",
        "",
        f"1797 x 64, raw 0..16; seeded 75/25 splits {list(args.digits_splits)}; VAE n_components={DIGITS_K}, "
        "every other setting at its default. Per split: the mean over the test rows (the median row and the "
        "worst row in brackets). A mean over splits is not shown: one test row can dominate it (see below).",
        "",
        "| model | " + " | ".join(f"split {s}: mean (median, worst)" for s in args.digits_splits) + " | fit s |",
        "|---" * (2 + len(args.digits_splits)) + "|",
    ]
    digits = [results[f"digits|{s}"] for s in args.digits_splits]
    for name in digits[0]:
        lines.append(f"| {name} | " + " | ".join("training diverged" if "diverged" in d[name] else
                                                   f"{d[name]['score']:.2f} ({d[name]['median']:.2f}, "
                                                   f"{d[name]['worst']:.4g})" for d in digits)
                     + f" | {np.mean([d[name]['seconds'] for d in digits if 'seconds' in d[name]]):.1f} |")
    lines.append("")
    fa_names = [n for n in digits[0] if n.startswith("FactorAnalysis")]
    for name in (n for n in digits[0] if n.startswith("VAE")):
        gaps = [d[name]["score"] - max(d[n]["score"] for n in fa_names) for d in digits]
        lines.append(f"- {name} minus the better FactorAnalysis of the split, per split: "
                     + ", ".join("diverged" if np.isnan(g) else f"{g:+.4g}" for g in gaps)
                     + f" nats/row ({sum(g > 0 for g in gaps)} of {len(gaps)} splits ahead).")
    lines += [f"- {n}, split {seed}: \"{d[n]['diverged']}\"" for seed, d in zip(args.digits_splits, digits)
              for n in d if "diverged" in d[n]]
    lines += ["", "The digits' pixels are integers, and many are exactly 0 in most images: a continuous density "
              "gains by concentrating on such values. A variance per feature can only do so everywhere (a nearly "
              "blank pixel gets a tiny variance, and a test image with ink there scores in the thousands below "
              "the median: the worst-row column); a variance per row can do so where z says the pixel is blank. "
              "variance_floor (standardized units) bounds how far either goes. FactorAnalysis has no such bound: "
              "a pixel that is 0 in every training image gets a noise variance near 0, and a test image with ink "
              "there scores near -1e11.", ""]
    for part in parts:
        names, rows = args.names[part], suite_rows(results, args.names[part], args.splits)
        lines += [f"## The suite's {part} part ({len(names)} tables)", "",
                  "Gap: a VAE's score minus GaussianMixture's per split, averaged (positive: the VAE is better).", "",
                  "| table | rows x cols | FA | GMM | VAE | " + " | ".join(SUITE_NAMES[m] for m in SUITE_SETTINGS)
                  + " | VAE - GMM | " + " | ".join(f"{SUITE_NAMES[m]} - GMM" for m in SUITE_SETTINGS) + " |",
                  "|---" * (6 + 2 * len(SUITE_SETTINGS)) + "|"]
        for r in rows:
            lines.append(f"| {r['name']} | {r['shape'][0]} x {r['shape'][1]} | {r['fa']:.3f} | {r['gmm']:.3f} | "
                         f"{_cell(r['vae'])} | " + " | ".join(_cell(r[m]) for m in SUITE_SETTINGS)
                         + f" | {_cell(r['vae_gmm'], '+')} | "
                         + " | ".join(_cell(r[m + '_gmm'], '+') for m in SUITE_SETTINGS) + " |")
        lines += ["", "| model | median gap to GMM | wins over GMM | median gap to FA | wins over FA | "
                  "median gap to the default VAE | wins over it |", "|---|---|---|---|---|---|---|"]
        for m in ("vae", *SUITE_SETTINGS):
            s = summary(rows, m)
            label = "VAE (default)" if m == "vae" else SUITE_NAMES[m]
            to_default = np.array([_worst_if_nan(r[m] - r["vae"]) for r in rows])
            lines.append(f"| {label} | {_cell(s['median_gmm'], '+')} | {s['wins_gmm']} of {s['n']} | "
                         f"{_cell(s['median_fa'], '+')} | {s['wins_fa']} of {s['n']} | "
                         + (" | " if m == "vae" else
                            f"{_cell(np.median(to_default), '+')} | {(to_default > 0).sum()} of {s['n']}") + " |")
        lines.append("")
        lines += [f"- {SUITE_NAMES.get(m, m)}, {name} split {seed}: \"{results[f'{name}|{seed}'][m]['diverged']}\""
                  for name in names for seed in args.splits for m in SUITE_SETTINGS
                  if "diverged" in results[f"{name}|{seed}"][m]]
        lines += ["A table where a split's training diverged counts as a loss, below every other gap in the "
                  "medians." if any("diverged" in results[f"{name}|{seed}"][m] for name in names
                                    for seed in args.splits for m in SUITE_SETTINGS) else "", ""]
    if chosen:
        lines += ["## Chosen on the tuning part", "", chosen, ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 tables a part, 1 split, 1 digits seed")
    parser.add_argument("--cache", default=None, help="JSON file keeping results between runs (resume)")
    parser.add_argument("--out", default=None, help="write the Markdown report here")
    args = parser.parse_args()
    with open(os.path.join(HERE, "suite.json")) as f:
        split = json.load(f)
    parts = ("tuning", "evaluation")
    args.names = {part: split[part] for part in parts}
    args.splits, args.digits_splits = SPLITS, DIGITS_SPLITS
    if args.quick:
        args.names = {part: names[:2] for part, names in args.names.items()}
        args.splits, args.digits_splits = SPLITS[:1], DIGITS_SPLITS[:1]
    results = {}
    if args.cache and os.path.exists(args.cache):
        with open(args.cache) as f:
            results = json.load(f)
    started = time.perf_counter()
    for seed in args.digits_splits:
        d = cached(results, f"digits|{seed}", lambda held: digits_split(seed, held), args.cache)
        print(f"digits split {seed}: " + "  ".join(f"{n} {v['score']:.2f}" for n, v in d.items()), flush=True)
    for part in parts:
        for name in args.names[part]:
            X, _ = suite.load_table(name)
            results[f"{name}|shape"] = list(X.shape)
            for seed in args.splits:
                r = cached(results, f"{name}|{seed}", lambda held: suite_split(X, seed, held), args.cache)
                print(f"{part:10s} {name:28s} split {seed}: FA {r['fa']['score']:9.3f}  GMM {r['gmm']['score']:9.3f}"
                      f"  VAE {r['vae']['score']:9.3f}  " + "  ".join(f"{m} {r[m]['score']:9.3f}" for m in SUITE_SETTINGS),
                      flush=True)
    tuning = suite_rows(results, args.names["tuning"], args.splits)
    medians = {m: summary(tuning, m)["median_gmm"] for m in ("vae", *SUITE_SETTINGS)}
    best = max(SUITE_SETTINGS, key=medians.get)
    chosen = (f"Median gap to GaussianMixture on the tuning part: default VAE {_cell(medians['vae'], '+')}, "
              + ", ".join(f"{SUITE_NAMES[m]} {_cell(medians[m], '+')}" for m in SUITE_SETTINGS)
              + f". Chosen: {SUITE_NAMES[best]}"
              + (" (better than the default there)." if medians[best] > medians["vae"] else
                 " (not better than the default there)."))
    print(chosen, flush=True)
    print(f"{(time.perf_counter() - started) / 60:.1f} minutes this run", flush=True)
    if args.out:
        write_markdown(args.out, results, parts, args, chosen)


if __name__ == "__main__":
    main()
