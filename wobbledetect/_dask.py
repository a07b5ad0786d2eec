"""Dask as the engine for many independent tasks (the ``[dask]`` extra).

``scheduler`` is the address of a running Dask scheduler (``"tcp://host:8786"``) or an
int, the number of worker processes of a ``distributed.LocalCluster`` started for the
call. Used by :func:`wobbledetect.screen_models` and the lab (:mod:`wobbledetect.lab.parallel`).
"""

from __future__ import annotations

import contextlib
import time

__all__ = ["check_scheduler", "dask_client", "run_tasks", "torch_threads"]


def check_scheduler(scheduler):
    """Refuse a ``scheduler`` that is neither an address nor a positive number of workers."""
    if scheduler is None or (isinstance(scheduler, str) and "://" in scheduler):
        return scheduler
    if isinstance(scheduler, int) and not isinstance(scheduler, bool) and scheduler >= 1:
        return scheduler
    raise ValueError(
        "The 'scheduler' parameter must be a Dask scheduler's address such as "
        f"'tcp://10.0.0.1:8786', or a number of local worker processes (>= 1); got {scheduler!r}."
    )


@contextlib.contextmanager
def dask_client(scheduler):
    """A ``distributed.Client`` to ``scheduler`` (an address), or to a local cluster of
    ``scheduler`` worker processes started here and closed on exit."""
    try:
        import distributed
    except ImportError:
        raise ImportError(
            "Running the lab on Dask needs dask and distributed: pip install 'wobbledetect[dask]'."
        ) from None
    if isinstance(scheduler, int):
        with distributed.LocalCluster(n_workers=scheduler, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            yield client
    else:
        with distributed.Client(scheduler) as client:
            yield client


def run_tasks(scheduler, function, arguments, *, log=print, what="task"):
    """Run ``function(*args)`` for every ``args`` of ``arguments`` as Dask tasks.

    Returns the results in order; the first task that fails raises its exception here
    (the others are cancelled).
    """
    from distributed import as_completed

    arguments = list(arguments)
    if not arguments:
        return []
    started = time.perf_counter()
    with dask_client(scheduler) as client:
        workers = len(client.scheduler_info()["workers"])
        log(f"[dask] {len(arguments)} {what}(s) on {workers} worker(s) of {client.scheduler.address}")
        futures = [client.submit(function, *args, pure=False) for args in arguments]
        index = {future.key: i for i, future in enumerate(futures)}
        results = [None] * len(futures)
        try:
            for done, future in enumerate(as_completed(futures), 1):
                results[index[future.key]] = future.result()
                log(f"[dask] {done}/{len(futures)} {what}(s) done "
                    f"({time.perf_counter() - started:.0f} s)")
        finally:
            client.cancel([f for f in futures if not f.done()])
    return results


def torch_threads(threads):
    """Set torch's intra-op threads in a worker to the client's: CPU training and gradient
    results depend on it, so a task computes what the serial run computes."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
