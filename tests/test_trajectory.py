"""The CPU engine computes, bit for bit, what it computed when
tests/data/trajectory.json was recorded (see tests/trajectory.py).

A difference here means a change altered the numbers: a restructuring must
not; a change meant to alter them (a new default, a fixed bug) records the
file again with scripts/record-trajectory.py and says why in its commit.

Each recorded path (an instruction set for the core's kernels and an OpenBLAS
kernel) runs pinned, in a subprocess, wherever the CPU can run it; it is
skipped, with the reason, only where the CPU lacks the instructions. The path
this process computes unpinned is checked too, where it is one of those.
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
    if build != recorded["build"]:
        pytest.skip(f"recorded from a {recorded['build']} build of the core; this one is {build}")


def compare(recording, got, where):
    assert got["environment"]["build"] == recording["environment"]["build"]
    for name, expected in recording["cases"].items():
        assert expected["config"] == trajectory.case_config(name), f"{name}: the case changed since it was recorded"
        have = got["cases"][name]
        for k, (want, now) in enumerate(zip(expected["steps"], have["steps"])):
            if want != now:
                shown = {key: (float.fromhex(want[key]), float.fromhex(now[key])) for key in want if want[key] != now[key]}
                label = f"step {k + 1}" if k < trajectory.N_STEPS else "the whole epoch after them"
                pytest.fail(f"{name}: {label} differs, (recorded, now): {shown} {where}")
        changed = sorted(key for key, value in expected["digests"].items() if have["digests"].get(key) != value)
        assert not changed, f"{name}: the losses match but these outputs differ: {changed} {where}"


def test_every_path_and_case_is_recorded(recorded):
    assert sorted(recorded["paths"]) == sorted(trajectory.PATHS)
    for recording in recorded["paths"].values():
        assert sorted(recording["cases"]) == sorted(trajectory.CASES)


@pytest.mark.parametrize("path", sorted(trajectory.PATHS))
def test_pinned_path_is_bit_identical(recorded, path):
    reason = trajectory.why_not_here(path)
    if reason:
        pytest.skip(reason)
    got = trajectory.run_pinned(path)
    env = got["environment"]
    # The pins must have taken: otherwise the comparison would be of another path.
    assert trajectory.path_of(env) == path, f"pinned {trajectory.PATHS[path]}, but the run reports {env}"
    recording = recorded["paths"][path]
    compare(recording, got, f"(path {path}; recorded on {recording['environment']}, running on {env})")


def test_unpinned_path_is_bit_identical(recorded):
    env = trajectory.environment()
    path = trajectory.path_of(env)
    if path is None:
        pytest.skip(f"no recording of this process's path ({env['isa']}, OpenBLAS {env['blas_kernel']}); "
                    f"recorded: {sorted(trajectory.PATHS)}")
    got = trajectory.run_all()
    recording = recorded["paths"][path]
    compare(recording, got, f"(path {path} unpinned; recorded on {recording['environment']}, running on {env})")
