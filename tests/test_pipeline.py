"""The two estimators composed: Pipeline + GridSearchCV over sigma with ROC AUC scoring."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from wobbledetect import LeveneBackdoorDetector, WobblinessTransformer


@pytest.fixture(scope="module")
def labelled_sets(image_data):
    """Clean sets (0) and 'smoothed' sets (1): inputs pushed deep inside a class region.

    The smoothed inputs are the same images with the class quadrant brightened to 3.0,
    far from any decision boundary, so the net votes one class under noise -- W ~ 0, a
    stand-in for a working trigger on this untriggered toy net.
    """
    X, y = image_data
    rng = np.random.RandomState(0)
    deep = X.copy()
    for k in range(3):
        r, c = divmod(k, 2)
        deep[y == k, 0, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] = 3.0
    picks = lambda n: np.stack([rng.choice(len(X), 10, replace=False) for _ in range(n)])
    sets = np.concatenate([X[picks(9)], deep[picks(9)]])
    labels = np.r_[np.zeros(9, int), np.ones(9, int)]
    return sets, labels


@pytest.mark.parametrize("backend", ["skorch", "onnx"])
def test_grid_search_over_sigma_with_roc_auc(backend, skorch_net, onnx_proto, labelled_sets):
    X_sets, y = labelled_sets
    model = skorch_net if backend == "skorch" else onnx_proto
    pipeline = Pipeline([
        ("wobbliness", WobblinessTransformer(model, n_samples=40, input_shape=(1, 8, 8), random_state=0)),
        ("levene", LeveneBackdoorDetector()),
    ])
    search = GridSearchCV(
        pipeline,
        {"wobbliness__sigma": [0.3, 0.8]},
        scoring="roc_auc",
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
        n_jobs=2,
        error_score="raise",
    ).fit(X_sets, y)
    # The trained model survived clone + pickling into the workers: a re-initialised
    # net would vote at random and could not separate the two kinds of sets.
    assert search.best_score_ >= 0.9
    assert search.best_estimator_.named_steps["wobbliness"].model is model
    assert roc_auc_score(y, search.decision_function(X_sets)) >= 0.9
    # Every smoothed set is flagged. (Clean sets are not all spared: when more than half
    # of a clean set's W are 0, eq. 4 strips the rest and the set looks perfectly
    # smooth -- see test_levene.py::test_mostly_zero_clean_set_is_flagged.)
    assert search.predict(X_sets)[y == 1].tolist() == [1] * 9


@pytest.fixture(scope="module")
def dask_client(dask_scheduler):
    """A client of the session's local cluster of two worker processes."""
    from distributed import Client

    with Client(dask_scheduler) as client:
        yield client


@pytest.mark.slow  # starts a local Dask cluster of two processes
@pytest.mark.parametrize("backend", ["skorch", "onnx"])
def test_grid_search_on_dask_workers_gives_the_serial_results(backend, skorch_net, onnx_proto,
                                                               labelled_sets, dask_client):
    import joblib

    X_sets, y = labelled_sets
    model = skorch_net if backend == "skorch" else onnx_proto

    def search(n_jobs):
        pipeline = Pipeline([
            ("wobbliness", WobblinessTransformer(model, n_samples=40, input_shape=(1, 8, 8),
                                                 random_state=0, device="cpu")),
            ("levene", LeveneBackdoorDetector()),
        ])
        return GridSearchCV(pipeline, {"wobbliness__sigma": [0.3, 0.8]}, scoring="roc_auc",
                            cv=StratifiedKFold(3, shuffle=True, random_state=0), n_jobs=n_jobs,
                            error_score="raise")

    from distributed import get_task_stream

    serial = search(None).fit(X_sets, y)
    with joblib.parallel_backend("dask"), get_task_stream(dask_client) as stream:
        distributed_search = search(-1).fit(X_sets, y)
    # every fold's score, computed in the workers, equals the serial one exactly
    for key in ("split0_test_score", "split1_test_score", "split2_test_score", "mean_test_score"):
        np.testing.assert_array_equal(distributed_search.cv_results_[key], serial.cv_results_[key])
    assert distributed_search.best_params_ == serial.best_params_
    np.testing.assert_array_equal(distributed_search.decision_function(X_sets),
                                  serial.decision_function(X_sets))
    # the 2 sigmas x 3 folds ran as tasks in the workers' processes, not here
    workers = {task["worker"] for task in stream.data}
    assert len(stream.data) >= 6 and workers <= set(dask_client.scheduler_info()["workers"])
