"""Run independent jobs (evaluation units, training seeds) in this process, in local processes, or on Ray.

:func:`run_tasks` is the one entry point: ``fn(item)`` for every item, results in item order, whatever
ran them. ``fn`` must be a module-level function and items and results picklable, because local
workers (spawned processes) and Ray workers (possibly on other machines) import ``fn`` by name
and get copies of the items. Ray is imported only when asked for (the ``cluster`` extra);
nothing here starts a cluster of its own beyond Ray's single-machine ``local`` instance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from lotus.core.cli import requires_extra
from lotus.core.errors import LotusError

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def run_tasks(
    fn: Callable[[T], R],
    items: Sequence[T],
    ray_address: str | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> list[R]:
    """``[fn(item) for item in items]``, run in parallel when asked; results in item order.

    :param ray_address: run each item as a Ray task (one CPU each): ``"auto"`` (the cluster this
        machine belongs to), ``"local"`` (start a Ray instance on this machine's CPUs),
        ``"HOST:PORT"`` (a cluster's head, from one of its nodes) or ``"ray://HOST:PORT"`` (Ray
        Client). An already initialised Ray is used as it is. ``workers`` is ignored: the
        cluster's CPUs set the parallelism.
    :param workers: without Ray, 1 runs the items in this process, more a pool of that many
        spawned processes.
    :param progress: called with an item's index each time its task finishes (completion order).
    :return: one result per item, in the order of ``items``.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if ray_address is not None:
        return _run_ray(fn, items, ray_address, progress)
    if workers == 1 or len(items) <= 1:
        results = []
        for k, item in enumerate(items):
            results.append(fn(item))
            if progress is not None:
                progress(k)
        return results
    return _run_processes(fn, items, workers, progress)


def _run_processes(
    fn: Callable[[T], R], items: Sequence[T], workers: int, progress: Callable[[int], None] | None
) -> list[R]:
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait

    results: dict[int, R] = {}
    ctx = multiprocessing.get_context("spawn")  # no forked copies of threads, torch or open files
    with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=ctx) as pool:
        pending: dict[Future[R], int] = {pool.submit(fn, item): k for k, item in enumerate(items)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_EXCEPTION)
            for fut in done:
                k = pending.pop(fut)
                if fut.exception() is not None:
                    for other in pending:
                        other.cancel()
                results[k] = fut.result()  # a failed job raises its error here
                if progress is not None:
                    progress(k)
    return [results[k] for k in range(len(items))]


def _run_ray(fn: Callable[[T], R], items: Sequence[T], address: str, progress: Callable[[int], None] | None) -> list[R]:
    with requires_extra("cluster", "--ray"):
        import ray
    if not ray.is_initialized():
        options: dict[str, Any] = {"include_dashboard": False} if address == "local" else {}
        ray.init(address=address, ignore_reinit_error=True, logging_level=logging.WARNING, **options)
        logger.info("ray: %s CPUs in the cluster", ray.cluster_resources().get("CPU"))
    remote = ray.remote(num_cpus=1)(fn)
    refs = [remote.remote(item) for item in items]
    index = {ref: k for k, ref in enumerate(refs)}
    results: dict[int, R] = {}
    waiting = list(refs)
    try:
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            for ref in done:
                results[index[ref]] = ray.get(ref)  # a failed task raises now, not after the rest have run
                if progress is not None:
                    progress(index[ref])
    except ray.exceptions.RayTaskError as exc:
        for ref in waiting:
            ray.cancel(ref)
        if isinstance(exc.cause, LotusError):  # a user error stays one line
            raise exc.cause from None
        raise
    return [results[k] for k in range(len(items))]
