"""W throughput against the model's raw forward throughput, measured in one run.

For each net (the paper's Fashion-MNIST CNN, a CIFAR ResNet18) on the current device:

- raw forward throughput (inputs/s) of every inference path on a fixed batch: eager
  torch, ``channels_last``, a frozen TorchScript graph, ``torch.compile`` (``--compile``),
  ONNX Runtime;
- W throughput (input-copies/s, i.e. forwards/s) through the public
  ``WobblinessTransformer`` with each path, with ``inference="auto"``, and with the model
  given as ONNX bytes;
- the ratios W / raw (same path) and W(auto) / best raw;
- two baselines: a per-input loop over single noisy copies, and IBM ART's
  ``_prediction_counts`` scheme (NumPy float64 noise, one input at a time);
- peak memory of W for two problem sizes, each in a fresh subprocess.

Usage::

    python benchmarks/throughput.py            # both nets, ~5 minutes on 2 CPU cores
    python benchmarks/throughput.py --quick    # Fashion-MNIST net only, shorter windows

Numbers vary with machine load; ratios are taken within one run on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

from wobbledetect import WobblinessTransformer, to_onnx
from wobbledetect._inference import _build
from wobbledetect._models import TorchPredictor, make_predictor, resolve_device
from wobbledetect.lab import FashionCNN, resnet18_cifar

NETS = {
    "fashion-cnn": (FashionCNN, (1, 28, 28)),
    "resnet18": (resnet18_cifar, (3, 32, 32)),
}


def rate(function, n_per_call, seconds):
    """Calls per second x ``n_per_call``: median of 3 windows of ``seconds / 3``."""
    function()  # warm-up
    windows = []
    for _ in range(3):
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < seconds / 3:
            function()
            n += n_per_call
        windows.append(n / (time.perf_counter() - start))
    return float(np.median(windows))


def raw_rates(module, input_shape, device, batch_size, seconds, paths):
    eager = make_predictor(module, device)
    batch = torch.rand((batch_size, *input_shape), device=device)
    out = {}
    for path in paths:
        try:
            predictor = eager if path == "eager" else _build(path, eager, input_shape)
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"  {path}: not available ({type(exc).__name__})")
            continue
        out[path] = rate(lambda: predictor.predict_classes(batch), batch_size, seconds)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return out


def w_rate(model, X, *, inference, batch_size, n_samples=250, sequential_tol=None):
    wob = WobblinessTransformer(
        model, n_samples=n_samples, batch_size=batch_size, random_state=0,
        inference=inference, sequential_tol=sequential_tol, input_shape=X.shape[1:],
    ).fit(X[:2])
    wob.transform(X[:2])  # warm-up
    start = time.perf_counter()
    counts = wob.vote_counts(X)
    return counts.sum() / (time.perf_counter() - start), wob.inference_path_


def loop_baseline(module, X, sigma=0.1, n_samples=250):
    """One noisy copy per forward (the naive implementation)."""
    module = module.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for x in torch.from_numpy(X):
            for _ in range(n_samples):
                module((x + sigma * torch.randn_like(x))[None]).argmax(1)
    return len(X) * n_samples / (time.perf_counter() - start)


def art_baseline(module, X, sigma=0.1, n_samples=250):
    """IBM ART's _prediction_counts: NumPy float64 noise, one input (n copies) at a time."""
    module = module.eval()
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    with torch.inference_mode():
        for x in X:
            noisy = x[None] + rng.normal(scale=sigma, size=(n_samples, *x.shape))
            module(torch.from_numpy(noisy.astype(np.float32))).argmax(1)
    return len(X) * n_samples / (time.perf_counter() - start)


