"""W throughput against the model's raw forward throughput, measured in one run.

For each net (the paper's Fashion-MNIST CNN, a CIFAR ResNet18) on the current device:

- raw forward throughput (inputs/s) of every inference path on a batch of noisy inputs:
  eager torch, ``channels_last``, a frozen TorchScript graph, ``torch.compile``
  (``--compile``), ONNX Runtime;
- W throughput (forwards/s: noisy copies classified per second) through the public
  ``WobblinessTransformer``, for each path and for ``inference="auto"`` (the torch
  backend), and for the model given as ONNX bytes (the ONNX backend);
- the ratios W / raw of the same path, W(auto) / best raw, W(ONNX model) / raw ORT.
  Raw and W windows are *interleaved* (raw, W, raw, W, ...) and medians are compared,
  so a change in machine load during the run hits both sides alike;
- two baselines on eager torch: a per-input loop over single noisy copies, and IBM
  ART's ``_prediction_counts`` scheme (NumPy float64 noise, one input at a time);
- peak memory of ``transform`` for two problem sizes, each in a fresh subprocess: the
  peak resident set (Linux ``VmHWM``, reset after ``fit``) and, on CUDA, the peak
  allocated device memory.

Usage::

    python benchmarks/throughput.py            # both nets (about 6 minutes on 2 CPU cores)
    python benchmarks/throughput.py --quick    # Fashion-MNIST net only (about 2 minutes)

Numbers vary between machines and with load; compare ratios taken within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

from wobbledetect import WobblinessTransformer, to_onnx
from wobbledetect._inference import _build
from wobbledetect._models import make_predictor, resolve_device
from wobbledetect.lab import FashionCNN, resnet18_cifar

NETS = {
    "fashion-cnn": (FashionCNN, (1, 28, 28)),
    "resnet18": (resnet18_cifar, (3, 32, 32)),
}
#: The two problem sizes (inputs) of the peak-memory probe, 10x apart, per net.
MEMORY_SIZES = {"fashion-cnn": (40, 400), "resnet18": (8, 80)}
SIGMA = 0.1
N_SAMPLES = 250


def timed(function):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def raw_window(predictor, batch, seconds, sync):
    """Inputs/s of ``predict_classes`` on ``batch`` over a window of ``seconds``."""
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        predictor.predict_classes(batch)
        sync()
        n += len(batch)
    return n / (time.perf_counter() - start)


def interleaved(predictor, wob, batch, X, *, repeats, seconds, sync):
    """Median raw inputs/s and median W forwards/s over ``repeats`` alternations."""
    predictor.predict_classes(batch)  # warm-up
    wob.vote_counts(X[:2])
    raw, w = [], []
    for _ in range(repeats):
        raw.append(raw_window(predictor, batch, seconds, sync))
        counts, dt = timed(lambda: wob.vote_counts(X))
        w.append(counts.sum() / dt)
    return float(np.median(raw)), float(np.median(w))


def loop_baseline(module, X, sigma=SIGMA, n_samples=N_SAMPLES):
    """One noisy copy per forward (the naive implementation), eager torch on the CPU."""
    module = module.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for x in torch.from_numpy(X):
            for _ in range(n_samples):
                module((x + sigma * torch.randn_like(x))[None]).argmax(1)
    return len(X) * n_samples / (time.perf_counter() - start)


def art_baseline(module, X, sigma=SIGMA, n_samples=N_SAMPLES):
    """IBM ART's _prediction_counts: NumPy float64 noise, one input (n copies) at a time."""
    module = module.eval()
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    with torch.inference_mode():
        for x in X:
            noisy = x[None] + rng.normal(scale=sigma, size=(n_samples, *x.shape))
            module(torch.from_numpy(noisy.astype(np.float32))).argmax(1)
    return len(X) * n_samples / (time.perf_counter() - start)


