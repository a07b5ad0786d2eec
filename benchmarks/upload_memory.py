"""Memory of the screening server while it receives large models, several at once.

The server is ``wobbledetect serve`` (the console script beside this interpreter) in its
own process, on loopback, with a temporary store. The model is a valid ONNX classifier
of digits-sized inputs (``['batch', 1, 8, 8]`` -> 10 classes) whose two weight
matrices make it about 116 MB. Four client threads upload it at once with
:meth:`wobbledetect.client.ScreeningClient.upload_model` (the same bytes by default;
``--distinct`` gives each thread a model of its own, so that every upload is checked).
Meanwhile the server's resident memory is sampled from ``/proc/<pid>/status``: VmRSS
every few milliseconds and VmHWM, the kernel's own peak. Printed: the RSS before the
uploads, the peak (VmHWM), the RSS a few seconds after the last upload answered, and
each upload's ``created`` flag.

The server imports whatever ``wobbledetect`` and ``wobbledetect_service`` this
environment finds first; set ``PYTHONPATH`` to measure another checkout (the line
``server code:`` says which one it was).

Usage::

    python benchmarks/upload_memory.py
    python benchmarks/upload_memory.py --uploads 4 --hidden 392000 --distinct

Numbers vary with the machine and the allocator; this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

MiB = 1 << 20


def big_model(hidden=392_000, seed=0, n_classes=10) -> bytes:
    """ONNX bytes of ``flatten(x) @ W1 -> relu -> @ W2 + b``, 4 * 74 * ``hidden`` bytes
    of float32 weights (about 116 MB for the default).

    Examples
    --------
    >>> data = big_model(hidden=1000)
    >>> 74 * 4 * 1000 < len(data) < 74 * 4 * 1000 + 1000
    True
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    scale = np.float32(1 / 8)
    w1 = rng.standard_normal((64, hidden), dtype=np.float32) * scale
    w2 = rng.standard_normal((hidden, n_classes), dtype=np.float32) * np.float32(hidden ** -0.5)
    bias = rng.standard_normal(n_classes, dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["x"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W1"], ["hidden"]),
            helper.make_node("Relu", ["hidden"], ["active"]),
            helper.make_node("MatMul", ["active", "W2"], ["logits"]),
            helper.make_node("Add", ["logits", "b"], ["scores"]),
        ],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", n_classes])],
        [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2"),
         numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def memory_kib(pid) -> dict:
    """VmRSS and VmHWM of a process, in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def start_server(store, args):
    """The ``wobbledetect serve`` process and its address."""
    script = Path(sys.executable).with_name("wobbledetect")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "wobbledetect.cli"]
    process = subprocess.Popen(
        [*command, "serve", "--address", "127.0.0.1:0", "--store", store,
         "--log-level", "warning", "--max-model-size", "512MiB",
         "--max-concurrent-screens", str(args.max_concurrent_screens)],
        stdout=subprocess.PIPE, text=True, env=os.environ.copy(),
    )
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                     daemon=True).start()
    line = lines.get(timeout=120)
    return process, f"127.0.0.1:{int(line.rsplit(':', 1)[1])}"


def server_code() -> str:
    """Where the server process finds the service package (same interpreter, same env)."""
    return subprocess.run(
        [sys.executable, "-c", "import wobbledetect_service; print(wobbledetect_service.__file__)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=4, help="client threads, one upload each")
    parser.add_argument("--hidden", type=int, default=392_000,
                        help="hidden units; the model holds 74 * 4 bytes per unit")
    parser.add_argument("--distinct", action="store_true",
                        help="a different model per thread (default: the same bytes)")
    parser.add_argument("--max-concurrent-screens", type=int, default=2)
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds after the last upload before 'RSS after' is read")
    args = parser.parse_args(argv)

    from wobbledetect.client import ScreeningClient

    models = [big_model(args.hidden, seed=i if args.distinct else 0)
              for i in range(args.uploads if args.distinct else 1)]
    print(f"server code: {server_code()}")
    print(f"model: {len(models[0]) / MiB:.1f} MiB x {args.uploads} uploads "
          f"({'distinct models' if args.distinct else 'the same bytes'}), "
          f"max_concurrent_screens={args.max_concurrent_screens}")
    with tempfile.TemporaryDirectory() as store:
        process, address = start_server(store, args)
        try:
            time.sleep(1.0)
            before = memory_kib(process.pid)
            samples, done = [], threading.Event()

            def sample():
                while not done.is_set():
                    samples.append(memory_kib(process.pid)["VmRSS"])
                    time.sleep(0.005)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            results = [None] * args.uploads
            barrier = threading.Barrier(args.uploads)

            def upload(i):
                with ScreeningClient(address, timeout=600) as client:
                    barrier.wait()
                    try:
                        results[i] = client.upload_model(models[i % len(models)]).created
                    except Exception as exc:  # noqa: BLE001 - reported
                        results[i] = f"{type(exc).__name__}: {exc}"

            started = time.perf_counter()
            threads = [threading.Thread(target=upload, args=(i,)) for i in range(args.uploads)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            time.sleep(args.settle)
            done.set()
            sampler.join()
            after = memory_kib(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=60)
    print(f"uploads took {elapsed:.1f} s; created: {results}")
    print(f"RSS before: {before['VmRSS'] / 1024:.0f} MiB")
    print(f"peak RSS:   {after['VmHWM'] / 1024:.0f} MiB (VmHWM; sampled max "
          f"{max(samples) / 1024:.0f} MiB)")
    print(f"RSS after:  {after['VmRSS'] / 1024:.0f} MiB ({args.settle:g} s after the last upload)")


if __name__ == "__main__":
    main()
