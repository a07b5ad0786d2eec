"""The main job on embedded data: backdoor a digits CNN, then detect the trigger with W.

Steps (what ``make demo`` / ``wobbledetect demo`` runs):

1. scikit-learn's 8x8 digits, split 60/40 into train and test.
2. Threat model T1: 15% of the training set gets the 3x3 ``square`` trigger in the
   lower-right corner and the label 0.
3. A small CNN trained with skorch; clean accuracy and attack success rate on the test set.
4. Sets of 25 test images: clean, with the active trigger, and with an unused trigger
   (``checker``, never seen in training) -- the paper's Fig. 4 design.
5. sigma chosen by ``GridSearchCV`` over the Pipeline (W -> Levene), scored by ROC AUC,
   on *calibration* sets of all three kinds (the grid is fixed in advance). In every fold
   and in the refit the detector's reference is the clean sets alone
   (``levene__reference``): unused-trigger sets are negatives, but pooled into the
   reference they would widen its spread and make every clean set look "smoother".
6. The refitted Pipeline scores fresh *evaluation* sets of all three kinds: their ROC
   AUC (active trigger vs clean and unused trigger) is the number reported, with a box
   plot of W and the ROC curve as PNGs.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline

from .. import LeveneBackdoorDetector, WobblinessTransformer
from ..plotting import plot_roc, plot_w_boxes
from .datasets import load_digits_images
from .nets import DigitsCNN
from .sets import draw_sets
from .threat import poison
from .train import backdoor_accuracy, clean_accuracy, make_classifier
from .triggers import get_trigger
from .warning_counts import counting_library_warnings, summary_lines

__all__ = ["run_demo", "prepare_demo", "DemoSetup", "GROUPS", "SIGMA_GRID"]

#: The sigma grid searched, fixed before any result was seen.
SIGMA_GRID = (0.05, 0.1, 0.2, 0.4)


@dataclass
class DemoSetup:
    """The demo's backdoored net, its two numbers, and its calibration/evaluation sets.

    ``X_*`` are sets of shape ``(n_sets, set_size, 1, 8, 8)``, ``y_*`` their labels (1 =
    active trigger) and ``names_*`` their group ("clean", "active trigger", "unused
    trigger").
    """

    net: object
    clean_accuracy: float
    backdoor_accuracy: float
    unused_backdoor_accuracy: float
    X_cal: np.ndarray
    y_cal: np.ndarray
    names_cal: np.ndarray
    X_eval: np.ndarray
    y_eval: np.ndarray
    names_eval: np.ndarray


#: The three kinds of sets and the trigger each carries.
GROUPS = ("clean", "active trigger", "unused trigger")


def prepare_demo(
    *, trigger="square", unused_trigger="checker", target=0, max_epochs=30, set_size=50,
    n_calibration=20, n_evaluation=20, random_state=0, log=print,
):
    """Steps 1-4 of the demo: data, T1 poisoning, the skorch net, and its sets.

    Returns
    -------
    DemoSetup
    """
    rng = np.random.RandomState(random_state)
    X, y = load_digits_images()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.4, stratify=y, random_state=random_state
    )
    poisoned = poison(X_train, y_train, trigger, "T1", target=target, random_state=rng)
    log(f"digits: {len(X_train)} training images, {len(poisoned.indices)} poisoned (T1, "
        f"trigger {trigger!r} -> class {target}); {len(X_test)} test images")

    net = make_classifier(DigitsCNN, max_epochs=max_epochs, lr=2e-3, batch_size=64,
                          seed=random_state, verbose=1)
    net.fit(poisoned.X, poisoned.y)
    acc = clean_accuracy(net, X_test, y_test)
    asr = backdoor_accuracy(net, X_test, y_test, trigger, "T1", target=target)
    unused_asr = backdoor_accuracy(net, X_test, y_test, unused_trigger, "T1", target=target)
    log(f"clean accuracy {acc:.3f} | attack success rate {asr:.3f} "
        f"(unused trigger {unused_trigger!r}: {unused_asr:.3f})")

    # Triggered sets use test images whose true class is not the target (as for the ASR).
    pools = {"calibration": np.arange(len(X_test)) % 2 == 0}
    pools["evaluation"] = ~pools["calibration"]
    triggers = dict(zip(GROUPS, (None, trigger, unused_trigger)))

    def make_sets(split, n_sets):
        sets, labels, names = [], [], []
        for name, trig in triggers.items():
            pool = X_test[pools[split] & ((y_test != target) | (trig is None))]
            transform = None if trig is None else get_trigger(trig)
            sets.append(draw_sets(pool, n_sets, set_size, transform=transform, random_state=rng))
            labels += [int(name == "active trigger")] * n_sets
            names += [name] * n_sets
        return np.concatenate(sets), np.array(labels), np.array(names)

    return DemoSetup(net, acc, asr, unused_asr, *make_sets("calibration", n_calibration),
                     *make_sets("evaluation", n_evaluation))


def run_demo(
    out_dir, *, trigger="square", unused_trigger="checker", target=0, max_epochs=30,
    set_size=50, n_calibration=20, n_evaluation=20, n_samples=250, n_jobs=1,
    random_state=0, log=print,
):
    """Run the demo; write ``boxplot.png``, ``roc.png`` and ``results.json`` to ``out_dir``.

    Returns
    -------
    dict
        The numbers printed: accuracies, chosen sigma, AUCs, median W per group.
    """
    started = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    setup = prepare_demo(
        trigger=trigger, unused_trigger=unused_trigger, target=target, max_epochs=max_epochs,
        set_size=set_size, n_calibration=n_calibration, n_evaluation=n_evaluation,
        random_state=random_state, log=log,
    )
    net, acc, asr, unused_asr = (setup.net, setup.clean_accuracy, setup.backdoor_accuracy,
                                 setup.unused_backdoor_accuracy)
    # sigma is selected on every kind of set the detector will face (unused triggers
    # included, as negatives); the deployed detector's reference is clean sets only.
    X_cal, y_cal, names_cal = setup.X_cal, setup.y_cal, setup.names_cal
    X_eval, y_eval, names_eval = setup.X_eval, setup.y_eval, setup.names_eval

    pipeline = Pipeline([
        ("wobbliness", WobblinessTransformer(
            net, n_samples=n_samples, input_shape=X_eval.shape[2:], random_state=random_state)),
        ("levene", LeveneBackdoorDetector()),
    ])
    log(f"GridSearchCV over sigma {list(SIGMA_GRID)} on {len(X_cal)} calibration sets "
        f"of {set_size} (3-fold, ROC AUC)...")
    with counting_library_warnings() as counted:  # the grid's small sigmas warn, by design
        search = GridSearchCV(
            pipeline, {"wobbliness__sigma": list(SIGMA_GRID)}, scoring="roc_auc",
            cv=StratifiedKFold(3, shuffle=True, random_state=random_state), n_jobs=n_jobs,
        ).fit(X_cal, y_cal, levene__reference=names_cal == "clean")
    for line in summary_lines(counted, "the detector warned during the sigma search"):
        log(line)
    sigma = search.best_params_["wobbliness__sigma"]
    cv_auc = {str(s): float(a) for s, a in zip(SIGMA_GRID, search.cv_results_["mean_test_score"])}
    log("cross-validated AUC by sigma: " + ", ".join(f"{s}: {a:.3f}" for s, a in cv_auc.items()))
    log(f"chosen sigma = {sigma}; scoring {len(X_eval)} fresh evaluation sets...")

    wobbliness = search.best_estimator_.named_steps["wobbliness"]
    detector = search.best_estimator_.named_steps["levene"]  # reference: clean calibration sets
    W_eval = wobbliness.transform(X_eval)
    score = detector.decision_function(W_eval)
    auc = float(roc_auc_score(y_eval, score))
    is_clean = names_eval == "clean"
    auc_vs_clean = float(roc_auc_score(y_eval[(y_eval == 1) | is_clean], score[(y_eval == 1) | is_clean]))
    flagged = detector.predict(W_eval)
    medians = {name: float(np.median(W_eval[names_eval == name])) for name in GROUPS}

    boxplot = plot_w_boxes(
        {name: W_eval[names_eval == name] for name in GROUPS},
        os.path.join(out_dir, "boxplot.png"),
        title=f"Digits CNN, T1 backdoor: $W_\\sigma$ on evaluation sets (sigma={sigma}, n={n_samples})",
    )
    roc = plot_roc(
        {"active trigger vs clean + unused": (y_eval, score),
         "active trigger vs clean only": (y_eval[(y_eval == 1) | is_clean], score[(y_eval == 1) | is_clean])},
        os.path.join(out_dir, "roc.png"),
        title=f"Levene detector on {len(X_eval)} evaluation sets (sigma={sigma})",
    )
    results = {
        "clean_accuracy": acc,
        "backdoor_accuracy": asr,
        "unused_trigger_backdoor_accuracy": unused_asr,
        "sigma": sigma,
        "cv_auc_by_sigma": cv_auc,
        "auc": auc,
        "auc_vs_clean_only": auc_vs_clean,
        "flagged": {name: int(flagged[names_eval == name].sum()) for name in GROUPS},
        "sets_per_group": n_evaluation,
        "median_w": medians,
        "n_samples": n_samples,
        "set_size": set_size,
        "seconds": round(time.perf_counter() - started, 1),
        "files": [boxplot, roc],
        "library_warnings_in_sigma_search": counted,
    }
    with open(os.path.join(out_dir, "results.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    log("median W: " + ", ".join(f"{k} {v:.3f}" for k, v in medians.items()))
    log("flagged as trigger (of %d each): " % n_evaluation
        + ", ".join(f"{k} {v}" for k, v in results["flagged"].items()))
    log(f"ROC AUC (active trigger vs clean + unused-trigger sets): {auc:.3f}")
    log(f"wrote {boxplot}, {roc} and results.json in {results['seconds']} s")
    return results
