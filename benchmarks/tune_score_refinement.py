"""How many refinement steps the evaluation's density scores take, chosen on the suite's tuning part only.

benchmarks/evaluate.py scores the default VAE on held-out rows with the
importance-weighted bound (K = 500), a lower bound on log p(x) whatever the
proposal. The encoder's q(z | x) is one network for every row, and for a test
row unlike the training rows it can sit far from the row's best q: the bound
then falls far below log p(x) (the amortization gap), and one such row can move
a table's mean by nats. ``score_samples(..., refine_steps=n)`` first moves each
row's q by n Adam steps on the row's own ELBO; the bound stays a lower bound.

Here, on every tuning table of benchmarks/suite.json and the evaluation's
splits (evaluate.SPLITS), the default VAE (``VAE(n_components=k)``, k as in
evaluate.py) is scored with each candidate number of steps, beside converged
FactorAnalysis. Rule: the fewest steps whose mean over all splits is within
0.01 nats/row of the best candidate's; evaluate.py uses it. One thread.

    python benchmarks/tune_score_refinement.py --out benchmarks/TUNE_SCORE_REFINEMENT.md
"""

import argparse
import json
import os
import sys
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evaluate  # noqa: E402
import suite  # noqa: E402

from pyvae import VAE  # noqa: E402

STEPS = (0, 20, 50, 100, 200, 500)
TOLERANCE = 0.01  # nats per row


def split_scores(X, seed):
    """{steps: (mean score, seconds)} of the default VAE on one split, and FactorAnalysis's score."""
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=seed)
    k = evaluate.latent_dimensions(X.shape[1])
    mean, scale = evaluate.standardizer(X_train)
    fa = evaluate.fit_fa((X_train - mean) / scale, k).score((X_test - mean) / scale) - np.log(scale).sum()
    vae = VAE(n_components=k, random_state=seed, n_threads=1).fit(X_train)
    out = {"fa": float(fa)}
    for steps in STEPS:
        started = time.perf_counter()
        score = vae.score_samples(X_test, n_importance=evaluate.N_IMPORTANCE, refine_steps=steps).mean()
        out[str(steps)] = (float(score), time.perf_counter() - started)
    return out


def choose(results):
    """(the chosen steps, the mean score per candidate over every split)."""
    means = {steps: np.mean([r[str(steps)][0] for r in results.values()]) for steps in STEPS}
    best = max(means.values())
    return min(s for s in STEPS if means[s] >= best - TOLERANCE), means


def write_markdown(path, results, names):
    chosen, means = choose(results)
    lines = ["# Refinement steps for the evaluation's density scores, chosen on the suite's tuning part", "",
             "`python benchmarks/tune_score_refinement.py --out benchmarks/TUNE_SCORE_REFINEMENT.md` (the protocol "
             f"and the rule are its docstring; results cached in benchmarks/tune_score_refinement.json). Tables: the "
             f"{len(names)} of the tuning part (benchmarks/SUITE.md), splits {list(evaluate.SPLITS)}; "
             f"`VAE(n_components=k)` at its defaults scored with `score_samples(X_test, "
             f"n_importance={evaluate.N_IMPORTANCE}, refine_steps=n)`; each cell the VAE's mean score minus "
             "converged FactorAnalysis's on that split (nats per row, positive: the VAE higher).", "",
             "| table | split | " + " | ".join(f"n = {s}" for s in STEPS) + " |",
             "|---|---|" + "---|" * len(STEPS)]
    for key, r in results.items():
        table, seed = key.rsplit("|", 1)
        lines.append(f"| {table} | {seed} | " + " | ".join(f"{r[str(s)][0] - r['fa']:+.3f}" for s in STEPS) + " |")
    gaps = {s: np.array([r[str(s)][0] - r["fa"] for r in results.values()]) for s in STEPS}
    seconds = {s: np.median([r[str(s)][1] for r in results.values()]) for s in STEPS}
    lines += ["", "| n | mean score - FA | median | worst split | splits more than 0.5 behind | median seconds to score |",
              "|---|---|---|---|---|---|"]
    for s in STEPS:
        lines.append(f"| {s} | {gaps[s].mean():+.3f} | {np.median(gaps[s]):+.3f} | {gaps[s].min():+.3f} | "
                     f"{int((gaps[s] < -0.5).sum())} | {seconds[s]:.2f} |")
    lines += ["", f"Chosen (the fewest steps within {TOLERANCE} nats/row of the best mean): **{chosen}** "
              f"(mean score {means[chosen]:.3f} against the best {max(means.values()):.3f}); "]
    used = evaluate.SCORE_REFINE_STEPS
    if chosen == used:
        lines[-1] += "benchmarks/evaluate.py scores with it."
    else:
        # The rule first ran on the VAE that only standardized (this file at commit ee1e292).
        lines[-1] += (f"benchmarks/evaluate.py scores with {used}, the rule's choice when it first ran (on the "
                      "default VAE before the power transform, whose worst split was -37.219 with no steps and "
                      f"-4.502 with 500): {used} steps score {means[used] - means[chosen]:+.3f} nats/row against "
                      f"{chosen} on average here, a bound at least as tight.")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    warnings.simplefilter("ignore", ConvergenceWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=os.path.join(os.path.dirname(__file__), "tune_score_refinement.json"))
    parser.add_argument("--out")
    args = parser.parse_args()
    results = json.load(open(args.cache)) if os.path.exists(args.cache) else {}
    names = json.load(open(os.path.join(os.path.dirname(__file__), "suite.json")))["tuning"]
    for table in names:
        X, _ = suite.load_table(table)
        for seed in evaluate.SPLITS:
            key = f"{table}|{seed}"
            if key not in results:
                results[key] = split_scores(X, seed)
                json.dump(results, open(args.cache, "w"), indent=0)
            r = results[key]
            print(f"{table:26s} {seed} " + " ".join(f"{r[str(s)][0] - r['fa']:+8.3f}" for s in STEPS), flush=True)
    print("chosen:", choose(results)[0])
    if args.out:
        write_markdown(args.out, results, names)


if __name__ == "__main__":
    main()
