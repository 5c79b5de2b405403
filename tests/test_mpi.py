"""Data-parallel training over MPI.

Every multi-rank check runs `mpiexec -n 2 python <worker>` in a subprocess
with a timeout, so a hang fails the test instead of blocking CI. The worker
scripts write one JSON file per rank; the assertions run here.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pyvae
from pyvae import VAE

mpi4py = pytest.importorskip("mpi4py", reason="needs pyvae's [mpi] extra: pip install \".[mpi]\"")
MPIEXEC = shutil.which("mpiexec")
needs_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found (pip install mpich)")
# Where the pyvae the tests import lives (the source tree in development, site-packages
# in CI): the ranks must import the same one.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(pyvae.__file__)))
TIMEOUT = 120

# Shared by the workers: data, shards of unequal size, and the model.
PRELUDE = """
import json, sys, warnings
import numpy as np
from mpi4py import MPI
import pyvae
from pyvae import VAE
warnings.simplefilter("ignore")
comm = MPI.COMM_WORLD
rank = comm.Get_rank()
X = np.random.default_rng(0).normal(size=(250, 6)).astype(np.float32)
cuts = [0, 140, 250]  # unequal shards: 140 and 110 rows
X_local = X[cuts[rank]:cuts[rank + 1]]
KW = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=4, random_state=0, n_threads=1, early_stopping=False)
def report(**kw):  # one file per rank: printed lines of two ranks can interleave
    with open(f"result{rank}.json", "w") as f:
        json.dump(dict(rank=rank, **kw), f)
