"""Worker processes for the work inside one series (decoding, slice detection, PNG).

``kneemeasure measure`` on one series is a chain of CPU-bound numpy/scipy steps that
mostly hold the GIL, so threads do not use a second core. :func:`series_executor`
gives a small pool of *forked* processes: forking is cheap (the workers inherit
the imported modules), and each task ships one slice (about 1 MB) or one
finished row. Where forking is not available (not Linux) or not possible (a
daemonic process), or ``workers < 1``, it returns ``None`` and the caller runs
everything in-process, with the same results. Batch and validation workers do
not come here at all: they parallelise over series and keep ``workers = 1``.

Caveat: the renderer pool starts its manager thread before the detection pool
(and the short-lived decoding process of ``pipeline._start_loading``) fork their
workers, so those forks happen in a parent with a thread running.
The children only use their own pool's queues (created before the fork) and
Python re-initialises the GIL and the import lock after a fork; Python >= 3.12
warns about such forks all the same.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any


def default_workers() -> int:
    """Processes used for one series by ``kneemeasure measure``: the cores, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def series_executor(workers: int, *, warm: Callable[[], Any] | None = None) -> Executor | None:
    """A fork-based process pool for one run, or ``None`` to run in-process.

    Parameters
    ----------
    workers : int
        Number of worker processes; ``< 1`` gives ``None``.
    warm : callable, optional, keyword-only
        Submitted once right away (e.g. to import the PNG renderer in a worker while the
        parent reads headers and decodes).

    Returns
    -------
    concurrent.futures.Executor or None
        The caller shuts it down (use it as a context manager).
    """
    if workers < 1 or not sys.platform.startswith("linux"):
        return None
    if multiprocessing.current_process().daemon:  # daemonic processes cannot fork children
        return None
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    if warm is not None:
        pool.submit(warm)
    return pool


def map_ordered(
    executor: Executor | None, fn: Callable[..., Any], args: Sequence[Iterable[Any]]
) -> list[Any]:
    """``[fn(*a) for a in args]``, on ``executor`` when there is one (results in order)."""
    if executor is None or len(args) < 2:
        return [fn(*a) for a in args]
    futures = [executor.submit(fn, *a) for a in args]
    return [f.result() for f in futures]
