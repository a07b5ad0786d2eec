"""Fig. 2: W on clean test images as a function of n (noisy copies) and of sigma.

Pre-registered design (full mode):

- One clean :class:`~wobbledetect.lab.nets.SmallFashionCNN` (the paper's §3.1 net), seed
  0, trained like every lab net (Adam lr 1e-3, batch 128, 4 epochs, all training images).
- 250 clean test images.
- Left: box plots of W over n in (10, 25, 50, 100, 250, 500, 1000) at sigma = 0.3.
  Right: over sigma in (0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0) at n = 250.
- The JSON also records, per n, the mean W of the paper's plug-in estimator and of the
  Miller-Madow estimator (``entropy="miller-madow"``) from the same votes: the plug-in
  is biased low by about (m - 1) / 2n for m classes with votes, so its mean rises with
  n (the paper's observation), while Miller-Madow's moves much less. The copies are
  nested: W's noise is keyed by input and copy index, so the n = 100 copies of an image
  are the first 100 of its n = 1000 copies.

CIFAR-10 (``dataset="cifar10"``): the ResNet18, sigma (0.005, 0.01, 0.025, 0.05, 0.1,
0.15), n sweep at sigma = 0.05.

Quick mode: the quick net, 50 images, n in (10, 100, 250), sigma in (0.05, 0.3, 1.0).

Cost (full, Fashion-MNIST): 1 net (~3 min) and 250 x (1935 + 8 x 250) = 1M forwards
(~2 min).
"""

from __future__ import annotations

import numpy as np

from ... import vote_entropy
from ...plotting import plot_w_box_panels
from ._common import DISPLAY_NAMES, Experiment, sigma_key

__all__ = ["run"]

N_VALUES = (10, 25, 50, 100, 250, 500, 1000)
QUICK_N_VALUES = (10, 100, 250)


def run(
    out_dir, *, quick=False, data_dir=None, cache_dir=None, dataset="fashion-mnist", log=print,
    download=False, epochs=None, n_images=None, seed=0, random_state=0,
):
    """Run Fig. 2; write ``fig2.png`` and ``fig2.json`` to ``out_dir``.

    Parameters
    ----------
    out_dir, quick, data_dir, cache_dir, dataset, log, download, epochs
        As for every figure: see :func:`wobbledetect.lab.reproduce.fig4.run`.
    n_images : int, optional
        Clean test images; default 250 (quick: 50).
    seed : int, default=0
        Seed of the net.
    random_state : int, default=0
        Seed of the images drawn.

    Returns
    -------
    dict
        What ``fig2.json`` holds: ``"over_n"`` and ``"over_sigma"``, each with every W
        value plotted and its summary statistics.

    Examples
    --------
    >>> from wobbledetect.lab.reproduce import fig2
    >>> results = fig2.run("out", quick=True, data_dir="../shared/data")  # doctest: +SKIP
    >>> results["over_n"]["250"]["mean"]  # doctest: +SKIP
    """
    exp = Experiment("fig2", out_dir, quick=quick, data_dir=data_dir, cache_dir=cache_dir,
                     dataset=dataset, log=log, download=download,
                     epochs=epochs)
    setup = exp.setup
    n_images = int(n_images or (50 if quick else 250))
    n_values = QUICK_N_VALUES if quick else N_VALUES
    sigmas = setup.quick_fig2_sigmas if quick else setup.fig2_sigmas
    sigma_for_n, n_for_sigma = setup.fig2_sigma_for_n, setup.n_samples
    config = exp.net_config(None, None, seed, net=setup.small_net)
    exp.plan([config], n_images * (sum(n_values) + n_for_sigma * len(sigmas)))
    model = exp.net(config)
    data = exp.data
    images = data.X_test[np.random.RandomState(random_state).choice(len(data.X_test), n_images, replace=False)]
    sets = images[None]  # one set: W keeps the images' order

    over_n = {}
    wob = exp.wobbliness(model)
    for n in n_values:
        wob.set_params(n_samples=int(n))
        counts = exp.vote_counts(wob, sigma_for_n, sets, f"{n_images} clean images, n={n}")[0]
        plugin = vote_entropy(counts)
        miller_madow = vote_entropy(counts, estimator="miller-madow")
        over_n[str(n)] = _summary(plugin) | {"mean_miller_madow": float(miller_madow.mean())}
        log(f"[fig2] n={n} sigma={sigma_for_n:g}: mean W plug-in {plugin.mean():.3f}, "
            f"Miller-Madow {miller_madow.mean():.3f}, IQR {over_n[str(n)]['iqr']:.3f}")

    over_sigma = {}
    wob.set_params(n_samples=int(n_for_sigma))
    for sigma in sigmas:
        W = exp.W(wob, sigma, sets, f"{n_images} clean images")[0]
        over_sigma[sigma_key(sigma)] = _summary(W)

    png = _plot(
        exp.out_dir / "fig2.png", over_n, over_sigma, sigma_for_n=sigma_for_n, n_for_sigma=n_for_sigma,
        suptitle=(f"Fig. 2 - $W_\\sigma$ of {n_images} clean {DISPLAY_NAMES[dataset]} test images, "
                  f"clean {DISPLAY_NAMES[config.net]} (clean accuracy "
                  f"{exp.nets[config.label]['clean_accuracy']:.2f}, {exp.mode} mode)"),
    )
    return exp.finish(
        {
            "parameters": {
                "net": config.net, "seed": seed, "n_images": n_images, "n_values": list(n_values),
                "sigma_for_n": sigma_for_n, "sigmas": list(sigmas), "n_for_sigma": n_for_sigma,
                "random_state": random_state, "training": config.key_dict(),
            },
            "clean_accuracy": exp.nets[config.label]["clean_accuracy"],
            "over_n": over_n,
            "over_sigma": over_sigma,
        },
        [png],
    )


def _plot(path, over_n, over_sigma, *, sigma_for_n, n_for_sigma, suptitle):
    """The two panels, from what ``fig2.json`` holds."""
    left = f"over n (noisy copies per image), $\\sigma$={sigma_for_n:g}"
    right = f"over $\\sigma$, n={n_for_sigma}"
    return plot_w_box_panels(
        {
            left: {n: {"clean test images": value["W"]} for n, value in over_n.items()},
            right: {f"{float(s):g}": {"clean test images": value["W"]} for s, value in over_sigma.items()},
        },
        path,
        xlabel={left: "n (noisy copies per image)", right: r"noise scale $\sigma$"},
        lines={left: {
            "mean, plug-in (the paper's)": [value["mean"] for value in over_n.values()],
            "mean, Miller-Madow": [value["mean_miller_madow"] for value in over_n.values()],
        }},
        sharey=False,
        suptitle=suptitle,
    )


def _summary(W):
    q25, median, q75 = np.percentile(W, [25, 50, 75])
    return {"W": W, "mean": float(W.mean()), "median": float(median), "q25": float(q25),
            "q75": float(q75), "iqr": float(q75 - q25), "std": float(W.std())}
