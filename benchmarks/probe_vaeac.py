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
pyvae row is the model as then built in the core (pyvae's
ConditionalVAEImputer at its defaults, the settings of the best one here): the
same tables through pyvae, to check the port. Two later candidates, each a
change to the best one tried before making it an option or a default: the
piecewise-linear encoding of the observed values (``bins``, pyvae's
``n_bins``) and early stopping on a held-out tenth of the observed entries
(``validation``).

    python benchmarks/probe_vaeac.py --out benchmarks/PROBE_VAEAC.md   # ~35 minutes per pair of candidates, 2 cores
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
BASE = dict(hidden=128, layers=1, epochs=300, learning_rate=3e-3, drop=0.2, draws=20, bins=0, validation=0.0)
# name -> changes to BASE. Optimizer as VAEImputer's default: Adam, the step size falling linearly to 0,
# its batch size rule; latent size VAEImputer's (d // 2, 1 to 10).
CANDIDATES = {
    "VAEAC 1x128 e300": {},
    "VAEAC 1x128 e300 drop0.5": dict(drop=0.5),
    "VAEAC 2x128 e300": dict(layers=2),
    "VAEAC 2x256 e600": dict(layers=2, hidden=256, epochs=600),
    # The same model as built in the core afterwards, at its defaults (the settings of the line above).
    PYVAE: dict(layers=2, hidden=256, epochs=600),
    # The networks see each observed value through a piecewise-linear encoding on its column's quantiles
    # (Gorishniy, Rubachev and Babenko, "On Embeddings for Numerical Features in Tabular Deep Learning",
    # NeurIPS 2022): a step in one value, which a tree takes in one split, is one input unit here.
    "VAEAC 2x256 e600 PLE8": dict(layers=2, hidden=256, epochs=600, bins=8),
    # Early stopping: a tenth of the observed entries held out of training, the networks kept at the epoch
    # (checked every 20) whose fill of them was best; they rejoin the observed entries for the final fill.
    "VAEAC 2x256 e600 val0.1": dict(layers=2, hidden=256, epochs=600, validation=0.1),
}
REFERENCE = tune_imputer.CHOSEN_REFINED  # VAEImputer's default, its rows cached by tune_imputer.py


def piecewise_linear_encoding(X, observed, bins):
    """(n, F) encoding of X's columns on their observed quantiles, and the (F,) column of each feature.

    Feature t of column j is 0 below its bin, 1 above it, linear inside; a column with fewer distinct values
    gets fewer bins (a binary one a single feature, the value itself up to scale)."""
    features, column_of = [], []
    for j in range(X.shape[1]):
        edges = np.unique(np.quantile(X[observed[:, j], j], np.linspace(0, 1, bins + 1)))
        if len(edges) < 2:
            features.append(np.zeros((len(X), 1)))
            column_of.append(j)
            continue
        lower, upper = edges[:-1], edges[1:]
        features.append(np.clip((X[:, j:j + 1] - lower) / (upper - lower), 0.0, 1.0))
        column_of += [j] * len(lower)
    return np.hstack(features), np.array(column_of)


def networks(d, k, settings, width=None):
    """(prior, proposal, decoder) MLPs with tanh hidden layers; ``width`` is the encoded values' width."""
    import torch

    def mlp(n_in, n_out):
        layers, n = [], n_in
        for _ in range(settings["layers"]):
            layers += [torch.nn.Linear(n, settings["hidden"]), torch.nn.Tanh()]
            n = settings["hidden"]
        return torch.nn.Sequential(*layers, torch.nn.Linear(n, n_out))
    # prior: [x_known, known]; proposal: [x_observed, observed, known]; decoder: [z, x_known, known]
    e = d if width is None else width
    return mlp(e + d, 2 * k), mlp(e + 2 * d, 2 * k), mlp(k + e + d, d)


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
    if settings["bins"]:
        encoded, column_of = piecewise_linear_encoding(X.numpy().astype(np.float64), observed, settings["bins"])
        E = torch.tensor(encoded, dtype=torch.float32)
        spread = lambda mask: mask[:, column_of]
    else:
        E, spread = X, lambda mask: mask
    prior, proposal, decoder = networks(d, k, settings, E.shape[1])
    log_sigma = torch.nn.Parameter(torch.zeros(d))  # the decoder's noise scale per column, learned
    params = [*prior.parameters(), *proposal.parameters(), *decoder.parameters(), log_sigma]
    optimizer = torch.optim.Adam(params, lr=settings["learning_rate"])
    batch = min(128, max(8, n // 16))
    steps = settings["epochs"] * -(-n // batch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / steps))

    def gaussian(net, inputs):
        out = net(torch.cat(inputs, 1))
        return out[:, :k], out[:, k:].clamp(-10, 10)

    M_all = M
    if settings["validation"]:
        held = torch.tensor(np.random.default_rng(seed).random(observed.shape) < settings["validation"]) & (M > 0)
        M = M * ~held
    best = (np.inf, None)

    def fill(mask, draws):
        with torch.no_grad():
            mu_p, logvar_p = gaussian(prior, [E * spread(mask), mask])
            return sum(decoder(torch.cat([mu_p + torch.exp(0.5 * logvar_p) * torch.randn_like(mu_p),
                                          E * spread(mask), mask], 1)) for _ in range(draws)) / draws

    for epoch in range(settings["epochs"]):
        order = torch.randperm(n)
        for start in range(0, n, batch):
            rows = order[start:start + batch]
            x, e, m = X[rows], E[rows], M[rows]
            hidden = (torch.rand_like(m) < settings["drop"]).float() * m
            known = m - hidden
            mu_p, logvar_p = gaussian(prior, [e * spread(known), known])
            mu_q, logvar_q = gaussian(proposal, [e * spread(m), m, known])
            z = mu_q + torch.exp(0.5 * logvar_q) * torch.randn_like(mu_q)
            x_hat = decoder(torch.cat([z, e * spread(known), known], 1))
            nll = 0.5 * ((x - x_hat) / torch.exp(log_sigma)) ** 2 + log_sigma
            kl = 0.5 * (logvar_p - logvar_q + (torch.exp(logvar_q) + (mu_q - mu_p) ** 2) / torch.exp(logvar_p) - 1)
            loss = ((nll * hidden).sum(1) + kl.sum(1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        if settings["validation"] and ((epoch + 1) % 20 == 0 or epoch + 1 == settings["epochs"]):
            error = float(((fill(M, 5) - X)[held] ** 2).mean())
            if error < best[0]:
                best = (error, [p.detach().clone() for p in params])
    if best[1] is not None:
        with torch.no_grad():
            for p, kept in zip(params, best[1]):
                p.copy_(kept)
    filled = fill(M_all, settings["draws"]).double().numpy() * scale + mean
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
    cost = lambda name: (lambda s: s["epochs"] * s["layers"] * s["hidden"] * (1 + s["bins"]))(
        {**BASE, **CANDIDATES[name]})
    todo = sorted((name for name in CANDIDATES if name not in results), key=cost, reverse=True)  # longest first
    with ProcessPoolExecutor(args.jobs) as pool:
        for name, rows in pool.map(run_candidate, todo):
            results[name] = rows
            json.dump(results, open(args.cache, "w"), indent=0)
    write_markdown(args.out, {name: results[name] for name in CANDIDATES})


if __name__ == "__main__":
    main()
