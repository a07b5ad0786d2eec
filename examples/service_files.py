"""The files the service examples use: a backdoored digits net as ONNX and three batches.

Writes into ``--out`` (default: the current folder)

- ``digits.onnx``: the demo's recipe (threat model T1, 15% poisons, the ``square``
  corner trigger -> class 0, ``DigitsCNN``, 10 epochs), exported with ``to_onnx``;
- ``clean.npy``, ``more-clean.npy``: 25 clean test images each, float32 in [0, 1];
- ``triggered.npy``: 25 test images (none of class 0) carrying the trigger;
- ``test-images.npy``: all 719 clean test images, for ``screen-model``;
- ``calibration.npy``: 20 sets of 25 other clean test images (none in ``clean.npy`` or
  ``more-clean.npy``), shape (20, 25, 1, 8, 8), for ``screen --calibration``.

Usage::

    python examples/service_files.py [--out DIR]

About 10 s on 2 CPU cores (:func:`wobbledetect.lab.screening_example.make_screening_example`,
which the service tests use too).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from wobbledetect.lab.screening_example import make_screening_example


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".", help="output folder (default: .)")
    out = Path(parser.parse_args(argv).out)
    out.mkdir(parents=True, exist_ok=True)

    example = make_screening_example()
    (out / "digits.onnx").write_bytes(example.onnx_bytes)
    np.save(out / "clean.npy", example.clean)
    np.save(out / "more-clean.npy", example.more_clean)
    np.save(out / "triggered.npy", example.triggered)
    np.save(out / "test-images.npy", example.test_images)
    used = np.concatenate([example.clean, example.more_clean]).reshape(50, -1)
    others = example.test_images[
        ~(example.test_images.reshape(len(example.test_images), 1, -1) == used[None]).all(2).any(1)]
    np.save(out / "calibration.npy", others[:500].reshape(20, 25, *others.shape[1:]))
    print(f"wrote digits.onnx, clean.npy, more-clean.npy, triggered.npy, test-images.npy, "
          f"calibration.npy to {out} "
          f"(attack success {example.backdoor_accuracy:.3f})")


if __name__ == "__main__":
    main()
