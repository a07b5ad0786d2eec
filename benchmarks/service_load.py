"""Load on the screening service: concurrent clients, each running screens back to back.

The server is ``wobbledetect serve`` in its own process (``--in-process`` runs it in this
one), serving the demo-sized net: the digits CNN (1x8x8 inputs, 10 classes) exported to
ONNX, with random weights by default -- the cost of a screen does not depend on what
the weights are (``--train`` trains the demo's backdoored net first, for real verdicts).
Each screen sends a clean set and one candidate set of digits images and waits for the
result; every client uses its own channel. Reported: screens/s over the whole run,
latency percentiles (queueing on the server included), and the number of failed calls,
which must be 0.

Usage::

    python benchmarks/service_load.py                       # 16 clients x 20 screens
    python benchmarks/service_load.py --clients 4 --screens 5 --n-samples 100

Numbers vary with machine load; this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np


def demo_model(train, seed=0):
    """ONNX bytes of the digits CNN, and digits images (clean, triggered)."""
    import torch

    from wobbledetect.lab import DigitsCNN, get_trigger, load_digits_images, to_onnx

    X, y = load_digits_images()
    triggered = get_trigger("square")(X[y != 0])
    if train:
        from wobbledetect.lab import make_classifier, poison

        poisoned = poison(X, y, "square", "T1", target=0, random_state=seed)
        net = make_classifier(DigitsCNN, max_epochs=10, lr=2e-3, batch_size=64, seed=seed,
                              verbose=0, device="cpu").fit(poisoned.X, poisoned.y)
    else:
        torch.manual_seed(seed)
        net = DigitsCNN()
    return to_onnx(net, (1, 8, 8)).SerializeToString(), X, triggered


def start_server(args, store):
    """The server's address and a function that stops it."""
    options = ["--max-concurrent-screens", str(args.max_concurrent_screens),
               "--max-queued-screens", str(max(args.clients, 1) * 2)]
    if args.in_process:
        from wobbledetect_service.limits import ServiceLimits
        from wobbledetect_service.server import create_server

        server, port = create_server(
            "127.0.0.1:0", store=store, limits=ServiceLimits(
                max_concurrent_screens=args.max_concurrent_screens,
                max_queued_screens=max(args.clients, 1) * 2))
        server.start()
        return f"127.0.0.1:{port}", lambda: server.stop(None).wait()
    process = subprocess.Popen(
        [sys.executable, "-m", "wobbledetect.cli", "serve", "--address", "127.0.0.1:0",
         "--store", store, "--log-level", "warning", *options],
        stdout=subprocess.PIPE, text=True,
    )
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in process.stdout], daemon=True).start()
    line = lines.get(timeout=120)
    port = int(line.rsplit(":", 1)[1])

    def stop():
        process.terminate()
        process.wait(timeout=60)

    return f"127.0.0.1:{port}", stop


def client_loop(address, model_id, X, triggered, args, index, latencies, errors, barrier):
    from wobbledetect.client import ScreeningClient

    rng = np.random.RandomState(index)
    with ScreeningClient(address, timeout=600) as client:
        barrier.wait()
        for i in range(args.screens):
            clean = X[rng.choice(len(X), args.set_size, replace=False)]
            candidate = triggered[rng.choice(len(triggered), args.set_size, replace=False)]
            started = time.perf_counter()
            try:
                client.screen(model_id, clean, candidate, sigma=args.sigma,
                              n_samples=args.n_samples, seed=index * 1000 + i)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(f"client {index} screen {i}: {exc}")
                continue
            latencies.append(time.perf_counter() - started)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--screens", type=int, default=20, help="screens per client")
    parser.add_argument("--set-size", type=int, default=25, help="inputs per set (clean and candidate)")
    parser.add_argument("--n-samples", type=int, default=250)
    parser.add_argument("--sigma", type=float, default=0.2)
    parser.add_argument("--max-concurrent-screens", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--in-process", action="store_true", help="run the server in this process")
    parser.add_argument("--train", action="store_true", help="train the demo's backdoored net first")
    parser.add_argument("--out", default="bench-output/service_load.json")
    args = parser.parse_args(argv)

    import warnings

    warnings.simplefilter("ignore")
    from wobbledetect.client import ScreeningClient

    model, X, triggered = demo_model(args.train)
    with tempfile.TemporaryDirectory() as store:
        address, stop = start_server(args, store)
        try:
            with ScreeningClient(address) as client:
                model_id = client.upload_model(model).model_id
                client.screen(model_id, X[:4], X[4:8], n_samples=8)  # warm-up
            latencies, errors = [], []
            barrier = threading.Barrier(args.clients + 1)
            threads = [
                threading.Thread(target=client_loop, args=(
                    address, model_id, X, triggered, args, i, latencies, errors, barrier))
                for i in range(args.clients)
            ]
            for thread in threads:
                thread.start()
            barrier.wait()
            started = time.perf_counter()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
        finally:
            stop()

    total = args.clients * args.screens
    forwards = len(latencies) * 2 * args.set_size * args.n_samples
    p50, p90, p99 = (float(np.percentile(latencies, q)) for q in (50, 90, 99)) if latencies else (0,) * 3
    results = {
        "clients": args.clients, "screens_per_client": args.screens, "screens": total,
        "set_size": args.set_size, "n_samples": args.n_samples, "sigma": args.sigma,
        "server": "in-process" if args.in_process else "subprocess",
        "max_concurrent_screens": args.max_concurrent_screens, "cpu_count": os.cpu_count(),
        "seconds": elapsed, "screens_per_second": len(latencies) / elapsed,
        "forwards_per_second": forwards / elapsed,
        "latency_p50_s": p50, "latency_p90_s": p90, "latency_p99_s": p99,
        "latency_max_s": max(latencies, default=0.0), "errors": len(errors),
    }
    print(f"{args.clients} clients x {args.screens} screens ({2 * args.set_size} inputs, "
          f"n_samples {args.n_samples} each), server {results['server']} with "
          f"max_concurrent_screens={args.max_concurrent_screens} on {os.cpu_count()} CPUs")
    print(f"{len(latencies)}/{total} screens in {elapsed:.1f} s: {results['screens_per_second']:.2f} "
          f"screens/s ({results['forwards_per_second']:.0f} forwards/s)")
    print(f"latency p50 {p50:.3f} s, p90 {p90:.3f} s, p99 {p99:.3f} s, max {results['latency_max_s']:.3f} s")
    print(f"errors: {len(errors)}")
    for line in errors[:10]:
        print("  " + line)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=2)
    print(f"wrote {args.out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