"""


def run_ranks(tmp_path, body, n=2):
    script = tmp_path / "worker.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    try:
        proc = subprocess.run(
            [MPIEXEC, "-n", str(n), sys.executable, str(script)],
            capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=tmp_path,
        )
    except subprocess.TimeoutExpired as exc:  # a hang is a failure, not a stuck CI job
        pytest.fail(f"mpiexec -n {n} timed out after {TIMEOUT} s:\n{exc.stdout}\n{exc.stderr}")
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return [json.loads((tmp_path / f"result{rank}.json").read_text()) for rank in range(n)]


@needs_mpiexec
@pytest.mark.parametrize("extra", [
    {},
    {"early_stopping": True},
    # The score-function baseline is a running mean over batches: it must be reduced too.
    {"gradient_estimator": "score_function", "kl": "mc", "posterior": "logistic", "n_mc_samples": 2},
    # Each rank's share of the importance-weighted bound, its loss curve and held-out bound.
    {"objective": "iwae", "n_mc_samples": 3, "early_stopping": True},
], ids=["plain", "early_stopping", "score_function", "iwae"])
def test_two_ranks_match_one_process_on_the_concatenated_data(tmp_path, extra):
    early_stopping = extra.get("early_stopping", False)
    results = run_ranks(tmp_path, f"""
        kw = dict(KW, **{extra!r})
        dist = VAE(batch_size=16, **kw).fit(X_local, comm=comm)
        single = VAE(batch_size=32, **kw).fit(X)  # the doubled batch, in one process
        report(dist=dist.params_.tolist(), single=single.params_.tolist(), t=[dist.t_, single.t_],
               loss=[dist.loss_curve_, single.loss_curve_], val=[dist.validation_scores_, single.validation_scores_],
               units=[dist.active_units_, single.active_units_], z_dist=dist.transform(X).tolist(),
               z_single=single.transform(X).tolist())
    """)
    r0, r1 = results
    # Every rank holds the same model, to the bit.
    assert r0["dist"] == r1["dist"]
    dist, single = np.array(r0["dist"]), np.array(r0["single"])
    # ... and it is the one-process model, up to float32 reduction order.
    np.testing.assert_allclose(dist, single, rtol=0, atol=1e-5)
    np.testing.assert_allclose(r0["z_dist"], r0["z_single"], atol=1e-5)
    assert r0["t"][0] == r0["t"][1] == 4 * int(np.ceil((225 if early_stopping else 250) / 32))
    np.testing.assert_allclose(*r0["loss"], rtol=1e-5)
    np.testing.assert_allclose(*r0["val"], rtol=1e-5)
    assert len(r0["val"][0]) == (4 if early_stopping else 0)
    assert r0["units"][0] == r0["units"][1]


@needs_mpiexec
def test_bad_input_on_one_rank_makes_every_rank_raise(tmp_path):
    results = run_ranks(tmp_path, """
        def attempt(X_rank):
            try:
                VAE(**KW).fit(X_rank, comm=comm)
                return "fitted"
            except Exception as exc:
                return type(exc).__name__ + ": " + str(exc)
        bad = X_local.copy()
        if rank == 1:
            bad[3, 2] = np.nan
        nan = attempt(bad)
        width = attempt(X_local if rank == 0 else X_local[:, :5])
        healthy = attempt(X_local)  # the ranks are still in step afterwards
        report(nan=nan, width=width, healthy=healthy)
    """)
    r0, r1 = results
    assert r1["nan"].startswith("ValueError") and "NaN" in r1["nan"]
    assert r0["nan"].startswith("RuntimeError") and "rank 1" in r0["nan"] and "NaN" in r0["nan"]
    assert all(r["width"].startswith("ValueError") and "n_features" in r["width"] for r in results)
    assert r0["healthy"] == r1["healthy"] == "fitted"


@needs_mpiexec
def test_rank0_saves_and_every_rank_agrees_with_it(tmp_path):
    results = run_ranks(tmp_path, """
        import pickle
        vae = VAE(batch_size=16, **KW).fit(X_local, comm=comm)
        blob = comm.bcast(pickle.dumps(vae) if rank == 0 else None, root=0)
        loaded = pickle.loads(blob)
        vae.partial_fit(X_local, comm=comm)  # one more epoch, data-parallel
        report(same=bool(np.array_equal(loaded.transform(X), pickle.loads(blob).transform(X))),
               params=vae.params_.tolist(), t=vae.t_, has_comm="comm" in vae.get_params())
    """)
    r0, r1 = results
    assert r0["same"] and r1["same"] and r0["params"] == r1["params"] and r0["t"] == r1["t"]
    assert not r0["has_comm"]


@needs_mpiexec
def test_ctrl_c_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    results = run_ranks(tmp_path, """
        import os, signal, threading
        if rank == 1:
            threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGINT)).start()
        vae = VAE(batch_size=1, **dict(KW, max_iter=10_000, n_iter_no_change=10_000))
        try:
            vae.fit(X_local, comm=comm)
            outcome = "finished"
        except KeyboardInterrupt:
            outcome = "interrupted"
        report(outcome=outcome, t=int(getattr(vae, "t_", -1)), params=vae.params_.tolist())
    """)
    r0, r1 = results
    assert r0["outcome"] == r1["outcome"] == "interrupted"
    assert r0["t"] == r1["t"] > 0 and r0["params"] == r1["params"]


def test_comm_of_one_rank_is_the_one_process_fit():
    from mpi4py import MPI

    X = np.random.default_rng(1).normal(size=(90, 4)).astype(np.float32)
    kw = dict(hidden_layer_sizes=(8,), batch_size=16, max_iter=3, random_state=0, n_threads=1)
    with pytest.warns(Warning):
        a = VAE(**kw).fit(X)
    with pytest.warns(Warning):
        b = VAE(**kw).fit(X, comm=MPI.COMM_SELF)
    np.testing.assert_array_equal(a.params_, b.params_)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-6)
    assert "comm" not in b.get_params()


def test_comm_must_be_a_communicator():
    X = np.zeros((10, 3))
    with pytest.raises(TypeError, match="communicator"):
        VAE(max_iter=1).fit(X, comm="world")
