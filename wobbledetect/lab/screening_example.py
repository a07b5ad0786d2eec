"""A backdoored model and three batches to screen: what the service's examples and tests use."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ScreeningExample", "make_screening_example"]


@dataclass
class ScreeningExample:
    """A backdoored digits net as ONNX, and three batches of 25 test images (float32).

    Attributes
    ----------
    onnx_bytes : bytes
    clean, more_clean : ndarray of shape (25, 1, 8, 8)
        Clean test images: a reference set and a clean candidate.
    triggered : ndarray of shape (25, 1, 8, 8)
        Test images of other classes than the target, carrying the trigger.
    backdoor_accuracy : float
        The trigger's attack success on the test split.
    test_images : ndarray of shape (719, 1, 8, 8)
        Every clean test image (the held-out 40% of digits): what a model screen
        (``ModelScreen``, ``ScreenModel``) starts from.
    """

    onnx_bytes: bytes
    clean: np.ndarray
    more_clean: np.ndarray
    triggered: np.ndarray
    backdoor_accuracy: float
    test_images: np.ndarray | None = None


def make_screening_example(random_state=0) -> ScreeningExample:
    """The demo's recipe (T1, 15% poisons, ``square`` trigger -> class 0, ``DigitsCNN``)
    at 10 epochs, exported with ``to_onnx``; about 10 s on 2 CPU cores.

    Used by ``examples/service_files.py`` (the files of docs/service.md) and the service
    tests.
    """
    from sklearn.model_selection import train_test_split

    from .. import to_onnx
    from .datasets import load_digits_images
    from .nets import DigitsCNN
    from .sets import draw_sets
    from .threat import poison
    from .train import backdoor_accuracy, make_classifier
    from .triggers import get_trigger

    X, y = load_digits_images()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.4, stratify=y, random_state=random_state
    )
    rng = np.random.RandomState(random_state)
    poisoned = poison(X_train, y_train, "square", "T1", target=0, random_state=rng)
    net = make_classifier(DigitsCNN, max_epochs=10, lr=2e-3, batch_size=64, seed=random_state,
                          verbose=0, device="cpu")
    net.fit(poisoned.X, poisoned.y)
    clean = draw_sets(X_test, 2, 25, random_state=rng)
    triggered = draw_sets(X_test[y_test != 0], 1, 25, transform=get_trigger("square"),
                          random_state=rng)[0]
    return ScreeningExample(
        onnx_bytes=to_onnx(net, (1, 8, 8)).SerializeToString(),
        clean=clean[0].astype(np.float32), more_clean=clean[1].astype(np.float32),
        triggered=triggered.astype(np.float32),
        backdoor_accuracy=backdoor_accuracy(net, X_test, y_test, "square", "T1", target=0),
        test_images=X_test.astype(np.float32),
    )
