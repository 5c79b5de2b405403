"""Training steps on the thread team or on one thread, as timing them says.

The chooser (csrc/cpu/step_threads.h) is fed synthetic step times here, so its
decisions are checked exactly, whatever the machine; the training loop's use
of it is checked by what it reports and by the bits it leaves (which must not
depend on where each step ran).
"""

import numpy as np
import pytest

from pyvae import _core

choices = _core._kernels.step_thread_choices
# A probe: rounds of 4 steps alone (A) and on the team (B), A B B A.
PROBE = np.repeat([False, True, True, False], 4)


def run(solo, team, n=6000):
    """Which steps ran on the team when a step takes `solo` seconds alone and `team` on the team
    (constants or arrays over the steps)."""
    solo = np.broadcast_to(np.asarray(solo, dtype=np.float64), (n,)).copy()
    team = np.broadcast_to(np.asarray(team, dtype=np.float64), (n,)).copy()
    return choices(solo, team)


def probe_starts(on_team):
    """Where the probes start (their pattern of rounds found in the trace)."""
    windows = np.lib.stride_tricks.sliding_window_view(on_team, len(PROBE))
    return np.flatnonzero((windows == PROBE).all(axis=1))


def between_probes(on_team):
    """The steps outside the warm-up step and the probes."""
    keep = np.ones(len(on_team), bool)
    keep[0] = False
    for start in probe_starts(on_team):
        keep[start:start + len(PROBE)] = False
    return on_team[keep]


def test_a_faster_team_takes_every_step_between_probes_spaced_ever_wider():
    on_team = run(solo=2e-3, team=1e-3, n=40000)
    assert on_team[0]  # the warm-up step starts the team's helpers
    assert between_probes(on_team).all()
    # Each probe that confirms the choice doubles the spacing, up to 8,192 steps.
    spacing = np.diff(probe_starts(on_team)) - len(PROBE)
    assert list(spacing) == [1024, 2048, 4096] + [8192] * (len(spacing) - 3) and len(spacing) >= 4


def test_a_slower_team_runs_only_the_probes_steps_at_most_1024_apart():
    on_team = run(solo=1e-3, team=3e-3, n=20000)
    assert not between_probes(on_team).any()
    spacing = np.diff(probe_starts(on_team)) - len(PROBE)
    assert list(spacing) == [256, 512] + [1024] * (len(spacing) - 2) and len(spacing) >= 4
    assert on_team[2000:].mean() < 8 / (1024 + len(PROBE)) + 1e-3  # about 1% of the steps


def test_a_tie_goes_to_one_thread():
    on_team = run(solo=1e-3, team=0.97e-3)  # within kTeamGain (5%): not worth a second core
    assert not between_probes(on_team).any()


def test_a_team_that_turns_slow_is_left_within_two_windows():
    n, flip = 6000, 3000
    on_team = run(solo=2e-3, team=np.where(np.arange(n) < flip, 1e-3, 3e-3), n=n)
    starts = probe_starts(on_team)
    # A 32-step window 1.5x slower than probed starts a probe at once; it
    # chooses one thread, whose spacing starts from 256 steps.
    early = starts[starts > flip][0]
    assert early <= flip + 2 * 32
    assert between_probes(on_team[:early]).all()
    assert not between_probes(on_team[early:]).any()
    assert starts[starts > early][0] - early - len(PROBE) == 256


def test_a_team_that_turns_fast_is_found_by_the_next_probe():
    n, flip = 6000, 200
    on_team = run(solo=2e-3, team=np.where(np.arange(n) < flip, 3e-3, 1e-3), n=n)
    second = probe_starts(on_team)[1]
    assert second == 1 + len(PROBE) + 256
    assert not between_probes(on_team[:second]).any()
    assert between_probes(on_team[second:]).all()


def test_the_choice_holds_under_noise_and_ignores_switches():
    rng = np.random.default_rng(0)
    n = 8000
    solo = 1e-3 * rng.uniform(0.9, 1.1, n)
    team = 0.7e-3 * rng.uniform(0.9, 1.1, n)
    on_team = choices(solo, team)
    assert between_probes(on_team).all()
    # The first step of each probe round, and the first after a probe, pays for
    # moving data between caches; make it very costly on the team: not timed.
    switch = np.r_[True, on_team[1:] != on_team[:-1]]
    with_switches = choices(solo, np.where(switch, 50e-3, team))
    assert np.array_equal(with_switches, on_team)


def test_lengths_must_match():
    with pytest.raises(ValueError, match="lengths differ"):
        choices(np.ones(3), np.ones(4))


def engine(n_threads, hidden=(200, 200), n_features=784):
    return _core.Model32(n_features=n_features, n_components=50, hidden_layer_sizes=list(hidden),
                         activation="tanh", likelihood="bernoulli", kl="analytic", posterior="gaussian",
                         gradient_estimator="reparameterization", n_mc_samples=1, beta=1.0, missing=False,
                         n_threads=n_threads, variance_floor=0.0)


def train(n_threads, X, rows, batch, epochs=2, **kw):
    e = engine(n_threads, **kw)
    params = e.init_params(3)
    m, v = np.zeros_like(params), np.zeros_like(params)
    adam = _core.AdamSettings(learning_rate=1e-3)
    step, team_steps = 0, []
    for epoch in range(epochs):
        out = e.train_epoch(params, m, v, step, 0.0, X, rows, batch, 11, adam)
        step = out["step"]
        team_steps.append(out["team_steps"])
    return params, team_steps


def test_training_reports_team_steps_and_its_bits_do_not_depend_on_them():
    rng = np.random.default_rng(1)
    X = (rng.random((1000, 784)) < 0.15).astype(np.float32)
    rows = np.arange(1000, dtype=np.int64)
    one, team_one = train(1, X, rows, 20)
    two, team_two = train(2, X, rows, 20)
    assert team_one == [0, 0]
    # 50 steps an epoch: the warm-up step and the first probe's 8 team steps
    # come first, whatever the machine; after that the clock decides.
    assert team_two[0] >= 9 and sum(team_two) <= 100
    assert np.array_equal(one, two)


def test_small_steps_never_use_the_team():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((400, 14)).astype(np.float32) > 0
    _, team_steps = train(2, X.astype(np.float32), np.arange(400, dtype=np.int64), 40, hidden=(32,),
                          n_features=14)
    assert team_steps == [0, 0]


def test_very_large_steps_always_use_the_team():
    # 784-400-20 at batch 1024: 4 GFLOP of products a step, over the 2 GFLOP
    # from which no probe is run.
    rng = np.random.default_rng(3)
    X = (rng.random((2048, 784)) < 0.15).astype(np.float32)
    _, team_steps = train(2, X, np.arange(2048, dtype=np.int64), 1024, hidden=(400,))
    assert team_steps == [2, 2]
