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

from .._dask import check_scheduler, dask_client, run_tasks, torch_threads

__all__ = ["dask_client", "run_tasks", "experiment_spec", "experiment_from_spec", "check_scheduler"]


def experiment_spec(exp):
    """What a worker needs to rebuild ``exp`` (an Experiment) exactly: picklable."""
    import torch

    return {"name": exp.name, "out_dir": str(exp.out_dir), "quick": exp.quick,
            "data_dir": exp.data_dir, "cache_dir": exp.cache_dir, "dataset": exp.setup.dataset,
            "download": exp.download, "epochs": exp.epochs, "setup": exp.setup,
            "threads": torch.get_num_threads()}


def experiment_from_spec(spec, log=print):
    """The Experiment of :func:`experiment_spec`, in a worker (torch threads set as the client's)."""
    from .reproduce._common import Experiment

    torch_threads(spec["threads"])
    exp = Experiment(spec["name"], spec["out_dir"], quick=spec["quick"], data_dir=spec["data_dir"],
                     cache_dir=spec["cache_dir"], dataset=spec["dataset"], log=log,
                     download=spec["download"], epochs=spec["epochs"])
    exp.setup = spec["setup"]  # as the client saw it (a test may shrink the quick mode)
    return exp
