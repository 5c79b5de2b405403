"""Loads the C++ core with its OpenMP team set to wait passively.

GNU OpenMP reads its settings once, when the library loads. By default a
thread that waits at the end of a parallel region spins; on a machine shared
with other work (or a process that runs several pools) the thread it waits for
may have lost its core, and the spinning thread then burns the time that thread
needed: with one busy process beside it, a 2-thread fit on 2 cores ran 2-3x
slower than with 1 thread. Waiting passively (sleeping) keeps 2 threads at
least as fast as 1 there, and measured within noise of spinning on an idle
machine. The setting applies only while the core loads, and only when the
user has not set OMP_WAIT_POLICY.
"""

import os


def _load_core():
    key = "OMP_WAIT_POLICY"
    user_set = key in os.environ
    if not user_set:
        os.environ[key] = "passive"
    try:
        from . import _core
    finally:
        if not user_set:
            del os.environ[key]
    return _core


_core = _load_core()
