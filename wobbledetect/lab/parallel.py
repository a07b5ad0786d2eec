"""Dask as the lab's engine for many tasks: one task per net, on a cluster or local processes.

A figure whose per-net work is self-contained (train or load the net, measure its W,
save the result beside the figure's JSON) runs it as Dask tasks when given a
``scheduler``; the figure then reads every net's result back as it would on a resumed
run, so the numbers are those of the serial run:

- every task rebuilds the figure's :class:`~.reproduce._common.Experiment` from a
  picklable spec (:func:`experiment_spec`), so the nets' cache keys, the sets and the
  noise seed are the serial run's;
- torch in the task uses the client's number of threads, which training results depend
  on (``torch.get_num_threads()``), so a net trained in a worker is the net the serial
  run trains, weight for weight;
- nets are shared through the model cache, which trains a missing net under a lock, so
  two workers asking for one net train it once.

``scheduler`` is the address of a running ``dask scheduler`` (``"tcp://host:8786"``,
every worker seeing the same cache and output folders) or an int, the number of worker
processes of a ``distributed.LocalCluster`` started for the run. Needs the ``[dask]``
extra.
"""

from __future__ import annotations

import contextlib
import time

__all__ = ["dask_client", "run_tasks", "experiment_spec", "experiment_from_spec", "check_scheduler"]


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


def experiment_spec(exp):
    """What a worker needs to rebuild ``exp`` (an Experiment) exactly: picklable."""
    import torch

    return {"name": exp.name, "out_dir": str(exp.out_dir), "quick": exp.quick,
            "data_dir": exp.data_dir, "cache_dir": exp.cache_dir, "dataset": exp.setup.dataset,
            "download": exp.download, "epochs": exp.epochs, "setup": exp.setup,
            "threads": torch.get_num_threads()}


def experiment_from_spec(spec, log=print):
    """The Experiment of :func:`experiment_spec`, in a worker (torch threads set as the client's)."""
    import torch

    from .reproduce._common import Experiment

    torch.set_num_threads(spec["threads"])
    exp = Experiment(spec["name"], spec["out_dir"], quick=spec["quick"], data_dir=spec["data_dir"],
                     cache_dir=spec["cache_dir"], dataset=spec["dataset"], log=log,
                     download=spec["download"], epochs=spec["epochs"])
    exp.setup = spec["setup"]  # as the client saw it (a test may shrink the quick mode)
    return exp