def _vm_hwm_mb():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_probe(net, n_inputs, batch_size):
    """Child process: compute W for ``n_inputs`` and print its peak memory as JSON."""
    factory, input_shape = NETS[net]
    torch.manual_seed(0)
    X = np.random.RandomState(0).rand(n_inputs, *input_shape).astype(np.float32)
    device = resolve_device("auto")
    wob = WobblinessTransformer(factory(), n_samples=N_SAMPLES, batch_size=batch_size, random_state=0)
    wob.fit(X[:2])
    # Build everything that is built once, with one full forward batch, so the peak
    # below is what computing W adds, not onnxruntime's first allocation for the size.
    wob.transform(X[: max(2, -(-batch_size // N_SAMPLES))])
    with open("/proc/self/clear_refs", "w") as handle:  # reset VmHWM to the current RSS
        handle.write("5")
    baseline = _vm_hwm_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    wob.transform(X)
    print(json.dumps({
        "n_inputs": n_inputs,
        "forwards": n_inputs * N_SAMPLES,
        "rss_before_mb": baseline,
        "peak_rss_mb": _vm_hwm_mb(),
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
        "path": wob.inference_path_,
    }))


def peak_memory(net, sizes, batch_size):
    rows = []
    for n in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--memory-probe", net, str(n), str(batch_size)],
            check=True, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]
        rows.append(json.loads(out))
    return rows


def bench_net(name, args, device):
    factory, input_shape = NETS[name]
    torch.manual_seed(0)
    module = factory().eval()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rng = np.random.RandomState(1)
    batch = torch.from_numpy(
        (rng.rand(args.batch_size, *input_shape) + SIGMA * rng.randn(args.batch_size, *input_shape))
        .astype(np.float32)
    ).to(device)
    paths = ["eager", "channels_last", "frozen", "onnx"] + (["compile"] if args.compile else [])
    eager = make_predictor(module, device)
    print(f"\n== {name} {input_shape} on {device}: batch {args.batch_size}, n_samples {N_SAMPLES}, "
          f"{args.repeats} interleaved raw/W windows per path ==")
    # Size W runs to about one raw window of the slowest path.
    eager_rate = raw_window(eager, batch, 1.0, sync)
    n_inputs = args.n_inputs or max(4, int(eager_rate * args.seconds / N_SAMPLES))
    X = rng.rand(n_inputs, *input_shape).astype(np.float32)

    rows = {}
    for path in paths:
        try:
            predictor = eager if path == "eager" else _build(path, eager, input_shape)
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"  {path}: not available ({type(exc).__name__})")
            continue
        wob = WobblinessTransformer(
            module, sigma=SIGMA, n_samples=N_SAMPLES, batch_size=args.batch_size, random_state=0,
            inference=path, input_shape=input_shape,
        ).fit(X[:4])
        rows[path] = interleaved(predictor, wob, batch, X, repeats=args.repeats, seconds=args.seconds, sync=sync)

    best = max(rows, key=lambda p: rows[p][0])
    auto = WobblinessTransformer(
        module, sigma=SIGMA, n_samples=N_SAMPLES, batch_size=args.batch_size, random_state=0,
        input_shape=input_shape,
    ).fit(X[:4])
    best_predictor = eager if best == "eager" else _build(best, eager, input_shape)
    auto_raw, auto_w = interleaved(best_predictor, auto, batch, X, repeats=args.repeats,
                                   seconds=args.seconds, sync=sync)

    onnx_bytes = to_onnx(module, input_shape).SerializeToString()
    onnx_wob = WobblinessTransformer(
        onnx_bytes, sigma=SIGMA, n_samples=N_SAMPLES, batch_size=args.batch_size, random_state=0,
    ).fit(X[:4])
    ort_raw, ort_w = interleaved(onnx_wob.predictor_, onnx_wob, batch, X, repeats=args.repeats,
                                 seconds=args.seconds, sync=sync)

    print(f"{'path':<22}{'raw inputs/s':>14}{'W forwards/s':>14}{'W / raw':>9}")
    for path, (raw, w) in rows.items():
        print(f"{path:<22}{raw:>14.0f}{w:>14.0f}{w / raw:>9.2f}")
    print(f"{'torch backend (auto)':<22}{auto_raw:>14.0f}{auto_w:>14.0f}{auto_w / auto_raw:>9.2f}"
          f"   auto -> {auto.inference_path_}; raw = best path, {best}")
    print(f"{'ONNX backend':<22}{ort_raw:>14.0f}{ort_w:>14.0f}{ort_w / ort_raw:>9.2f}"
          f"   model given as ONNX bytes; raw = its onnxruntime session")

    small = X[: max(2, min(n_inputs, 8))]
    loop, art = loop_baseline(module, small), art_baseline(module, small)
    print(f"baselines (eager torch, CPU): per-input single-copy loop {loop:.0f} forwards/s, "
          f"ART-style float64 per input {art:.0f} forwards/s; W(auto) is "
          f"{auto_w / loop:.1f}x the loop and {auto_w / art:.1f}x ART")
    memory = peak_memory(name, args.memory_sizes or MEMORY_SIZES[name], args.batch_size)
    for row in memory:
        print(f"peak memory, {row['n_inputs']:>4} inputs ({row['forwards']:>7} forwards, {row['path']}): "
              f"RSS {row['rss_before_mb']:.0f} MB before transform, peak {row['peak_rss_mb']:.0f} MB"
              + (f", CUDA peak {row['peak_cuda_mb']:.0f} MB" if row["peak_cuda_mb"] is not None else ""))
    return {
        "n_inputs": n_inputs,
        "paths": {p: {"raw": r, "w": w, "ratio": w / r} for p, (r, w) in rows.items()},
        "torch_backend": {"path": auto.inference_path_, "best_raw_path": best, "raw": auto_raw,
                          "w": auto_w, "ratio": auto_w / auto_raw},
        "onnx_backend": {"raw": ort_raw, "w": ort_w, "ratio": ort_w / ort_raw},
        "loop_baseline": loop, "art_baseline": art, "memory": memory,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fashion-MNIST net only, fewer windows")
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=2.5, help="length of one raw window")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved raw/W windows per path")
    parser.add_argument("--n-inputs", type=int, default=None, help="inputs per W run (default: ~one window)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to build)")
    parser.add_argument("--memory-sizes", type=int, nargs=2, default=None,
                        help="inputs of the two memory probes (default: per net, 10x apart)")
    parser.add_argument("--out", default="bench-output/throughput.json")
    parser.add_argument("--memory-probe", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        net, n, batch = args.memory_probe
        return memory_probe(net, int(n), int(batch))
    if args.quick:
        args.nets, args.repeats, args.seconds = ["fashion-cnn"], 3, 2.0
    warnings.simplefilter("ignore")
    device = resolve_device("auto")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
          f"{os.cpu_count()} CPUs")
    results = {name: bench_net(name, args, device) for name in args.nets}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump({"device": str(device), "torch": torch.__version__, "results": results}, handle,
                  indent=2, default=str)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
