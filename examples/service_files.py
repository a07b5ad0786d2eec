"""The files the service examples use: a backdoored digits net as ONNX and three batches.

Writes into ``--out`` (default: the current folder)

- ``digits.onnx``: the demo's recipe (threat model T1, 15% poisons, the ``square``
  corner trigger -> class 0, ``DigitsCNN``, 10 epochs), exported with ``to_onnx``;
- ``clean.npy``, ``more-clean.npy``: 25 clean test images each, float32 in [0, 1];
- ``triggered.npy``: 25 test images (none of class 0) carrying the trigger.

Usage::

    python examples/service_files.py [--out DIR]

About 15 s on 2 CPU cores. The service tests build the same net (tests/service/conftest.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from wobbledetect.lab import (
    DigitsCNN,
    backdoor_accuracy,
    draw_sets,
    get_trigger,
    load_digits_images,
    make_classifier,
    poison,
    to_onnx,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".", help="output folder (default: .)")
    out = Path(parser.parse_args(argv).out)
    out.mkdir(parents=True, exist_ok=True)

    X, y = load_digits_images()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.4, stratify=y, random_state=0
    )
    rng = np.random.RandomState(0)
    poisoned = poison(X_train, y_train, "square", "T1", target=0, random_state=rng)
    net = make_classifier(DigitsCNN, max_epochs=10, lr=2e-3, batch_size=64, seed=0,
                          verbose=0, device="cpu")
    net.fit(poisoned.X, poisoned.y)
    clean = draw_sets(X_test, 2, 25, random_state=rng)
    triggered = draw_sets(X_test[y_test != 0], 1, 25, transform=get_trigger("square"),
                          random_state=rng)[0]

    (out / "digits.onnx").write_bytes(to_onnx(net, (1, 8, 8)).SerializeToString())
    np.save(out / "clean.npy", clean[0].astype(np.float32))
    np.save(out / "more-clean.npy", clean[1].astype(np.float32))
    np.save(out / "triggered.npy", triggered.astype(np.float32))
    accuracy = backdoor_accuracy(net, X_test, y_test, "square", "T1", target=0)
    print(f"wrote digits.onnx, clean.npy, more-clean.npy, triggered.npy to {out} "
          f"(attack success {accuracy:.3f})")


if __name__ == "__main__":
    main()
