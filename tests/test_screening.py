"""ModelScreen: NC candidates, their W against clean sets, the sigma rule and the verdict."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone

from wobbledetect import ModelScreen, NeuralCleanse, WobbledetectWarning
from wobbledetect._screening import TABLE_COLUMNS, signed_anomaly_index


def _screen(model, **params):
    cleanse = NeuralCleanse(model, max_steps=10, batches_per_step=4)
    defaults = dict(n_samples=30, set_size=10, n_sets=4, sigmas=(0.05, 0.2, 0.4, 0.8),
                    random_state=0, device="cpu", cleanse=cleanse)
    return ModelScreen(model, **(defaults | params))


#: The progress reports of the ``screened`` fixture's fit.
PROGRESS = []


@pytest.fixture(scope="module")
def screened(skorch_net, image_data):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", WobbledetectWarning)
        screen = _screen(skorch_net).fit(image_data[0][:300], callback=PROGRESS.append)
    screen.caught_ = [w for w in caught if issubclass(w.category, WobbledetectWarning)]
    return screen


def test_progress_goes_cleanse_sigma_wobbliness_and_warnings_are_kept(screened):
    stages = [p.stage for p in PROGRESS]
    n_sigmas = len(screened.zero_share_)
    assert stages == sorted(stages, key=["cleanse", "sigma", "wobbliness"].index)
    assert [(p.done, p.total) for p in PROGRESS if p.stage == "sigma"] == [
        (i, 4) for i in range(1, n_sigmas + 1)]
    assert [(p.done, p.total) for p in PROGRESS if p.stage == "wobbliness"] == [
        (i, 4) for i in range(1, 5)]  # the null sets, then 3 classes
    cleanse = [p for p in PROGRESS if p.stage == "cleanse"]
    assert len(cleanse) == screened.cleanse_.n_steps_.sum() + 3 and cleanse[-1].done == 3
    # every warning the fit issued, in order, NC's first
    assert [str(w) for w in screened.warnings_] == [str(w.message) for w in screened.caught_]
    assert screened.warnings_[:len(screened.cleanse_.warnings_)] == screened.cleanse_.warnings_


def test_the_table_has_one_row_per_class_and_the_documented_columns(screened):
    t = screened.table_
    assert tuple(t) == TABLE_COLUMNS
    assert all(len(column) == 3 for column in t.values())
    assert t["class"].tolist() == [0, 1, 2]
    np.testing.assert_allclose(t["mask_norm"], screened.cleanse_.mask_norms_)
    np.testing.assert_allclose(t["nc_anomaly_index"], -signed_anomaly_index(t["mask_norm"]))
    np.testing.assert_allclose(t["smoothing_index"], signed_anomaly_index(t["levene_score"]))
    np.testing.assert_allclose(t["combined_index"], (t["nc_anomaly_index"] + t["smoothing_index"]) / 2)
    assert np.isfinite(t["combined_index"]).all()
    assert ((0 <= t["smoother_share"]) & (t["smoother_share"] <= 1)).all()
    assert screened.null_scores_.shape == (4,)


def test_the_verdict_follows_the_largest_combined_index(screened):
    combined = screened.table_["combined_index"]
    if np.isnan(combined).all():
        assert not screened.backdoored_ and screened.suspected_class_ == -1
    else:
        assert screened.score_ == pytest.approx(np.nanmax(combined))
        assert screened.suspected_class_ == int(np.nanargmax(combined))
        assert screened.backdoored_ == (screened.score_ > 2.0)
    text = screened.report()
    assert text.startswith(f"sigma {screened.sigma_:g}; clean null sets score")
    assert ("backdoored: class" in text) == screened.backdoored_


def test_auto_sigma_is_the_smallest_whose_clean_w_is_mostly_nonzero(screened):
    looked_at = [float(s) for s in screened.zero_share_]
    assert looked_at == [s for s in (0.05, 0.2, 0.4, 0.8)][:len(looked_at)]
    assert screened.sigma_ == looked_at[-1]
    assert screened.zero_share_[repr(screened.sigma_)] <= 0.5
    assert all(share > 0.5 for share in list(screened.zero_share_.values())[:-1])


def test_a_fixed_sigma_is_used_as_given(skorch_net, image_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WobbledetectWarning)
        screen = _screen(skorch_net, sigma=0.3).fit(image_data[0][:300])
    assert screen.sigma_ == 0.3 and list(screen.zero_share_) == ["0.3"]


def test_a_grid_where_clean_w_stays_zero_warns_and_uses_its_largest_sigma(skorch_net, image_data):
    with pytest.warns(WobbledetectWarning) as caught:
        screen = _screen(skorch_net, sigmas=(0.001, 0.002)).fit(image_data[0][:300])
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("sigma='auto' found no sigma in [0.001, 0.002]") for m in messages)
    assert screen.sigma_ == 0.002
    assert any(m.startswith("ModelScreen: at sigma 0.002, none of the stamped sets of class(es) "
                            "[0, 1, 2] could be tested") for m in messages)
    assert any(m.startswith("ModelScreen's smoothing index is undefined") for m in messages)
    assert [str(w) for w in screen.warnings_] == messages  # kept for the service, in order
    assert screen.table_["untested_sets"].tolist() == [4, 4, 4]
    # W all 0: no smoothing index; the combined index is NC's alone
    assert np.isnan(screen.table_["smoothing_index"]).all()
    np.testing.assert_allclose(screen.table_["combined_index"], screen.table_["nc_anomaly_index"])


def test_sets_the_levene_test_cannot_judge_are_counted_per_class_and_named(skorch_net, image_data):
    # At sigma 0.15 this net's clean W is mostly 0: some sets have no spread, others do.
    with pytest.warns(WobbledetectWarning) as caught:
        screen = _screen(skorch_net, sigma=0.15).fit(image_data[0][:300])
    untested = screen.table_["untested_sets"]
    assert untested.dtype.kind == "i" and ((0 <= untested) & (untested <= 4)).all()
    partial = (untested > 0) & (untested < 4)
    assert partial.any()  # the case the count is for: a median over tested and untested sets
    messages = [str(w.message) for w in caught]
    judged = [m for m in messages if "the Levene test could not judge" in m]
    assert len(judged) == 1
    for k, n in zip(screen.table_["class"][partial], untested[partial]):
        assert f"{n} of the 4 stamped sets of class {k}" in judged[0]
    assert ("none of the stamped sets" in " ".join(messages)) == (untested == 4).any()
    # rescoring at the same sigma counts the same sets
    rows = screen.rescore(0.15)[0]
    np.testing.assert_array_equal(rows["untested_sets"], untested)
    assert "untested" in screen.report().splitlines()[1]


def test_too_few_inputs_and_bad_grids_are_refused_by_name(skorch_net, image_data):
    with pytest.raises(ValueError, match=r"X holds 100 inputs; .* needs 120 there .* pass at least 240"):
        _screen(skorch_net).fit(image_data[0][:100])
    for bad in [(), (0.2, 0.1), (0.1, -1.0)]:
        with pytest.raises(ValueError, match="'sigmas' parameter must be a non-empty, increasing sequence"):
            _screen(skorch_net, sigmas=bad).fit(image_data[0][:300])


def test_the_screen_is_seeded_and_clones_with_its_model(skorch_net, image_data, screened):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WobbledetectWarning)
        again = _screen(skorch_net).fit(image_data[0][:300])
    for column in TABLE_COLUMNS:
        np.testing.assert_array_equal(again.table_[column], screened.table_[column])
    twin = clone(screened)
    assert twin.model is skorch_net and not hasattr(twin, "table_")


def test_rescore_measures_w_again_on_the_same_sets(screened):
    table, null = screened.rescore(screened.sigma_)
    for column in TABLE_COLUMNS:
        np.testing.assert_array_equal(table[column], screened.table_[column])
    np.testing.assert_array_equal(null, screened.null_scores_)
    other, _ = screened.rescore(0.3 if screened.sigma_ > 0.3 else 1.2)
    np.testing.assert_array_equal(other["mask_norm"], screened.table_["mask_norm"])
    assert not np.array_equal(other["median_W"], screened.table_["median_W"])
    with pytest.raises(ValueError, match="'sigma' parameter must be a positive float; got -1"):
        screened.rescore(-1)


@pytest.mark.slow  # a local Dask cluster of two processes
def test_screen_models_on_dask_workers_gives_the_serial_screens(skorch_net, onnx_proto, image_data,
                                                                 dask_scheduler):
    from wobbledetect import screen_models

    models = [skorch_net, onnx_proto.SerializeToString()]
    settings = _screen(None)
    lines = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WobbledetectWarning)
        serial = screen_models(models, image_data[0][:300], screen=settings)
        on_dask = screen_models(models, image_data[0][:300], screen=settings, scheduler=dask_scheduler,
                                log=lines.append)
    assert lines[0].startswith("[dask] 2 model screen(s) on 2 worker(s)")
    for here, there in zip(serial, on_dask):
        for column, values in here.table_.items():
            np.testing.assert_array_equal(there.table_[column], values, err_msg=column)
        np.testing.assert_array_equal(there.cleanse_.masks_, here.cleanse_.masks_)
        np.testing.assert_array_equal(there.null_scores_, here.null_scores_)
        assert (there.sigma_, there.score_, there.backdoored_) == (here.sigma_, here.score_, here.backdoored_)
    assert on_dask[0].model is not skorch_net  # a copy came back from the worker
    with pytest.raises(ValueError, match="'scheduler' parameter must be a Dask scheduler's address"):
        screen_models(models, image_data[0][:300], screen=settings, scheduler="nowhere")
