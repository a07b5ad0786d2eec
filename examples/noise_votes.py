"""Where do noisy copies vote, on the plain T3 net and on the W-aware attack's net (issue 17)?

Usage::

    python examples/noise_votes.py --data-dir ../shared/data --cache-dir DIR

For the attacks run's ``T3/square/seed0`` and ``T3/square/seed0/wobble0.1`` nets (read
from the model cache, or trained there, ~2 min each on 2 CPU cores): on the first 50
Fashion-MNIST test images, at sigma 0.2, 0.3 and 0.5 (n = 100), the mean W, the share of
images with W = 0, and how many images' noisy copies vote mostly for each class.
"""
import argparse
import tempfile
from dataclasses import replace

import numpy as np

from wobbledetect import WobblinessTransformer, vote_entropy


def noise_votes(model, X, sigma, *, n_samples=100, n_classes=10, input_shape=None):
    """Mean W of ``X``, the share of its inputs with W = 0, and inputs per majority class.

    One pass of noisy copies (``vote_counts``, ``random_state=0``); W is their entropy.

    Returns
    -------
    dict
        ``"mean_W"``, ``"zero_share"`` and ``"per_class"`` (how many inputs' copies vote
        mostly for each class; ties go to the lower class).
    """
    wob = WobblinessTransformer(model, sigma=sigma, n_samples=n_samples, random_state=0,
                                input_shape=input_shape).fit(X[:1])
    counts = wob.vote_counts(X[None])[0]
    W = vote_entropy(counts)
    return {"mean_W": float(W.mean()), "zero_share": float((W == 0).mean()),
            "per_class": np.bincount(counts.argmax(1), minlength=n_classes).tolist()}


def main(argv=None):
    from wobbledetect.lab.reproduce._common import Experiment

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    exp = Experiment("noise-votes", tempfile.mkdtemp(), quick=False, data_dir=args.data_dir,
                     cache_dir=args.cache_dir, dataset="fashion-mnist", log=print)
    X = exp.data.X_test[:50]
    for changes in ({}, {"wobble_weight": 0.1, "wobble_sigma": 0.3}):
        config = replace(exp.net_config("T3", "square", 0), **changes)
        model = exp.net(config)
        for sigma in (0.2, 0.3, 0.5):
            v = noise_votes(model, X, sigma, input_shape=(1, 28, 28))
            print(f"{config.label}, sigma {sigma}: mean W {v['mean_W']:.3f}, share with W = 0 "
                  f"{v['zero_share']:.2f}, images per majority class {v['per_class']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
