"""Wall time of ``reproduce fig6 --quick``: serial against a local Dask cluster, in one run.

Each variant gets its own empty model cache and output folder, so both train the quick
zoo (4 nets) and measure its W; the two JSONs are compared (scores and AUCs must be
equal) and the ratio printed. Variants alternate (serial, cluster, serial, cluster, ...)
so that drift of the machine's speed hits both alike.

Usage::

    python benchmarks/lab_dask.py --data-dir ../shared/data            # 2 workers, 1 round
    python benchmarks/lab_dask.py --data-dir ../shared/data --workers 2 --rounds 2

Needs the ``[dask]`` extra.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def _run(out, data_dir, scheduler):
    from wobbledetect.lab.reproduce import fig6

    started = time.perf_counter()
    fig6.run(out, quick=True, data_dir=data_dir, cache_dir=out / "cache", scheduler=scheduler,
             log=lambda line: None)
    seconds = time.perf_counter() - started
    return seconds, json.loads((out / "fig6.json").read_text())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    print(f"torch threads {torch.get_num_threads()}; local cluster of {args.workers} worker "
          "processes, each running torch on as many threads")
    with tempfile.TemporaryDirectory() as tmp:
        times = {"serial": [], "cluster": []}
        for round_ in range(args.rounds):
            for name, scheduler in (("serial", None), ("cluster", args.workers)):
                seconds, result = _run(Path(tmp) / f"{name}{round_}", args.data_dir, scheduler)
                times[name].append(seconds)
                if name == "serial":
                    reference = result
                else:
                    same = all(result[k] == reference[k] for k in ("auc", "scores", "pairs"))
                    print(f"round {round_ + 1}: serial {times['serial'][-1]:.1f} s, cluster "
                          f"{seconds:.1f} s, ratio serial/cluster {times['serial'][-1] / seconds:.2f}; "
                          f"scores identical: {same}")
        print(f"median serial/cluster ratio over {args.rounds} round(s): "
              f"{sorted(s / c for s, c in zip(times['serial'], times['cluster']))[args.rounds // 2]:.2f}")


if __name__ == "__main__":
    main()
