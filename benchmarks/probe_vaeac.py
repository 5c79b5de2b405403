"""A probe, not a feature: would a VAE with arbitrary conditioning close VAEImputer's gap to ExtraTrees?

VAEImputer's decoder sees only z: whatever a missing entry depends on must pass
through a few noisy latent dimensions, and on tables holding near-lookups
(heplots/Oslo's altitude is a function of the grid coordinates) IterativeImputer
with ExtraTrees stays ahead (benchmarks/TUNE_IMPUTER.md, EVALUATION.md). The VAE
with arbitrary conditioning (VAEAC: Ivanov, Figurnov and Vetrov, "Variational
Autoencoder with Arbitrary Conditioning", ICLR 2019) is a VAE made for that
task: a prior network p(z | x_o) sees the observed entries, a proposal network
q(z | x) everything observed, and the decoder p(x_m | z, x_o) sees z and the
observed entries. Training hides a further share of each row's observed entries
from the prior and the decoder (``drop``) and maximizes the bound
E_q[log p(x_hidden | z, x_known)] - KL(q || p(z | x_known)), reconstructing
only the entries it hid. A fill decodes K draws from the prior network given
every observed entry and averages them.

Written here in PyTorch (a benchmark peer, never a dependency of pyvae) to
measure the model before anyone builds it in the C++ core: same tables, masks
and RMSE as benchmarks/tune_imputer.py (the suite's tuning part only, mask seed
0, 10/20/30% missing), compared with its cached IterativeImputer rows and
VAEImputer's default. One thread; the times are PyTorch's and say nothing
about what the model would cost in the core, so the cost column is the
multiply-adds of a row's forward pass through the trained networks over
VAEImputer's default's (its encoder and decoder, the same measure). The
last candidate is the model as then built in the core (pyvae's
ConditionalVAEImputer at its defaults, the settings of the best one here): the
same tables through pyvae, to check the port.

    python benchmarks/probe_vaeac.py --out benchmarks/PROBE_VAEAC.md   # about 35 minutes on 2 cores
"""

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evaluate  # noqa: E402
import suite  # noqa: E402
import tune_imputer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PYVAE = "pyvae ConditionalVAEImputer()"
BASE = dict(hidden=128, layers=1, epochs=300, learning_rate=3e-3, drop=0.2, draws=20)
# name -> changes to BASE. Optimizer as VAEImputer's default: Adam, the step size falling linearly to 0,
# its batch size rule; latent size VAEImputer's (d // 2, 1 to 10).
CANDIDATES = {
    "VAEAC 1x128 e300": {},
    "VAEAC 1x128 e300 drop0.5": dict(drop=0.5),
    "VAEAC 2x128 e300": dict(layers=2),
    "VAEAC 2x256 e600": dict(layers=2, hidden=256, epochs=600),
    # The same model as built in the core afterwards, at its defaults (the settings of the line above).
    PYVAE: dict(layers=2, hidden=256, epochs=600),
}
REFERENCE = tune_imputer.CHOSEN_REFINED  # VAEImputer's default, its rows cached by tune_imputer.py


def networks(d, k, settings):
    """(prior, proposal, decoder) MLPs with tanh hidden layers."""
    import torch

    def mlp(n_in, n_out):
        layers, n = [], n_in
        for _ in range(settings["layers"]):
            layers += [torch.nn.Linear(n, settings["hidden"]), torch.nn.Tanh()]
            n = settings["hidden"]
        return torch.nn.Sequential(*layers, torch.nn.Linear(n, n_out))
    # prior: [x_known, known]; proposal: [x_observed, observed, known]; decoder: [z, x_known, known]
    return mlp(2 * d, 2 * k), mlp(3 * d, 2 * k), mlp(k + 2 * d, d)


def multiply_adds(modules):
    return sum(m.in_features * m.out_features for net in modules for m in net if hasattr(m, "in_features"))


