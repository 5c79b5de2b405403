"""The CPU engine computes, bit for bit, what it computed when
tests/data/trajectory.json was recorded (see tests/trajectory.py).

A difference here means a change altered the numbers: a restructuring must
not; a change meant to alter them (a new default, a fixed bug) records the
file again with scripts/record-trajectory.py and says why in its commit.
"""

import json

import pytest

import trajectory


@pytest.fixture(scope="module")
def recorded():
    with open(trajectory.PATH, encoding="utf-8") as f:
        data = json.load(f)
    assert data["format"] == trajectory.FORMAT
    return data


@pytest.fixture(autouse=True)
def same_build(recorded):
    # Other optimization flags (the sanitizer build CI also runs) round sums
    # differently: bits recorded from a release build say nothing about them.
    build = trajectory.environment()["build"]
    if build != recorded["environment"]["build"]:
        pytest.skip(f"recorded from a {recorded['environment']['build']} build of the core; this one is {build}")


def test_every_case_is_recorded(recorded):
    assert sorted(recorded["cases"]) == sorted(trajectory.CASES)


@pytest.mark.parametrize("name", sorted(trajectory.CASES))
def test_trajectory_is_bit_identical(recorded, name):
    expected = recorded["cases"][name]
    assert expected["config"] == trajectory.case_config(name), "the case changed since it was recorded"
    got = trajectory.run(name)
    where = f"(recorded on {recorded['environment']}, running on {trajectory.environment()})"
    for k, (want, have) in enumerate(zip(expected["steps"], got["steps"])):
        if want != have:
            shown = {key: (float.fromhex(want[key]), float.fromhex(have[key])) for key in want if want[key] != have[key]}
            label = f"step {k + 1}" if k < trajectory.N_STEPS else "the whole epoch after them"
            pytest.fail(f"{name}: {label} differs, (recorded, now): {shown} {where}")
    changed = sorted(key for key, value in expected["digests"].items() if got["digests"].get(key) != value)
    assert not changed, f"{name}: the losses match but these outputs differ: {changed} {where}"
