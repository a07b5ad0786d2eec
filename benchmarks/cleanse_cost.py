"""Cost of Neural Cleanse on a lab net: seconds per step, torch module against onnx2torch.

What the §5 runs (``reproduce nc-candidates``, ``reproduce screen-zoo``) spend most of their
time on. One net of Fig. 6's zoo (default: Fashion-MNIST T1 ``square``, seed 0, 4 epochs;
from the model cache, else trained), 1,000 clean training images (the first of
``RandomState(0).permutation``, as ``nc-candidates`` crafts on), the defaults of
:class:`~wobbledetect.NeuralCleanse` (31 batches of 32 per step).

1. ``--steps`` steps of class 0 on the torch module and on the same net exported to ONNX
   and converted back by onnx2torch (what the lab passes on a CPU), back to back; prints
   seconds per step and their ratio.
2. With ``--until-stop K [K ...]``: Neural Cleanse run to its own stop for those classes on
   the lab's path; prints steps, seconds and seconds per step.
3. With ``--devices cpu cuda``: parts 1 (torch module) and 2 on each device, back to back
   in one run, and the per-step ratio of each device to the first (issue 14 asks for CPU
   against GPU, same script). The CPU path is the lab's (the ONNX export through
   onnx2torch); other devices run the torch module, as the lab does on a GPU.

Usage::

    python benchmarks/cleanse_cost.py --cache-dir DIR                    # ~1 min
    python benchmarks/cleanse_cost.py --cache-dir DIR --until-stop 0     # + ~5 min a class
    python benchmarks/cleanse_cost.py --devices cpu cuda --until-stop 0  # CPU against GPU

Numbers vary with machine load; compare the two paths within one run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--threat", default="T1")
    parser.add_argument("--trigger", default="square")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per path (class 0)")
    parser.add_argument("--until-stop", type=int, nargs="*", default=[], metavar="K",
                        help="classes to run to Neural Cleanse's own stop on the lab's path")
    parser.add_argument("--devices", nargs="+", default=["cpu"], metavar="DEVICE",
                        help="devices to time, the first being the baseline of the ratios (default: cpu)")
    args = parser.parse_args(argv)

    import torch

    from wobbledetect import NeuralCleanse, to_onnx
    from wobbledetect.lab.reproduce._common import Experiment
    from wobbledetect.lab.zoo import get_net

    import warnings

    from wobbledetect import NeuralCleanseWarning

    # one class searched at a time: its anomaly index is undefined, as intended
    warnings.filterwarnings("ignore", message="Neural Cleanse's anomaly index is undefined",
                            category=NeuralCleanseWarning)
    exp = Experiment("cleanse_cost", "bench-output/cleanse_cost", quick=False, data_dir=args.data_dir,
                     cache_dir=args.cache_dir, dataset="fashion-mnist", log=lambda *_: None)
    config = exp.net_config(args.threat, args.trigger, args.seed)
    data = exp.data
    module, _, _ = get_net(config, data, exp.cache, log=print)
    crafting = data.X_train[np.random.RandomState(0).permutation(len(data.X_train))[:1000]]
    onnx = to_onnx(module, data.input_shape)
    print(f"{config.label}, {config.epochs} epochs; torch threads {torch.get_num_threads()}; "
          f"{len(crafting)} crafting images")

    per_step = {}
    for name, model in (("torch module", module), ("ONNX via onnx2torch", onnx)):
        per_step[name] = _per_step(NeuralCleanse, model, data, crafting, args.steps, "cpu")
        print(f"{name}: {per_step[name]:.2f} s per step ({args.steps} steps)", flush=True)
    print(f"ratio ONNX / torch: {per_step['ONNX via onnx2torch'] / per_step['torch module']:.2f}")

    by_device = {}
    for device in args.devices:
        model = onnx if device == "cpu" else module  # the lab's path on each
        if device != "cpu":
            by_device[device] = _per_step(NeuralCleanse, model, data, crafting, args.steps, device)
            print(f"{device}, torch module: {by_device[device]:.2f} s per step ({args.steps} steps)", flush=True)
        else:
            by_device[device] = per_step["ONNX via onnx2torch"]
        for k in args.until_stop:
            started = time.perf_counter()
            nc = NeuralCleanse(model, input_shape=data.input_shape, classes=[k], random_state=0,
                               device=device).fit(crafting)
            seconds = time.perf_counter() - started
            print(f"{device}: class {k} to its stop (the lab's path): {nc.n_steps_[0]} steps, {seconds:.0f} s, "
                  f"{seconds / nc.n_steps_[0]:.2f} s per step; mask norm {nc.mask_norms_[0]:.1f}, "
                  f"success {nc.attack_success_[0]:.3f}", flush=True)
    first = args.devices[0]
    for device in args.devices[1:]:
        print(f"per step, {device} / {first}: {by_device[device] / by_device[first]:.3f} "
              f"({first} {by_device[first]:.3f} s, {device} {by_device[device]:.3f} s)")


def _per_step(NeuralCleanse, model, data, crafting, steps, device):
    """Seconds per Neural Cleanse step of class 0 (no early stop), after one warm-up step."""
    import warnings

    from wobbledetect import NeuralCleanseWarning

    with warnings.catch_warnings():
        # one class and a few steps: no anomaly index and no finished search, as intended
        warnings.simplefilter("ignore", NeuralCleanseWarning)
        NeuralCleanse(model, input_shape=data.input_shape, classes=[0], random_state=0, max_steps=1,
                      device=device).fit(crafting[:64])
        started = time.perf_counter()
        nc = NeuralCleanse(model, input_shape=data.input_shape, classes=[0], random_state=0,
                           max_steps=steps, early_stop_patience=10 * steps, device=device).fit(crafting)
    return (time.perf_counter() - started) / nc.n_steps_[0]

if __name__ == "__main__":
    main()