def vaeac_fill(X_missing, settings, seed=0):
    """X_missing with its NaNs filled by a VAEAC trained on it; and the networks' multiply-adds per row."""
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    n, d = X_missing.shape
    observed = ~np.isnan(X_missing)
    mean, scale = np.nanmean(X_missing, axis=0), np.nanstd(X_missing, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    X = torch.tensor(np.where(observed, (X_missing - mean) / scale, 0.0), dtype=torch.float32)
    M = torch.tensor(observed, dtype=torch.float32)
    k = max(1, min(10, d // 2))
    prior, proposal, decoder = networks(d, k, settings)
    log_sigma = torch.nn.Parameter(torch.zeros(d))  # the decoder's noise scale per column, learned
    params = [*prior.parameters(), *proposal.parameters(), *decoder.parameters(), log_sigma]
    optimizer = torch.optim.Adam(params, lr=settings["learning_rate"])
    batch = min(128, max(8, n // 16))
    steps = settings["epochs"] * -(-n // batch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / steps))

    def gaussian(net, inputs):
        out = net(torch.cat(inputs, 1))
        return out[:, :k], out[:, k:].clamp(-10, 10)

    for _ in range(settings["epochs"]):
        order = torch.randperm(n)
        for start in range(0, n, batch):
            rows = order[start:start + batch]
            x, m = X[rows], M[rows]
            hidden = (torch.rand_like(m) < settings["drop"]).float() * m
            known = m - hidden
            mu_p, logvar_p = gaussian(prior, [x * known, known])
            mu_q, logvar_q = gaussian(proposal, [x * m, m, known])
            z = mu_q + torch.exp(0.5 * logvar_q) * torch.randn_like(mu_q)
            x_hat = decoder(torch.cat([z, x * known, known], 1))
            nll = 0.5 * ((x - x_hat) / torch.exp(log_sigma)) ** 2 + log_sigma
            kl = 0.5 * (logvar_p - logvar_q + (torch.exp(logvar_q) + (mu_q - mu_p) ** 2) / torch.exp(logvar_p) - 1)
            loss = ((nll * hidden).sum(1) + kl.sum(1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    with torch.no_grad():
        mu_p, logvar_p = gaussian(prior, [X * M, M])
        draws = [decoder(torch.cat([mu_p + torch.exp(0.5 * logvar_p) * torch.randn_like(mu_p), X * M, M], 1))
                 for _ in range(settings["draws"])]
        filled = (sum(draws) / len(draws)).double().numpy() * scale + mean
    return np.where(observed, X_missing, filled), multiply_adds((prior, proposal, decoder))


def default_multiply_adds(X_missing):
    """Multiply-adds per row of VAEImputer's default's encoder and decoder, from its fitted weights."""
    from pyvae import VAEImputer
    vae = VAEImputer(max_iter=1, random_state=0).fit(X_missing).vae_
    sizes = [vae.n_features_in_, *vae.hidden_layer_sizes, 2 * vae.n_components]
    decoder = [vae.n_components, *reversed(vae.hidden_layer_sizes), vae.n_features_in_]
    return sum(a * b for a, b in zip(sizes, sizes[1:])) + sum(a * b for a, b in zip(decoder, decoder[1:]))


def run_candidate(name):
    names = json.load(open(os.path.join(HERE, "suite.json")))["tuning"]
    settings, rows = {**BASE, **CANDIDATES[name]}, {}
    for table in names:
        X, _ = suite.load_table(table)
        for rate in tune_imputer.RATES:
            X_missing, hidden = evaluate.hide(X, rate, tune_imputer.MASK)
            scale = X.std(axis=0)
            scale = np.where(scale > 0, scale, 1.0)
            started = time.perf_counter()
            if name == PYVAE:
                from pyvae import ConditionalVAEImputer
                imputer = ConditionalVAEImputer(random_state=0, n_threads=1)
                filled = imputer.fit_transform(X_missing)
                d, k, widths = X.shape[1], imputer.n_components_, list(imputer.hidden_layer_sizes)
                work = sum(sum(a * b for a, b in zip([n_in, *widths], [*widths, n_out]))
                           for n_in, n_out in ((2 * d, 2 * k), (3 * d, 2 * k), (k + 2 * d, d)))
            else:
                filled, work = vaeac_fill(X_missing, settings)
            seconds = time.perf_counter() - started
            rmse = float(np.sqrt(np.mean((((filled - X) / scale)[hidden]) ** 2)))
            rows[f"{table}|{rate}"] = [rmse, seconds, work / default_multiply_adds(X_missing)]
            print(f"{name} {table} {rate}: {rmse:.3f} ({seconds:.1f} s)", flush=True)
    return name, rows


def write_markdown(path, results):
    tuned = json.load(open(os.path.join(HERE, "tune_imputer.json")))
    names = json.load(open(os.path.join(HERE, "suite.json")))["tuning"]
    keys = [f"{t}|{r}" for t in names for r in tune_imputer.RATES]
    best = {key: min(tuned[f"{key}|ii_br"][0], tuned[f"{key}|ii_et"][0]) for key in keys}
    columns = {REFERENCE: {key: tuned[f"{key}|{REFERENCE}"][0] for key in keys}}
    columns.update({name: {key: rows[key][0] for key in keys} for name, rows in results.items()})
    lines = ["# Probe: a VAE with arbitrary conditioning (VAEAC) as the imputer's model", "",
             f"`python benchmarks/probe_vaeac.py --out benchmarks/PROBE_VAEAC.md` (the protocol is its docstring; "
             "results in benchmarks/probe_vaeac.json). The suite's tuning part only, mask seed 0. RMSE on the hidden "
             "entries in standardized units; a ratio is over the better IterativeImputer (BayesianRidge or "
             "ExtraTrees, benchmarks/tune_imputer.json), below 1 is better. "
             f"\"VAEImputer\" is its default (`{REFERENCE}` in TUNE_IMPUTER.md). Settings shared by every VAEAC: "
             f"{json.dumps(BASE)}.", "",
             "| candidate | within 10% of best Iterative | median / worst ratio | beats best Iterative | "
             "multiply-adds per row vs VAEImputer (median over tables) |", "|---|---|---|---|---|"]
    for name, col in columns.items():
        ratios = np.array([col[key] / best[key] for key in keys])
        work = "1.0x" if name == REFERENCE else f"{np.median([results[name][key][2] for key in keys]):.1f}x"
        label = "VAEImputer (default)" if name == REFERENCE else name
        lines.append(f"| {label} | {int((ratios <= 1.1).sum())}/{len(keys)} | {np.median(ratios):.3f} / "
                     f"{ratios.max():.3f} | {int((ratios < 1).sum())}/{len(keys)} | {work} |")
    lines += ["", "Every row: RMSE (ratio to the better IterativeImputer).", "",
              "| table | missing | BayesianRidge | ExtraTrees | " + " | ".join(
                  "VAEImputer" if n == REFERENCE else n for n in columns) + " |",
              "|---|---|---|---|" + "---|" * len(columns)]
    for key in keys:
        table, rate = key.split("|")
        cells = [f"{col[key]:.3f} ({col[key] / best[key]:.3f})" for col in columns.values()]
        lines.append(f"| {table} | {float(rate):.0%} | {tuned[f'{key}|ii_br'][0]:.3f} | "
                     f"{tuned[f'{key}|ii_et'][0]:.3f} | " + " | ".join(cells) + " |")
    open(path, "w").write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(HERE, "PROBE_VAEAC.md"))
    parser.add_argument("--cache", default=os.path.join(HERE, "probe_vaeac.json"))
    parser.add_argument("--jobs", type=int, default=2, help="candidates run at once, each in its own process")
    args = parser.parse_args()
    results = json.load(open(args.cache)) if os.path.exists(args.cache) else {}
    cost = lambda name: (lambda s: s["epochs"] * s["layers"] * s["hidden"])({**BASE, **CANDIDATES[name]})
    todo = sorted((name for name in CANDIDATES if name not in results), key=cost, reverse=True)  # longest first
    with ProcessPoolExecutor(args.jobs) as pool:
        for name, rows in pool.map(run_candidate, todo):
            results[name] = rows
            json.dump(results, open(args.cache, "w"), indent=0)
    write_markdown(args.out, {name: results[name] for name in CANDIDATES})


if __name__ == "__main__":
    main()