def memory_probe(net, n_inputs, batch_size):
    """Child process: compute W for ``n_inputs`` and print peak memory as JSON."""
    factory, input_shape = NETS[net]
    X = np.random.RandomState(0).rand(n_inputs, *input_shape).astype(np.float32)
    device = resolve_device("auto")
    wob = WobblinessTransformer(factory(), n_samples=250, batch_size=batch_size, random_state=0)
    wob.fit(X[:2])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    wob.transform(X)
    print(json.dumps({
        "n_inputs": n_inputs,
        "forwards": n_inputs * 250,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024,
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
    batch_size = args.batch_size
    paths = ["eager", "channels_last", "frozen", "onnx"] + (["compile"] if args.compile else [])
    print(f"\n== {name} {input_shape} on {device} (batch {batch_size}, n_samples 250) ==")
    raw = raw_rates(module, input_shape, device, batch_size, args.seconds, paths)
    n_inputs = args.n_inputs or max(4, int(min(raw.values()) * args.seconds / 250 / 2))
    X = np.random.RandomState(1).rand(n_inputs, *input_shape).astype(np.float32)
    w, used = {}, {}
    for path in [*raw, "auto"]:
        w[path], used[path] = w_rate(module, X, inference=path, batch_size=batch_size)
    onnx_bytes = to_onnx(module, input_shape).SerializeToString()
    w["onnx model"], used["onnx model"] = w_rate(onnx_bytes, X, inference="auto", batch_size=batch_size)
    best_path = max(raw, key=raw.get)
    print(f"{'path':<15}{'raw fwd/s':>12}{'W fwd/s':>12}{'W/raw':>8}")
    for path in raw:
        print(f"{path:<15}{raw[path]:>12.0f}{w[path]:>12.0f}{w[path] / raw[path]:>8.2f}")
    print(f"{'auto -> ' + used['auto']:<15}{'':>12}{w['auto']:>12.0f}{w['auto'] / raw[best_path]:>8.2f}"
          f"   (vs best raw: {best_path})")
    print(f"{'ONNX model':<15}{raw['onnx']:>12.0f}{w['onnx model']:>12.0f}"
          f"{w['onnx model'] / raw['onnx']:>8.2f}   (model given as ONNX bytes, vs raw onnx)")
    small = X[: max(2, n_inputs // 8)]
    loop, art = loop_baseline(module, small), art_baseline(module, small)
    print(f"baselines (eager torch): per-input single-copy loop {loop:.0f}/s, "
          f"ART-style float64 per input {art:.0f}/s; W(auto) is {w['auto'] / art:.1f}x ART")
    memory = peak_memory(name, args.memory_sizes, batch_size)
    for row in memory:
        print(f"peak memory, {row['n_inputs']} inputs ({row['forwards']} forwards, {row['path']}): "
              f"RSS {row['peak_rss_mb']:.0f} MB, growth during transform {row['rss_growth_mb']:.0f} MB"
              + (f", CUDA {row['peak_cuda_mb']:.0f} MB" if row["peak_cuda_mb"] is not None else ""))
    return {
        "raw": raw, "w": w, "paths_used": used, "best_raw_path": best_path,
        "ratio_auto_vs_best_raw": w["auto"] / raw[best_path],
        "ratio_onnx_model_vs_raw_onnx": w["onnx model"] / raw["onnx"],
        "loop_baseline": loop, "art_baseline": art, "memory": memory, "n_inputs": n_inputs,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fashion-MNIST net only, 3 s windows")
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=6.0, help="timing per raw measurement")
    parser.add_argument("--n-inputs", type=int, default=None, help="inputs for W (default: ~half the window)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to build)")
    parser.add_argument("--memory-sizes", type=int, nargs=2, default=[20, 200])
    parser.add_argument("--out", default="bench-output/throughput.json")
    parser.add_argument("--memory-probe", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        net, n, batch = args.memory_probe
        return memory_probe(net, int(n), int(batch))
    if args.quick:
        args.nets, args.seconds = ["fashion-cnn"], 3.0
    warnings.simplefilter("ignore")
    device = resolve_device("auto")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    results = {name: bench_net(name, args, device) for name in args.nets}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump({"device": str(device), "results": results}, handle, indent=2, default=str)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
