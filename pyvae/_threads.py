"""Loads the C++ core.

The core runs its parallel work on its own thread team (csrc/cpu/parallel.h), not
on OpenMP parallel regions: helpers join a piece of work when they are free,
and the calling thread never waits for work no helper has started. So on a
machine shared with other work a late helper costs nothing, and n_threads=None
(every core) is never much slower than one thread, whatever the batch size.
Between pieces of work a helper spins for PYVAE_SPIN_US microseconds (default
100: a training step hands out its pieces within microseconds of each other),
then sleeps until the next one: an idle process costs no CPU.

Earlier versions set OMP_WAIT_POLICY=passive while the core loaded; no OpenMP
runtime thread is started by the core any more, so nothing is set here.
"""

from . import _core  # noqa: F401  (re-exported: `from ._threads import _core`)


def resolve_threads(n_threads):
    """The core's thread count for an estimator's n_threads: None is every thread the build has."""
    return max(1, int(n_threads)) if n_threads is not None else int(_core.build_config["max_threads"])
