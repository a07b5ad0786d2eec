"""The figures on the real Fashion-MNIST files: Fig. 4 and Fig. 6 in their quick mode (what
CI runs, numbers printed), the other figures at a tiny size, and the CLI wiring.

Only what holds by construction is asserted (files, keys, counts, ranges, shared nets),
never a scientific threshold: quick nets are small and the numbers are reported, not
judged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings

import numpy as np
import pytest

from wobbledetect.cli import main
from wobbledetect.lab.cache import config_key
from wobbledetect.lab.reproduce import (
    FIGURES, _common, attacks, cross_trigger, detectors, erasure, fig2, fig5, fig6, fig7, run_figure,
    select_sigma, set_size, set_size_zoo, smoothing_map, training_dynamics,
)
from wobbledetect.lab.triggers import TRIGGER_NUMBERS
from wobbledetect.lab.zoo import NetConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LOG_10 = np.log(10)
logger = logging.getLogger("wobbledetect.lab.reproduce")

#: The quick T1 / square / seed-0 net that Fig. 4 and Fig. 6 share.
QUICK_SQUARE = NetConfig(threat="T1", trigger="square", seed=0, epochs=2, n_train=12000)


def _report(capsys, lines):
    """Show ``lines`` in the test output even when pytest captures it, and log them."""
    with capsys.disabled():
        print()
        for line in lines:
            print(line)
    for line in lines:
        logger.info(line)


def _check_files(out_dir, name):
    assert (out_dir / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
    saved = json.loads((out_dir / f"{name}.json").read_text())  # strict JSON: no NaN
    assert saved["figure"] == name and saved["files"] == [f"{name}.png", f"{name}.json"]
    assert saved["seconds"] > 0
    for net in saved["nets"].values():
        assert 0.0 <= net["clean_accuracy"] <= 1.0
        assert net["backdoor_accuracy"] is None or 0.0 <= net["backdoor_accuracy"] <= 1.0
    return saved


def _p(value):
    return "NaN" if value is None else f"{value:.2g}"


@pytest.mark.slow
def test_fig4_quick(data_dir, lab_cache, tmp_path, capsys):
    lines = []
    results = run_figure("fig4", tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache,
                         log=lines.append)
    saved = _check_files(tmp_path, "fig4")
    # The detector's warnings are counted, not printed by the hundred, and saved.
    counted = saved["library_warnings"]
    assert set(counted) <= {"DegenerateWobblinessWarning", "SmallSetWarning"}
    for category, entry in counted.items():
        assert entry["count"] >= 1 and entry["first"]
        assert any(line.startswith(f"fig4: {entry['count']} {category}(s)") for line in lines)
    assert saved["mode"] == "quick" and saved["parameters"]["sigmas"] == [0.1, 0.3]
    assert saved["nets"]["T1/square/seed0"]["key"] == config_key(QUICK_SQUARE.key_dict())
    assert saved["nets"]["T1/square/seed0"]["n_train"] == 12000
    for sigma, cell in saved["per_sigma"].items():
        for name in ("clean (left)", "active trigger", "clean (right)", "unused trigger"):
            W = np.array(cell["W"][name])
            assert W.shape == (25,) and ((W >= 0) & (W <= LOG_10)).all()
            assert cell["median_w"][name] == pytest.approx(np.median(W))
        for test in cell["levene"].values():
            # None (NaN): reference and candidate both constant -- untestable, and said so.
            assert test["p_value"] is None or 0.0 <= test["p_value"] <= 1.0
            if test["p_value"] is None:
                assert counted["DegenerateWobblinessWarning"]["count"] >= 1
            score = test["score"]
            assert score["wobblier"] == -score["smoother"] and score["two-sided"] == abs(score["smoother"])
    asr = results["backdoor_accuracy"]
    assert 0.0 <= asr["active"] <= 1.0 and 0.0 <= asr["unused"] <= 1.0
    assert any(line.startswith("[fig4] quick mode on fashion-mnist: 1 net(s)") for line in lines)
    _report(capsys, [
        f"fig4 quick ({saved['seconds']:.0f} s): clean accuracy {saved['clean_accuracy']:.3f}, "
        f"attack success active {asr['active']:.3f}, unused {asr['unused']:.3f}",
        *(f"fig4 quick sigma={s}: median W clean {c['median_w']['clean (left)']:.3f} vs active "
          f"{c['median_w']['active trigger']:.3f} (Levene p "
          f"{_p(c['levene']['active trigger vs clean']['p_value'])}); clean "
          f"{c['median_w']['clean (right)']:.3f} vs unused {c['median_w']['unused trigger']:.3f} "
          f"(p {_p(c['levene']['unused trigger vs clean']['p_value'])})"
          for s, c in saved["per_sigma"].items()),
    ])


@pytest.mark.slow
def test_fig6_quick(data_dir, lab_cache, tmp_path, capsys):
    lines = []
    # Two of the quick mode's three trained triggers: the suite's time (the third adds a net).
    fig6.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache, log=lines.append,
             triggers=("square", "checker2"))
    saved = _check_files(tmp_path, "fig6")
    assert list(saved["auc"]) == ["T1"] and list(saved["auc"]["T1"]) == ["0.1", "0.3"]
    assert sorted(saved["nets"]) == ["T1/checker2/seed0", "T1/square/seed0", "clean/seed0"]
    # Shared with Fig. 4 through the cache key.
    assert saved["nets"]["T1/square/seed0"]["key"] == config_key(QUICK_SQUARE.key_dict())
    pairs = saved["pairs"]["T1"]
    assert len(pairs["label"]) == 3 * 2 * 9 and sum(pairs["label"]) == 2 * 2
    positives = {(n, c) for n, c, y in zip(pairs["net"], pairs["candidate"], pairs["label"]) if y}
    assert positives == {("T1/square/seed0", "square"), ("T1/checker2/seed0", "checker2")}
    for sigma in ("0.1", "0.3"):
        smoother = saved["auc"]["T1"][sigma]
        assert 0.0 <= smoother <= 1.0
        assert saved["auc_by_direction"]["wobblier"]["T1"][sigma] == pytest.approx(1 - smoother)
        for direction, scores in saved["scores"]["T1"][sigma].items():
            assert len(scores) == 54 and all(np.isfinite(scores)), direction
    cross = saved["cross_trigger_backdoor_accuracy"]
    assert set(cross["clean/seed0"]) == set(TRIGGER_NUMBERS.values())
    assert cross["T1/square/seed0"]["square"] == pytest.approx(
        saved["nets"]["T1/square/seed0"]["backdoor_accuracy"], abs=0.05)  # 1,000 of 9,000 images
    # The secondary analysis re-labels the same pairs by measured attack success.
    secondary = saved["secondary"]
    working = sum(cross[n][c] >= secondary["threshold"]
                  for n, c in zip(pairs["net"], pairs["candidate"]) if c != "clean")
    assert secondary["positives"] == {"T1": working}
    assert set(secondary["auc_by_direction"]["smoother"]["T1"]) == {"0.1", "0.3"}
    # Null sets: 3 per repetition per net, scored but never among the pairs.
    assert saved["parameters"]["null_sets"] == 3
    assert len(saved["null_scores"]["clean/seed0"]["0.3"]["smoother"]) == 2 * 3
    scoring = saved["scoring"]
    assert scoring["null"] == "null sets"
    assert scoring["pooled"]["paper"]["smoother"]["T1"]["0.3"] == pytest.approx(saved["auc"]["T1"]["0.3"])
    within = scoring["within_net"]["paper"]["smoother"]["T1"]["0.3"]
    assert sorted(within["per_net"]) == ["T1/checker2/seed0", "T1/square/seed0"]
    assert within["min"] <= within["median"] <= within["max"]
    unused = scoring["unused_trigger"]
    assert unused["never_trained"] == ["checker", "cross", "diagonal", "frame", "plus", "smiley"]
    cell = unused["auc"]["never trained"]["T1"]["0.3"]
    assert (cell["n_triggered"], cell["n_clean"]) == (2 * 2 * 6, 2 * 2)
    assert cell["low"] <= cell["auc"] <= cell["high"]
    assert set(unused["behaves_like_clean"]["other"]) == {"T1"}
    # Each net's W was written as it was measured; the same command again reuses it all
    # and writes the same numbers.
    assert sorted(p.name for p in (tmp_path / "nets").iterdir()) == [
        "T1_checker2_seed0.npz", "T1_square_seed0.npz", "clean_seed0.npz"]
    again = []
    fig6.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache, log=again.append,
             triggers=("square", "checker2"))
    assert sum("measured before, read from" in line for line in again) == 3
    assert not any("forwards in" in line for line in again)
    resumed = json.loads((tmp_path / "fig6.json").read_text())
    for key in ("auc_by_direction", "scores", "null_scores", "scoring", "cross_trigger_backdoor_accuracy"):
        assert resumed[key] == saved[key], key
    # A file of other parameters is measured again (the test of measure_nets); one repetition
    # without null sets cannot normalise (tests/lab/test_fig6_scoring.py).
    nets = saved["nets"]
    _report(capsys, [
        f"fig6 quick ({saved['seconds']:.0f} s): "
        + "; ".join(f"{label} clean {n['clean_accuracy']:.3f}"
                    + ("" if n["backdoor_accuracy"] is None else f" ASR {n['backdoor_accuracy']:.3f}")
                    for label, n in nets.items()),
        *(f"fig6 quick T1 sigma={s}: AUC smoother {saved['auc']['T1'][s]:.3f}, two-sided "
          f"{saved['auc_by_direction']['two-sided']['T1'][s]:.3f} (4 positives of 54 pairs)"
          for s in ("0.1", "0.3")),
        *(f"fig6 quick T1 sigma={s}, secondary (label = trigger works, attack success >= "
          f"{secondary['threshold']}): AUC smoother "
          f"{secondary['auc_by_direction']['smoother']['T1'][s]:.3f} ({working} positives)"
          for s in ("0.1", "0.3")),
    ])


# -- the other figures, shrunk to seconds -----------------------------------------------------

#: Quick mode shrunk further: 600 training images, 1 epoch, 8 noisy copies, one sigma.
TINY = dataclasses.replace(_common.SETUPS["fashion-mnist"], quick_n_train=600, quick_epochs=1,
                           quick_n_samples=8, quick_sigmas=(0.3,), quick_fig2_sigmas=(0.1, 0.5))


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(_common.SETUPS, "fashion-mnist", TINY)


@pytest.mark.slow
def test_fig2_tiny(data_dir, lab_cache, tmp_path, tiny):
    results = fig2.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache, log=lambda _: None)
    saved = _check_files(tmp_path, "fig2")
    assert list(saved["over_n"]) == ["10", "100", "250"] and list(saved["over_sigma"]) == ["0.1", "0.5"]
    for n, cell in saved["over_n"].items():
        assert len(cell["W"]) == 50 and cell["mean"] == pytest.approx(np.mean(cell["W"]))
        # Miller-Madow adds a non-negative correction to the same votes.
        assert cell["mean_miller_madow"] >= cell["mean"]
    assert results["parameters"]["net"] == "small-fashion-cnn"


@pytest.mark.slow
def test_fig5_tiny(data_dir, lab_cache, tmp_path, tiny):
    fig5.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache, log=lambda _: None)
    saved = _check_files(tmp_path, "fig5")
    points = saved["points"]
    assert len(points) == 2 * 10 and {p["trigger"] for p in points} == {"checker2", "smiley"}
    assert all(p["excluded"] == (p["backdoor_accuracy"] < 0.1) for p in points)
    assert saved["n_pairs"] == sum(not p["excluded"] for p in points)
    assert saved["correlation"]["0.3"]["n"] == saved["n_pairs"]
    tau = saved["correlation"]["0.3"]["kendall_tau"]
    assert tau is None or -1.0 <= tau <= 1.0


@pytest.mark.slow
def test_smoothing_map_tiny(data_dir, lab_cache, tmp_path, tiny):
    smoothing_map.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache,
                      triggers=("square", "blend"), log=lambda _: None)
    saved = _check_files(tmp_path, "smoothing_map")
    assert list(saved["auc"]) == ["T1"] and list(saved["auc"]["T1"]) == ["square", "blend"]
    cell = saved["cells"]["T1"]["blend"]["0.3"]
    assert cell["labels"] == [1, 1, 1, 0, 0, 0]
    assert cell["median_w_triggered"] == pytest.approx(np.median(cell["W"]["triggered"]))
    assert cell["auc"]["wobblier"] == pytest.approx(1 - cell["auc"]["smoother"])


@pytest.mark.slow
def test_erasure_tiny(data_dir, lab_cache, tmp_path, tiny):
    erasure.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache, n_images=6,
                log=lambda _: None)
    saved = _check_files(tmp_path, "erasure")
    assert list(saved["cells"]) == ["T1"] and list(saved["cells"]["T1"]) == ["square", "smiley"]
    for kind in ("triggered", "clean"):
        cell = saved["cells"]["T1"]["square"]["0.3"][kind]
        # Shares of the same votes: each in [0, 1], together at most 1 (target != true class).
        assert 0.0 <= cell["target_share"] <= 1.0 and 0.0 <= cell["true_class_share"] <= 1.0
        assert cell["target_share"] + cell["true_class_share"] <= 1.0 + 1e-12
        assert 0.0 <= cell["median_w"] <= np.log(10)


@pytest.mark.slow
def test_select_sigma_tiny(data_dir, lab_cache, tmp_path, monkeypatch):
    monkeypatch.setitem(_common.SETUPS, "fashion-mnist",
                        dataclasses.replace(TINY, quick_sigmas=(0.1, 0.3)))
    results = select_sigma.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache,
                               n_sets=3, log=lambda _: None)
    saved = _check_files(tmp_path, "select_sigma")
    assert saved["sigma"] in (0.1, 0.3) and list(saved["cv_auc"]) == ["0.1", "0.3"]
    assert 0.0 <= results["auc"] <= 1.0 and len(saved["evaluation"]["labels"]) == 9


@pytest.mark.slow
def test_fig7_quick(data_dir, lab_cache, tmp_path, capsys):
    pytest.importorskip("art", reason="fig7 needs the [uap] extra (installed by make test)")
    lines = []
    saved = fig7.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache, log=lines.append)
    assert (tmp_path / "fig7.png").read_bytes()[:8] == PNG_MAGIC
    assert json.loads((tmp_path / "fig7.json").read_text())["files"] == [
        "fig7.png", "fig7_perturbations.npz", "fig7.json"]
    assert sorted(saved["nets"]) == ["T1/square/seed0", "clean/seed0"]
    assert saved["nets"]["T1/square/seed0"]["key"] == config_key(QUICK_SQUARE.key_dict())
    with np.load(tmp_path / "fig7_perturbations.npz") as stored:
        assert sorted(stored.files) == ["T1_square_seed0", "clean_seed0"]
        for v in stored.values():
            assert v.shape == (1, 28, 28) and np.abs(v).max() <= 0.2 + 1e-6 and np.abs(v).max() > 0
    assert saved["parameters"]["uap"]["max_iter"] == 1 and saved["parameters"]["crafting_images"] == 20
    pairs = saved["pairs"]["T1"]
    assert pairs["label"] == [0, 1] * 4 and pairs["net"][:4] == ["clean/seed0"] * 4
    for sigma in ("0.1", "0.3"):
        smoother = saved["auc"]["T1"][sigma]
        assert 0 <= smoother <= 1
        assert saved["auc_by_direction"]["wobblier"]["T1"][sigma] == pytest.approx(1 - smoother)
        assert len(saved["within_net"]["smoother"]["T1"][sigma]["per_net"]) == 2
    for net, rates in saved["fooling_rate"].items():
        assert 0 <= rates["crafting"] <= 1 and 0 <= rates["test_sets"] <= 1
        # "did not take" is the design's rule: the fooling rate on the test sets
        said = [line for line in lines if line.startswith(f"[fig7] {net}: UAP fooling rate")]
        assert len(said) == 1 and ("did not take" in said[0]) == (rates["test_sets"] < fig7.TOOK), said
    # Each net's UAP and W were written as they were measured; the same command again
    # reads them back, crafts and measures nothing, and writes the same numbers.
    assert sorted(p.name for p in (tmp_path / "nets").iterdir()) == ["T1_square_seed0.npz", "clean_seed0.npz"]
    first = json.loads((tmp_path / "fig7.json").read_text())
    again = []
    fig7.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache, log=again.append)
    assert sum("measured before, read from" in line for line in again) == 2
    assert not any("forwards in" in line or "fooling rate" in line for line in again)
    resumed = json.loads((tmp_path / "fig7.json").read_text())
    for key in ("auc_by_direction", "within_net", "fooling_rate", "scores"):
        assert resumed[key] == first[key], key
    with capsys.disabled():
        print(f"\nfig7 quick ({saved['seconds']:.0f} s): fooling rates "
              + ", ".join(f"{n} {r['crafting']:.2f}/{r['test_sets']:.2f}" for n, r in saved["fooling_rate"].items())
              + "; AUC smoother " + ", ".join(f"{k} {v:.2f}" for k, v in saved["auc"]["T1"].items()))


@pytest.mark.slow
def test_nc_candidates_quick(data_dir, lab_cache, tmp_path):
    lines = []
    saved = run_figure("nc-candidates", tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache,
                       log=lines.append)
    _check_files(tmp_path, "nc_candidates")
    assert sorted(saved["candidates"]) == ["T1/square/seed0", "clean/seed0"]
    assert saved["nets"]["T1/square/seed0"]["key"] == config_key(QUICK_SQUARE.key_dict())
    for record in saved["candidates"].values():
        assert len(record["mask_norms"]) == 10 and len(record["success_other_training"]) == 10
        assert all(0 <= v <= 1 for v in record["success_other_training"])
        for sigma in ("0.1", "0.3"):
            assert len(record["median_score"][sigma]) == 10
            assert all(v in (0.0, 0.5, 1.0) for v in record["flagged_share"][sigma])
    for sigma, s in saved["summary"]["T1"].items():
        assert 0 <= s["candidates_flagged"] <= 1 and 0 <= s["clean_flagged"] <= 1
        assert saved["reproduced"]["T1"][sigma] == (s["candidates_flagged"] >= 0.9
                                                    and s["clean_flagged"] <= s["candidates_flagged"])
    assert len(saved["clean_scores"]["clean/seed0"]["0.3"]) == 2
    # Untestable sets (score exactly 0) are counted per net and class, and summed per threat.
    for sigma, s in saved["summary"]["T1"].items():
        per_net = [saved["candidates"][n]["untestable_sets"][sigma] for n in saved["candidates"]]
        assert all(len(u) == 11 and all(0 <= v <= 2 for v in u) for u in per_net)
        assert s["untestable_clean_sets"] == sum(u[0] for u in per_net) == sum(
            int(np.count_nonzero(np.asarray(saved["clean_scores"][n][sigma]) == 0)) for n in saved["candidates"])
        assert s["untestable_candidate_sets"] == sum(sum(u[1:]) for u in per_net)
        # the "wobblier" direction: the smoother score negated, so a candidate is flagged one way at most
        medians = np.concatenate([saved["candidates"][n]["median_score"][sigma] for n in saved["candidates"]])
        assert s["candidates_flagged_wobblier"] == np.mean(medians < np.log10(0.05))  # p < 0.05, wobblier
        assert s["candidates_flagged"] + s["candidates_flagged_wobblier"] <= 1
        assert (s["scored_candidate_sets"], s["scored_clean_sets"]) == (2 * 2 * 10, 2 * 2)
    # Another sitting: each net's candidates and scores are read back, not crafted again.
    first = json.loads((tmp_path / "nc_candidates.json").read_text())
    again = []
    run_figure("nc-candidates", tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache,
               log=again.append)
    assert sum("measured before, read from" in line for line in again) == 2
    assert not any("forwards in" in line or "norms" in line for line in again)
    resumed = json.loads((tmp_path / "nc_candidates.json").read_text())
    for key in ("candidates", "clean_scores", "summary", "reproduced"):
        assert resumed[key] == first[key], key


@pytest.mark.slow
def test_screen_zoo_quick(tmp_path, lab_cache):
    from wobbledetect.lab.reproduce import screen_zoo

    lines = []
    saved = run_figure("screen-zoo", tmp_path, quick=True, dataset="digits", cache_dir=lab_cache,
                       log=lines.append)
    assert (tmp_path / "screen_zoo.png").read_bytes()[:8] == PNG_MAGIC
    assert saved["parameters"]["nets"] == ["clean/seed0", "clean/seed1", "T1/square/seed0", "T1/square/seed1"]
    assert saved["parameters"]["backdoored"] == [0, 0, 1, 1]
    assert sorted(saved["auc"]) == sorted(screen_zoo.SCORES)
    for score in screen_zoo.SCORES:
        assert set(saved["auc"][score]) == {"auto", "0.1", "0.3"}
        assert all(0 <= v <= 1 for v in saved["auc"][score].values())
        assert all(v in (0.0, 0.5, 1.0) for v in saved["target_accuracy"][score].values())
    for label, record in saved["screens"].items():
        assert record["sigma_auto"] in (0.1, 0.3)
        assert len(record["table"]["class"]) == 10 and len(record["mask_norms"]) == 10
        assert record["auto"]["combined"]["class"] == record["suspected_class"]
        assert record["untested_sets"]["auto"] == sum(record["table"]["untested_sets"])
        assert set(record["untested_sets"]) == {"auto", "0.1", "0.3"}
        assert all(0 <= n <= 10 * 3 for n in record["untested_sets"].values())
        assert 0 < record["fit_seconds"] <= record["seconds"]
    fits = sorted(r["fit_seconds"] for r in saved["screens"].values())
    assert saved["fit_seconds_per_model"] == pytest.approx((fits[1] + fits[2]) / 2)
    # untestable sets, summed over the nets (3 sets per class in quick mode)
    untestable = saved["untestable_sets"]
    assert untestable["scored"] == 4 * 10 * 3 and untestable["not_recorded"] == []
    for key in ("auto", "0.1", "0.3"):
        total = sum(r["untested_sets"][key] for r in saved["screens"].values())
        assert untestable["untested"].get(key, 0) == total
    # a second run takes every screen from out_dir/nets/ and gives the same JSON
    again = run_figure("screen-zoo", tmp_path, quick=True, dataset="digits", cache_dir=lab_cache,
                       log=lines.append)
    assert again["screens"] == json.loads(json.dumps(saved["screens"]))
    assert sum("from " in line and "nets/" in line for line in lines) == 4
    assert sorted(p.suffix for p in (tmp_path / "nets").iterdir()) == [".json"] * 4  # no temporary file left


def test_digits_is_refused_for_the_papers_figures(tmp_path, capsys):
    assert main(["reproduce", "fig6", "--out", str(tmp_path), "--dataset", "digits"]) == 2
    assert "--dataset digits is for screen-zoo only" in capsys.readouterr().err
    with pytest.raises(ValueError, match="'dataset' parameter of screen-zoo must be one of"):
        run_figure("screen-zoo", tmp_path, dataset="cifar10")


def test_fig6_null_sets_leave_the_first_designs_sets_unchanged():
    from wobbledetect.lab.zoo import load_lab_data

    data = load_lab_data("digits")
    first = fig6._draw_sets(data, 2, np.random.RandomState(0))
    with_null = fig6._draw_sets(data, 2, np.random.RandomState(0), fig6.CANDIDATE_TRIGGERS, 3,
                                np.random.RandomState(1))
    assert first.shape[0] == 2 * 10 and with_null.shape[0] == 2 * 13
    np.testing.assert_array_equal(first.reshape(2, 10, -1), with_null.reshape(2, 13, -1)[:, :10])


@pytest.mark.slow
def test_training_dynamics_tiny(data_dir, tmp_path, tiny):
    lines = []
    # A cache of its own: the 1-epoch net must come from the 2-epoch run, not another test.
    training_dynamics.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=tmp_path / "cache",
                          epochs=(1, 2), repetitions=2, log=lines.append)
    saved = _check_files(tmp_path, "training_dynamics")
    assert sum("snapshot after epoch 1 cached" in line for line in lines) == 1
    assert sorted(saved["nets"]) == ["T1/square/seed0/e1", "T1/square/seed0/e2"]
    assert saved["nets"]["T1/square/seed0/e1"]["snapshot_of"]["epochs"] == 2
    assert saved["epochs"] == 2 and list(saved["cells"]["T1"]) == ["1", "2"]
    cell = saved["cells"]["T1"]["2"]["0.3"]
    for kind in ("reference", "clean", "triggered"):
        W = cell[kind]["W"]
        assert len(W) == 2 * 25 and cell[kind]["median"] == pytest.approx(np.median(W))
        assert cell[kind]["q1"] <= cell[kind]["median"] <= cell[kind]["q3"]
    assert 0.0 <= cell["target_share"] + cell["true_class_share"] <= 1.0 + 1e-12
    assert cell["auc"]["wobblier"] == pytest.approx(1 - cell["auc"]["smoother"])


@pytest.mark.slow
def test_set_size_tiny(data_dir, lab_cache, tmp_path, tiny):
    dynamics = {"cells": {"T1": {"1": {"0.3": {"auc": {"smoother": 0.75}}}}}}
    (tmp_path / "dyn.json").write_text(json.dumps(dynamics))
    set_size.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache, sizes=(25, 30),
                 repetitions=2, dynamics_json=tmp_path / "dyn.json", log=lambda _: None)
    saved = _check_files(tmp_path, "set_size")
    assert saved["epochs"] == 1 and saved["parameters"]["sizes"] == [25, 30]
    auc = saved["auc"]["T1"]
    assert set(auc["smoother"]["0.3"]) == {"25", "30"}
    assert auc["wobblier"]["0.3"]["30"] == pytest.approx(1 - auc["smoother"]["0.3"]["30"])
    assert saved["best_sigma"] == {"T1": "0.3"}
    assert saved["auc_at_best_sigma"]["T1"]["smoother"] == auc["smoother"]["0.3"]
    assert len(saved["median_w"]["T1"]["0.3"]["triggered"]) == 2


@pytest.mark.slow
def test_set_size_zoo_tiny(data_dir, lab_cache, tmp_path, tiny):
    from sklearn.metrics import roc_auc_score

    lines = []
    set_size_zoo.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache, sizes=(10, 20),
                     log=lines.append)
    saved = _check_files(tmp_path, "set_size_zoo")
    assert saved["parameters"]["sizes"] == [10, 20] and saved["parameters"]["repetitions"] == 2
    # Each net's W kept: reference + clean (+ triggered) per repetition, 20 inputs each.
    W = {}
    for label in ("clean/seed0", "T1/square/seed0"):
        with np.load(tmp_path / "nets" / f"{label.replace('/', '_')}.npz") as stored:
            W[label] = stored["W_0.3"]
    assert W["clean/seed0"].shape == (2, 2, 20) and W["T1/square/seed0"].shape == (2, 3, 20)
    # Pooled AUC: the triggered sets against the clean candidates of both nets, each
    # scored against its repetition's reference, on the first `size` inputs of each set.
    for size in (10, 20):
        scores = np.concatenate([_common.reference_scores(W[label][..., :size], "smoother") for label in W])
        labels = np.r_[0, 0, 0, 1, 0, 1]  # clean net: clean, clean; backdoored: clean, triggered x 2
        assert saved["auc"]["T1"]["smoother"]["0.3"][str(size)] == pytest.approx(roc_auc_score(labels, scores))
        within = saved["within_net"]["T1"]["smoother"]["0.3"][str(size)]
        assert within["per_net"]["T1/square/seed0"] == pytest.approx(roc_auc_score(labels[2:], scores[2:]))
        assert within["median"] == within["min"] == within["max"] == within["per_net"]["T1/square/seed0"]
        assert saved["auc"]["T1"]["wobblier"]["0.3"][str(size)] == pytest.approx(
            1 - saved["auc"]["T1"]["smoother"]["0.3"][str(size)])
    assert saved["best"]["T1"]["20"] == saved["auc"]["T1"]["smoother"]["0.3"]["20"]
    assert saved["reproduced"] == {"T1": saved["best"]["T1"]["20"] >= 0.95 or saved["best"]["T1"]["10"] >= 0.95}
    # The same command again reads every net back and writes the same numbers.
    again = []
    set_size_zoo.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache, sizes=(10, 20),
                     log=again.append)
    assert sum("measured before, read from" in line for line in again) == 2
    assert not any("forwards in" in line for line in again)
    assert json.loads((tmp_path / "set_size_zoo.json").read_text())["auc"] == saved["auc"]
    with pytest.raises(ValueError, match="'sizes' parameter must hold set sizes of at least 3"):
        set_size_zoo.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache, sizes=(2, 20))


def test_set_size_zoo_draws_the_same_images_for_every_net(data_dir, tmp_path, monkeypatch, tiny):
    seen = {}

    def W(self, wob, sigma, sets, what):
        seen[what] = sets
        return np.zeros(sets.shape[:2])

    monkeypatch.setattr(_common.Experiment, "W", W)
    monkeypatch.setattr(_common.Experiment, "net", lambda self, config, **kw: None)
    monkeypatch.setattr(_common.Experiment, "wobbliness", lambda self, model: None)
    exp = _common.Experiment("set_size_zoo", tmp_path, quick=True, data_dir=data_dir, cache_dir=tmp_path,
                             dataset="fashion-mnist", log=lambda _: None)
    for trigger in (None, "square", "checker"):
        config = exp.net_config("T1" if trigger else None, trigger, 0)
        exp.nets[config.label] = {}
        set_size_zoo._measure_net(exp, config, ((0.3,), 20, 2, 0, {}))
    clean, square, checker = seen["clean/seed0"], seen["T1/square/seed0"], seen["T1/checker/seed0"]
    assert clean.shape == (4, 20, 1, 28, 28) and square.shape == (6, 20, 1, 28, 28)
    for rep in range(2):  # reference and clean candidate: the same images on every net
        np.testing.assert_array_equal(square[3 * rep:3 * rep + 2], clean[2 * rep:2 * rep + 2])
        np.testing.assert_array_equal(checker[3 * rep:3 * rep + 2], clean[2 * rep:2 * rep + 2])
    # the triggered sets: the same base images under another stamp
    differs = square[2::3] != checker[2::3]
    assert differs.any() and not differs.all()


def test_best_sigma_comes_from_the_dynamics_run_ties_to_the_smaller():
    cells = {"T3": {"16": {"0.1": {"auc": {"smoother": 0.8}}, "0.2": {"auc": {"smoother": 0.9}},
                           "0.3": {"auc": {"smoother": 0.9}}}}}
    assert set_size.best_sigma({"cells": cells}, "T3", 16, (0.1, 0.2, 0.3)) == "0.2"
    with pytest.raises(ValueError, match="no T1 net at 16 epochs"):
        set_size.best_sigma({"cells": cells}, "T1", 16, (0.1,))


@pytest.mark.slow
def test_cross_trigger_tiny(data_dir, lab_cache, tmp_path, tiny):
    lines = []
    cross_trigger.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache, log=lines.append)
    saved = _check_files(tmp_path, "cross_trigger")
    matrix = saved["matrix"]["T1"]
    assert list(matrix) == ["clean", "ul-square", "ur-checker"]
    assert all(list(row) == ["ul-square", "ur-checker", "ll-cross", "lr-plus"] for row in matrix.values())
    off = [v for net, row in matrix.items() if net != "clean" for t, v in row.items() if t != net]
    assert saved["max_off_diagonal"]["T1"] == pytest.approx(max(off))
    assert saved["separated"]["T1"] == (max(off) < cross_trigger.SEPARATED_BELOW)
    assert any("separated" in line for line in lines)
    assert saved["nets"]["T1/ul-square/seed0"]["key"] == config_key(
        NetConfig(threat="T1", trigger="ul-square", seed=0, epochs=1, n_train=600).key_dict())


@pytest.mark.slow
def test_fig6_on_a_local_dask_cluster_gives_the_serial_results(data_dir, lab_cache, tmp_path, tiny,
                                                               dask_scheduler):
    from wobbledetect.lab.cache import ModelCache

    caches = {"dask": tmp_path / "cache-dask", "serial": lab_cache}

    def fig6_run(name, **kwargs):
        lines = []
        fig6.run(tmp_path / name, quick=True, data_dir=data_dir, cache_dir=caches[name],
                 triggers=("square",), log=lines.append, **kwargs)
        return json.loads((tmp_path / name / "fig6.json").read_text()), lines

    # The cluster trains its nets in two worker processes, into a cache of its own; the
    # serial nets are trained here (into the session's cache, where later tests find them).
    on_dask, lines = fig6_run("dask", scheduler=dask_scheduler)
    serial, _ = fig6_run("serial")
    assert any(line.startswith("[dask] 2 net(s) on 2 worker(s)") for line in lines)
    for key in ("auc", "auc_by_direction", "scores", "pairs", "cross_trigger_backdoor_accuracy"):
        assert on_dask[key] == serial[key], key
    for label, net in serial["nets"].items():
        assert on_dask["nets"][label]["clean_accuracy"] == net["clean_accuracy"]
        config = NetConfig(threat=net["threat"], trigger=net["trigger"], seed=0, epochs=1, n_train=600)
        weights = [ModelCache(caches[name]).paths(config.key_dict())[0].read_bytes()
                   for name in ("dask", "serial")]
        assert weights[0] == weights[1], label  # trained in a worker, weight for weight the same


def test_mixed_batches_needs_a_detectors_run(tmp_path):
    from wobbledetect.lab.reproduce import mixed_batches

    with pytest.raises(FileNotFoundError, match="reproduce detectors --out"):
        mixed_batches.run(tmp_path)
    with pytest.raises(ValueError, match="Leave out --epochs"):
        mixed_batches.run(tmp_path, epochs=16)
    with pytest.raises(ValueError, match="k=26 triggered inputs do not fit a set of 25"):
        mixed_batches.mix(np.zeros((2, 25)), np.ones((2, 25)), 26)
    with pytest.raises(ValueError, match="same shape"):
        mixed_batches.mix(np.zeros((2, 25)), np.ones((3, 25)), 1)


def test_detectors_and_mixed_batches_count_untestable_sets():
    """Untestable means p NaN: W without spread in the set and the reference (after eq. (4)).

    Synthetic W of one net: reference, 4 clean, 24 calibration, 4 triggered sets. At
    sigma 0.1 the reference is mostly 0 (constant after eq. (4)), so a set of zeros, or of
    zeros but two, cannot be judged; at sigma 0.3 it varies, and a clean set equal to it
    scores exactly 0 (p = 1) without being untestable.
    """
    from wobbledetect import LeveneBackdoorDetector
    from wobbledetect.lab.reproduce import mixed_batches

    rng = np.random.RandomState(0)
    low = rng.uniform(0.1, 2.0, size=(33, 25))
    low[0, :20] = 0.0                              # the reference: 20 of 25 zeros
    low[[1, 2, 7, 30], :] = 0.0                    # clean sets 0, 1; a calibration set; triggered set 1
    low[2, :2] = 0.5                               # zeros but two: eq. (4) leaves it constant
    high = rng.uniform(0.1, 2.0, size=(33, 25))
    high[1] = high[0]                              # clean set 0 is the reference itself
    W = {"0.1": low, "0.3": high}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = detectors._score_net(W, rng.uniform(size=(33, 25)), rng.randint(10, size=(33, 25)),
                                   (0.1, 0.3), 4, 24, backdoored=True)
    assert net["untestable_sets"] == {"clean": {"0.1": 2, "0.3": 0}, "calibration": {"0.1": 1, "0.3": 0},
                                      "triggered": {"0.1": 1, "0.3": 0}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert LeveneBackdoorDetector().fit(high[:1]).score_samples(high[1:2]) == 0  # tested, p = 1
    untestable, scored = detectors._untestable_totals(
        {"a": net, "b": {"untestable_sets": {**net["untestable_sets"], "triggered": None}}}, (0.1, 0.3),
        {"clean": 4, "calibration": 24, "triggered": 4})
    assert untestable["clean"] == {"0.1": 4, "0.3": 0} and untestable["triggered"] == {"0.1": 1, "0.3": 0}
    assert scored == {"clean": 8, "calibration": 48, "triggered": 4}

    # Mixed set j: the first k W of triggered set j, the rest of clean set j.
    arrays = {f"W_{key}": values for key, values in W.items()}
    mixed = mixed_batches._untestable(arrays, ["0.1", "0.3"], (1, 10, 25), 4, 24)
    assert mixed["clean"] == net["untestable_sets"]["clean"]
    assert mixed["mixed"]["25"] == net["untestable_sets"]["triggered"]
    # k = 1: clean sets 0 and 1 hold one non-zero W at most, which eq. (4) drops; k = 10: clean
    # set 0 takes 10 non-zero W and can be tested, clean set 1 takes 10 zeros and cannot
    assert mixed["mixed"]["1"] == {"0.1": 2, "0.3": 0} and mixed["mixed"]["10"] == {"0.1": 1, "0.3": 0}
    assert mixed_batches._untestable_totals([mixed, mixed])["mixed"]["1"] == {"0.1": 4, "0.3": 0}


@pytest.mark.slow
def test_detectors_tiny(data_dir, lab_cache, tmp_path, tiny):
    from sklearn.metrics import roc_auc_score

    from wobbledetect import ConformalDetector, LeveneBackdoorDetector

    results = detectors.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache,
                            log=lambda _: None)
    saved = _check_files(tmp_path, "detectors")
    stored = np.load(tmp_path / "nets" / "T1_square_seed0.npz")  # every score, for a later run
    net, clean_net = saved["per_net"]["T1/square/seed0"], saved["per_net"]["clean/seed0"]
    summary = saved["summary"]["T1"]
    assert list(summary["per_input"]) == list(detectors.INPUT_DETECTORS)
    assert list(summary["per_set"]) == list(detectors.SET_DETECTORS)
    assert clean_net["auc_per_set"]["mean STRIP"] is None  # a clean net has no positives

    # Recompute from the saved scores: sets are reference, 4 clean, 24 calibration, 4 triggered.
    W, H = stored["W_0.3"], stored["STRIP"]
    assert W.shape == H.shape == (33, 25)
    clean, calibration, triggered = W[1:5], W[5:29], W[29:]
    y_sets, y_inputs = np.r_[np.zeros(4), np.ones(4)], np.r_[np.zeros(100), np.ones(100)]
    evaluated = np.r_[1:5, 29:33]
    assert net["auc_per_input"]["STRIP"] == pytest.approx(roc_auc_score(y_inputs, -H[evaluated].ravel()))
    assert net["auc_per_set"]["mean W smoother"]["0.3"] == pytest.approx(
        roc_auc_score(y_sets, -W[evaluated].mean(1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        levene = LeveneBackdoorDetector().fit(W[:1])
        assert net["auc_per_set"]["W+Levene smoother"]["0.3"] == pytest.approx(
            roc_auc_score(y_sets, levene.decision_function(W[evaluated])))
        assert net["flagged"]["W+Levene smoother (paper p)"]["0.3"]["clean"] == levene.predict(clean).mean()
        calibrated = ConformalDetector(alpha=0.05, tail="lower").fit(calibration)
        assert net["flagged"]["mean W smoother (calibrated)"]["0.3"]["triggered"] == (
            calibrated.predict(triggered).mean())
    assert net["auto_sigma"] == (0.3 if net["zero_share"]["0.3"] <= 0.5 else None)
    # pooled over both nets' clean sets, weighted by their counts
    both = [n["flagged"]["STRIP per input (calibrated)"]["-"]["clean"] for n in (net, clean_net)]
    assert saved["false_positive_rates"]["per_input"]["STRIP per input (calibrated)"]["-"] == (
        pytest.approx(np.mean(both)))
    assert results["seconds_per_100_inputs"]["W"] > 0
    # Sets the Levene test could not judge: p NaN, recomputed from both nets' records.
    assert saved["scored_sets"] == {"clean": 8, "calibration": 48, "triggered": 4}
    for label, counted in (("T1/square/seed0", net), ("clean/seed0", clean_net)):
        record = np.load(tmp_path / "nets" / f"{label.replace('/', '_')}.npz")
        for key in saved["untestable_sets"]["clean"]:  # every sigma of the run
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                untestable = np.isnan(LeveneBackdoorDetector().fit(record[f"W_{key}"][:1])
                                      .p_values(record[f"W_{key}"][1:]))
            assert counted["untestable_sets"]["clean"][key] == untestable[:4].sum()
            assert counted["untestable_sets"]["calibration"][key] == untestable[4:28].sum()
            if label == "clean/seed0":
                assert untestable.size == 28 and counted["untestable_sets"]["triggered"] is None
            else:
                assert counted["untestable_sets"]["triggered"][key] == untestable[28:].sum()
    for part, by_sigma in saved["untestable_sets"].items():
        for key, n in by_sigma.items():
            per_net = [x["untestable_sets"][part] for x in (net, clean_net)
                       if x["untestable_sets"][part] is not None]
            assert 0 <= n <= saved["scored_sets"][part] and n == sum(c[key] for c in per_net)
    # a second run reads every net back and gives the same numbers
    lines = []
    detectors.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache, log=lines.append)
    assert sum("measured before, read from" in line for line in lines) == 2
    untestable = saved["untestable_sets"]
    assert saved["parameters"]["sigmas"] == [0.3] and any(line.startswith(
        "[detectors] sets the Levene test could not judge (p NaN: W without spread; scored 0), "
        f"clean / calibration / triggered of 8 / 48 / 4: sigma 0.3 {untestable['clean']['0.3']} / "
        f"{untestable['calibration']['0.3']} / {untestable['triggered']['0.3']}") for line in lines)
    again = json.loads((tmp_path / "detectors.json").read_text())  # strict JSON: NaN is null
    assert again["summary"] == saved["summary"] and again["per_net"] == saved["per_net"]

    # Mixed batches re-score these records: k = 25 is the run itself, k = 1 recomputed here.
    mixed = run_figure("mixed-batches", tmp_path, log=lambda _: None)
    assert mixed["files"] == ["mixed_batches.png", "mixed_batches.json"]
    assert (tmp_path / "mixed_batches.png").read_bytes()[:8] == PNG_MAGIC
    assert mixed["parameters"]["counts"] == [1, 25] and mixed["check_full_sets"] == {"T1/square/seed0": True}
    cell = mixed["per_net"]["T1/square/seed0"]["1"]
    one = np.concatenate([triggered[:, :1], clean[:, 1:]], axis=1)
    assert cell["mean W smoother"]["0.3"] == pytest.approx(
        roc_auc_score(y_sets, -np.r_[clean, one].mean(1)))
    # its untestable sets: the detectors run's clean ones, its triggered ones at k = 25, k = 1 here
    untestable = mixed["untestable_sets_per_net"]["T1/square/seed0"]
    assert untestable["clean"] == net["untestable_sets"]["clean"]
    assert untestable["mixed"]["25"] == net["untestable_sets"]["triggered"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert untestable["mixed"]["1"]["0.3"] == np.isnan(levene.p_values(one)).sum()
    assert mixed["untestable_sets"] == {"T1": untestable}
    assert mixed["scored_sets"] == {"T1": {"clean": 4, "mixed": 4}}
    per_input = ConformalDetector(alpha=0.05, tail="lower").fit(H[5:29].reshape(-1, 1))
    H_one = np.concatenate([H[29:, :1], H[1:5, 1:]], axis=1)
    smallest_p = per_input.p_values(np.r_[H[1:5], H_one].reshape(-1, 1)).reshape(8, 25).min(1)
    assert cell["STRIP per input, Bonferroni"] == pytest.approx(roc_auc_score(y_sets, -np.log10(smallest_p)))
    rates = mixed["true_positive_rates"]["T1"]["STRIP per input, Bonferroni"]
    assert rates["1"] == pytest.approx(np.mean(smallest_p[4:] < 0.05 / 25))
    assert mixed["false_positive_rates"]["T1"]["STRIP per input, Bonferroni"] == pytest.approx(
        np.mean(smallest_p[:4] < 0.05 / 25))
    with pytest.raises(ValueError, match="counts holds 26"):
        run_figure("mixed-batches", tmp_path, counts=(1, 26), log=lambda _: None)


@pytest.mark.slow
def test_attacks_tiny(data_dir, lab_cache, tmp_path, tiny):
    lines = []
    # Three of the quick cells (SAM and the penalties train in tests/lab/test_train.py): an
    # attack that does not take, one that does, and the W-aware attack.
    families = {name: attacks.QUICK_FAMILIES[name] for name in ("poison count (T3, square)",
                                                                "W-aware (T3, square)")}
    attacks.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache, log=lines.append,
                families=families)
    saved = _check_files(tmp_path, "attacks")
    cells = saved["cells"]
    assert list(cells) == list(families)
    assert list(cells["poison count (T3, square)"]) == ["10", "250"]
    for family, by_strength in cells.items():
        for strength, cell in by_strength.items():
            took = [n for n in cell["nets"] if n["took"]]
            assert cell["took"] == len(took)
            assert all(n["took"] == (n["attack_success"] >= attacks.TAKES_AT) for n in cell["nets"])
            if not took:  # reported as such, never scored
                assert cell["auc"] is None
                assert any(f"{n['label']} " in line and "did not take" in line
                           for n in cell["nets"] for line in lines)
                continue
            auc = cell["auc"]
            for key, value in auc["smoother"]["per_sigma"].items():
                assert auc["wobblier"]["per_sigma"][key] == pytest.approx(1 - value)
            assert auc["smoother"]["best"] == max(auc["smoother"]["per_sigma"].values())
            assert auc["smoother"]["fixed"] == auc["smoother"]["per_sigma"]["0.3"]
            assert 0 <= auc["strip_per_set"] <= 1 and 0 <= auc["strip_per_input"] <= 1
            assert cell["scored_sets"] == 2 * 2 * len(took)  # 2 repetitions, clean + triggered
            assert set(cell["untestable_sets"]) == set(auc["smoother"]["per_sigma"])
            assert all(0 <= n <= cell["scored_sets"] for n in cell["untestable_sets"].values())
    wobble = cells["W-aware (T3, square)"]["1.0"]["nets"][0]
    assert wobble["label"] == "T3/square/seed0/wobble1"
    assert saved["nets"][wobble["label"]]["key"] != saved["nets"]["T3/square/seed0"]["key"]
    # a second run reads every net back (the one that did not take as well)
    again = []
    attacks.run(tmp_path, quick=True, data_dir=data_dir, cache_dir=lab_cache, log=again.append,
                families=families)
    assert json.loads((tmp_path / "attacks.json").read_text())["cells"] == cells
    assert not any("forwards in" in line for line in again)  # no W measured again


def _attacks_table():
    import runpy
    from pathlib import Path

    return runpy.run_path(str(Path(__file__).resolve().parents[2] / "examples" / "attacks_table.py"))


def test_attacks_table_scores_a_run_in_progress_with_the_runs_own_code(tmp_path, capsys):
    from dataclasses import replace

    table = _attacks_table()
    exp = _common.Experiment("attacks", tmp_path, quick=False, data_dir=None, cache_dir=None,
                             dataset="fashion-mnist", log=lambda _: None)
    rng = np.random.RandomState(0)
    signature = {"sigmas": ["0.05", "0.3"]}
    scores = {"labels": [], "W": {"0.05": [], "0.3": []}, "strip_input": [], "strip_set": [], "y_input": []}
    # poison count 250: seeds 0 and 1 took, seed 2 did not; seed 2 of 25 poisons is not in yet
    written = [(250, 0, True), (250, 1, True), (250, 2, False), (25, 0, True)]
    for n_poisons, seed, took in written:
        config = replace(exp.net_config(None, None, seed), threat="T3", trigger="square", n_poisons=n_poisons)
        exp.nets[config.label] = {"clean_accuracy": 0.9 + seed / 100, "backdoor_accuracy": 0.99 if took else 0.1}
        arrays = {}
        if took:
            arrays = {"labels": np.r_[0, 0, 1, 1], "strip_set": rng.rand(4), "strip_input": rng.rand(100),
                      "y_input": np.repeat(np.r_[0, 0, 1, 1], 25),
                      "W_0.05": rng.rand(4) * np.r_[0, 1, 0, 1], "W_0.3": rng.rand(4) + np.r_[0, 0, 0.5, 0.5]}
            if n_poisons == 250:
                for name in scores:
                    if name != "W":
                        scores[name].append(arrays[name])
                for key in scores["W"]:
                    scores["W"][key].append(arrays[f"W_{key}"])
        _common.NetRecord(exp, config, signature).save(arrays, took=took)
    parameters, cells = table["from_records"](tmp_path)
    cell = cells["poison count (T3, square)"]["250"]
    assert cell["took"] == 2 and [n["took"] for n in cell["nets"]] == [True, True, False]
    assert cell["auc"] == attacks._aucs(scores, [0.05, 0.3])["auc"]
    # the sets whose Levene score is exactly 0 (the test could not judge them), per sigma
    assert (cell["untestable_sets"], cell["scored_sets"]) == ({"0.05": 4, "0.3": 0}, 8)
    assert cells["poison count (T3, square)"]["25"]["took"] == 1
    assert list(cells) == ["poison count (T3, square)"]
    lines = table["tables"](parameters, cells)
    row = next(line for line in lines if line.startswith("| poison count (T3, square) | poisons 250 |"))
    auc = cell["auc"]
    assert (f"| 2 of 3 | 0.910 (0.900–0.920) | 0.693 (0.100–0.990) | {auc['smoother']['best']:.2f} "
            f"(σ {auc['smoother']['best_sigma']:g}) | {auc['smoother']['fixed']:.2f} |") in row
    assert row.endswith("| 4 / 0 of 8 |")
    assert "| poisons 25 | 1 of 1 (of 3 nets, 1 measured) |" in next(
        line for line in lines if "| poisons 25 |" in line)
    assert "| poisons 5 | not measured yet |" in next(line for line in lines if "| poisons 5 |" in line)
    assert "- poison count (T3, square), 250: `T3/square/seed2` — attack success 0.100" in "\n".join(lines)
    # the command line: a folder needs --records, a JSON file needs none
    (tmp_path / "attacks.json").write_text(json.dumps({"parameters": parameters, "cells": cells}))
    assert table["main"]([str(tmp_path / "attacks.json")]) == 0
    assert capsys.readouterr().out.splitlines() == lines
    with pytest.raises(SystemExit):
        table["main"]([str(tmp_path)])
    assert "pass attacks.json, or the run's folder with --records" in capsys.readouterr().err
    # records of another run's parameters are refused, not mixed in
    config = replace(exp.net_config(None, None, 1), threat="T3", trigger="square", n_poisons=25)
    exp.nets[config.label] = {"clean_accuracy": 0.9, "backdoor_accuracy": 0.1}
    _common.NetRecord(exp, config, {"sigmas": ["0.3"]}).save({}, took=False)
    with pytest.raises(ValueError, match="one run's records only"):
        table["from_records"](tmp_path)


def test_attacks_table_subtracts_sams_adam_cell():
    cell = {"nets": [{"label": "x", "clean_accuracy": 0.9, "attack_success": 0.9, "took": True}], "took": 1}
    auc = lambda s, w: {"auc": {"smoother": {"best": s, "best_sigma": 0.3, "fixed": s - 0.1},
                                "wobblier": {"best": w, "best_sigma": 0.05, "fixed": w - 0.2},
                                "strip_per_set": 0.5, "strip_per_input": 0.5}}
    cells = {"poison count (T3, square)": {"250": cell | auc(0.9, 0.4)},
             "SAM (T3, square)": {"250": cell | auc(0.75, 0.6)}}
    parameters = {"fixed_sigma": 0.3, "takes_at": 0.5, "seeds": [0],
                  "families": {f: {"strength": "poisons", "cells": [250]} for f in cells}}
    lines = _attacks_table()["tables"](parameters, cells)
    assert "| 250 | smoother | -0.15 | -0.15 |" in lines
    assert "| 250 | wobblier | 0.20 | 0.20 |" in lines
    assert "- none" in lines


def test_mmd_estimator_bias_example_shows_the_bias_of_one_poisoned_row(data_dir, capsys):
    import re
    import runpy
    from pathlib import Path

    script = runpy.run_path(str(Path(__file__).resolve().parents[2] / "examples" / "mmd_estimator_bias.py"))
    script["main"](["--data-dir", str(data_dir)])
    rows = [tuple(map(float, re.findall(r"(\d+\.\d+)", line))) + (int(line.split()[0]),)
            for line in capsys.readouterr().out.splitlines()]
    assert [k for *_, k in rows] == [1, 2, 8, 64]
    (one, one_clean, _), *_, (many, many_clean, _) = rows
    # one poisoned row: the penalty is over 10 times that of 64, and nearly all of it is
    # there without any trigger (the bias of the biased estimate)
    assert one > 10 * many
    assert one_clean > 0.9 * one
    assert many_clean < many


# -- the CLI -----------------------------------------------------------------------------------


def test_cli_passes_its_options_to_the_figure(monkeypatch, tmp_path, capsys):
    from wobbledetect.lab import reproduce

    calls = []

    def fake(name, out_dir, **kwargs):
        calls.append((name, out_dir, kwargs))
        return {"auc": {"T1": {"0.1": 0.5}}}

    monkeypatch.setattr(reproduce, "run_figure", fake)
    assert main(["reproduce", "smoothing-map", "--quick", "--out", str(tmp_path),
                 "--data-dir", "D", "--cache-dir", "C"]) == 0
    name, out_dir, kwargs = calls[0]
    assert (name, out_dir) == ("smoothing-map", str(tmp_path))
    assert kwargs["quick"] and kwargs["data_dir"] == "D" and kwargs["cache_dir"] == "C"
    assert kwargs["dataset"] == "fashion-mnist" and not kwargs["download"]
    assert "auc: {'T1': {'0.1': 0.5}}" in capsys.readouterr().out


def test_cli_passes_epochs_and_figure_options_only_where_they_apply(monkeypatch, tmp_path, capsys):
    from wobbledetect.lab import reproduce

    calls = []
    monkeypatch.setattr(reproduce, "run_figure",
                        lambda name, out, **kwargs: calls.append((name, kwargs)) or {})
    assert main(["reproduce", "fig6", "--out", str(tmp_path), "--epochs", "16",
                 "--trigger-set", "separated"]) == 0
    assert calls[-1][1]["epochs"] == 16 and calls[-1][1]["trigger_set"] == "separated"
    assert main(["reproduce", "set-size", "--out", str(tmp_path), "--dynamics-json", "d.json"]) == 0
    assert calls[-1][1]["dynamics_json"] == "d.json" and "epochs" not in calls[-1][1]
    assert main(["reproduce", "fig6", "--out", str(tmp_path), "--epochs", "16",
                 "--snapshots", "4,8"]) == 0
    assert calls[-1][1]["snapshots"] == (4, 8)
    assert main(["reproduce", "fig4", "--out", str(tmp_path), "--trigger-set", "separated"]) == 2
    assert "--trigger-set is an option of fig6, cross-trigger only, not of fig4" in capsys.readouterr().err
    assert main(["reproduce", "fig4", "--out", str(tmp_path), "--snapshots", "2"]) == 2
    assert "--snapshots is an option of fig6 only, not of fig4" in capsys.readouterr().err
    assert len(calls) == 3
    with pytest.raises(SystemExit):
        main(["reproduce", "fig6", "--out", str(tmp_path), "--epochs", "0"])
    assert "must be a positive integer, got '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reproduce", "fig6", "--out", str(tmp_path), "--snapshots", "4,x"])
    assert "must be positive integers separated by commas, like 4 or 4,8; got '4,x'" in capsys.readouterr().err


def test_fig6_trains_its_nets_with_the_snapshots_asked_for(data_dir, tmp_path, monkeypatch):
    asked = []

    class Stop(Exception):
        pass

    def net(self, config, *, snapshots=(), name=None):
        asked.append((config.epochs, snapshots))
        raise Stop

    with pytest.raises(ValueError, match=r"'snapshots' parameter must hold epoch counts from 1 to 3 "
                       r"\(below the net's epochs, 4\); got \[4\]"):
        fig6.run(tmp_path, epochs=4, snapshots=(4,), data_dir=data_dir, cache_dir=tmp_path)
    monkeypatch.setattr(_common.Experiment, "net", net)
    with pytest.raises(Stop):
        fig6.run(tmp_path, epochs=16, snapshots=(8, 4), data_dir=data_dir, cache_dir=tmp_path)
    assert asked == [(16, [4, 8])]


def test_measure_nets_measures_each_net_once_and_reads_it_back_in_a_later_sitting(tmp_path):
    from types import SimpleNamespace

    lines, measured = [], []
    exp = SimpleNamespace(name="fig", out_dir=tmp_path, log=lines.append, nets={})
    clean = NetConfig(threat=None, trigger=None, seed=0)
    square = NetConfig(threat="T1", trigger="square", seed=0)

    def measure_net(exp, config, measure):
        measured.append(config.label)
        exp.nets[config.label] = {"clean_accuracy": 0.9}
        _common.NetRecord(exp, config, measure).save({"W": np.full(3, len(config.label))}, took=True)

    signature = {"sigmas": ["0.3"]}
    records = _common.measure_nets(exp, [square, clean, square], signature, measure_net, signature)
    assert measured == ["T1/square/seed0", "clean/seed0"]  # repeats measured once, in order
    assert list(records) == ["T1/square/seed0", "clean/seed0"]
    arrays, meta = records["clean/seed0"]
    assert arrays["W"].tolist() == [11, 11, 11] and meta["took"] is True
    assert meta["signature"]["key"] == config_key(clean.key_dict())
    # Another sitting: read back, nothing measured, the nets' entries restored.
    exp.nets.clear()
    again = _common.measure_nets(exp, [clean, square], signature, measure_net, signature)
    assert measured == ["T1/square/seed0", "clean/seed0"]
    assert again["T1/square/seed0"][0]["W"].tolist() == [15, 15, 15]
    assert exp.nets["clean/seed0"] == {"clean_accuracy": 0.9, "from_cache": True}
    assert sum("measured before, read from" in line for line in lines) == 2
    # Other parameters: measured again, and the file replaced.
    _common.measure_nets(exp, [clean], {"sigmas": ["0.5"]}, measure_net, {"sigmas": ["0.5"]})
    assert measured[-1] == "clean/seed0" and any("measured with other parameters" in x for x in lines)
    # A measure_net that saves nothing is an error, not a silent gap.
    with pytest.raises(RuntimeError, match="could not be read back"):
        _common.measure_nets(exp, [NetConfig(threat=None, trigger=None, seed=1)], signature, lambda *args: None, signature)


def test_epochs_must_be_a_positive_integer(tmp_path):
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="'epochs' parameter must be a positive integer"):
            _common.Experiment("x", tmp_path, quick=True, data_dir=None, cache_dir=None,
                               dataset="fashion-mnist", log=print, epochs=bad)


def test_cli_missing_data_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WOBBLEDETECT_DATA", raising=False)
    assert main(["reproduce", "fig4", "--quick", "--out", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "WOBBLEDETECT_DATA is not set" in capsys.readouterr().err


def test_cli_lists_every_figure(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in FIGURES)


EXAMPLES = {
    "fig2_parameters.py": "fig2", "fig4_active_vs_unused.py": "fig4",
    "fig5_accuracy_vs_w.py": "fig5", "fig6_levene_roc.py": "fig6",
    "smoothing_map.py": "smoothing-map", "select_sigma.py": "select-sigma",
    "trigger_erasure.py": "erasure",
}


@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_scripts_run_their_figure_with_the_cli_options(script, tmp_path, monkeypatch):
    import runpy
    import sys
    from pathlib import Path

    import wobbledetect.lab.reproduce as reproduce

    calls = []
    monkeypatch.setattr(reproduce, "run_figure",
                        lambda name, out, **kwargs: calls.append((name, out, kwargs)) or {})
    monkeypatch.setattr(sys, "argv", [script, "--quick", "--out", str(tmp_path), "--data-dir", "D"])
    path = Path(__file__).resolve().parents[2] / "examples" / script
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(path), run_name="__main__")
    assert exit_.value.code == 0
    (name, out, kwargs), = calls
    assert (name, out) == (EXAMPLES[script], str(tmp_path))
    assert kwargs.pop("log") is not None
    assert kwargs == {"quick": True, "data_dir": "D", "cache_dir": None,
                      "dataset": "fashion-mnist", "download": False}


def _screen_zoo_table():
    import runpy
    from pathlib import Path

    return runpy.run_path(str(Path(__file__).resolve().parents[2] / "examples" / "screen_zoo_table.py"))


def _screen(threat, nc, w, combined, w_03, verdict, untested=None, seed=0, trigger="square", flagged=()):
    """A screen-zoo record with given (score, class) pairs at sigma auto (w at 0.3 apart)."""
    pair = lambda v: {"score": v[0], "class": v[1]}  # noqa: E731
    auto = {"nc": pair(nc), "w": pair(w), "combined": pair(combined)}
    record = {"auto": auto, "0.3": auto | {"w": pair(w_03)}, "backdoored": verdict, "sigma_auto": 0.3,
              "seconds": 10.0, "threat": threat, "table": {"class": list(range(10))}, "seed": seed,
              "trigger": trigger if threat else None, "nc_flagged": list(flagged)}
    return record | ({"untested_sets": untested} if untested else {})


def test_screen_zoo_table_prints_the_model_level_numbers_of_a_zoo(tmp_path, capsys):
    table = _screen_zoo_table()
    screens = {  # two clean nets, then two backdoored ones (target 0)
        "clean/seed0": _screen(None, (0.5, 4), (1.0, 2), (0.0, 4), (0.1, 2), False, {"auto": 2, "0.3": 2}),
        "clean/seed1": _screen(None, (1.0, 5), (2.5, 1), (None, -1), (0.2, 1), False, {"auto": 0, "0.3": 0}),
        "T1/square/seed0": _screen("T1", (3.0, 0), (0.2, 0), (2.5, 0), (3.0, 0), True, {"auto": 1, "0.3": 1}),
        "T1/square/seed1": _screen("T1", (1.5, 3), (3.0, 0), (1.0, 1), (2.0, 0), False, {"auto": 0, "0.3": 0}),
    }
    saved = {"dataset": "digits", "screens": screens,
             "parameters": {"nets": list(screens), "backdoored": [0, 0, 1, 1], "sigmas": [0.3], "n_sets": 4}}
    path = tmp_path / "screen_zoo.json"
    path.write_text(json.dumps(saved))
    assert table["main"]([str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "**digits** (2 clean and 2 backdoored nets):"
    # NC: both backdoored above both clean; named 1 of 2; above 2: one backdoored net
    assert "| Neural Cleanse alone | 1.00 | (no σ) | 1 of 2 | 1 of 2 / 0 of 2 |" in lines
    # W: at auto 0.2 and 3.0 against 1.0 and 2.5 (AUC 0.5); at 0.3 perfect
    assert ("| W of the NC candidates alone (smoothing index) | 0.50 | 1.00–1.00 (best σ 0.3) | 2 of 2 "
            "| 1 of 2 / 1 of 2 |") in lines
    # combined: the undefined (None) score ranks below every defined one
    assert "| combined (`ModelScreen`'s verdict) | 1.00 | 1.00–1.00 (best σ 0.3) | 1 of 2 | 1 of 2 / 0 of 2 |" in lines
    assert "Stamped sets the Levene test could not judge, of 160 per σ: 3 at σ auto, 3 at σ 0.3." in lines
    # records from before the screen was timed apart have only the time with the grid
    assert "σ auto: 0.3; wall time per net: with W at the rest of the σ grid median 10 s (10–10 s)." in lines
    timed = {label: screen | {"fit_seconds": fit} for (label, screen), fit in zip(screens.items(), (4, 6, 5, 7))}
    path.write_text(json.dumps(saved | {"screens": timed}))
    assert table["main"]([str(path)]) == 0
    assert ("σ auto: 0.3; wall time per net: the screen (fit) median 6 s (4–7 s, 4 nets); with W at the "
            "rest of the σ grid median 10 s (10–10 s).") in capsys.readouterr().out.splitlines()
    # the same nets from their per-net records (a run in progress); mixed settings are refused
    nets = tmp_path / "run" / "nets"
    nets.mkdir(parents=True)
    for label, screen in screens.items():
        signature = {"key": label, "n_sets": 4, "sigmas": [0.3]}
        (nets / f"{label.replace('/', '_')}.json").write_text(json.dumps({"signature": signature, "screen": screen}))
    assert table["main"]([str(tmp_path / "run"), "--records"]) == 0
    from_records = capsys.readouterr().out.splitlines()
    assert from_records[0] == "**run (records so far)** (2 clean and 2 backdoored nets):"
    assert from_records[1:] == lines[1:len(from_records)]
    # a run that has screened clean nets only so far: no AUC and no target yet, said so
    early = tmp_path / "early" / "nets"
    early.mkdir(parents=True)
    for label in ("clean/seed0", "clean/seed1"):
        (early / f"{label.replace('/', '_')}.json").write_text(
            json.dumps({"signature": {"key": label, "n_sets": 4, "sigmas": [0.3]}, "screen": screens[label]}))
    assert table["main"]([str(tmp_path / "early"), "--records"]) == 0
    early_lines = capsys.readouterr().out.splitlines()
    assert "| Neural Cleanse alone | – | (no σ) | – | 0 of 0 / 0 of 2 |" in early_lines
    assert "| combined (`ModelScreen`'s verdict) | – | – | – | 0 of 0 / 0 of 2 |" in early_lines
    (nets / "odd.json").write_text(json.dumps({"signature": {"key": "x", "n_sets": 3, "sigmas": [0.3]},
                                               "screen": screens["clean/seed0"]}))
    with pytest.raises(ValueError, match="mixes screens of different settings"):
        table["from_records"](tmp_path / "run")


def test_screen_zoo_table_breaks_a_zoo_down_by_threat_model(tmp_path, capsys):
    table = _screen_zoo_table()
    screens = {  # NC ranks the T1 nets above both clean nets, the T3 net below them
        "clean/seed0": _screen(None, (1.0, 4), (1.0, 2), (1.0, 4), (1.0, 2), False),
        "clean/seed1": _screen(None, (2.5, 8), (0.5, 1), (1.5, 8), (0.5, 1), True, seed=1, flagged=(8,)),
        "T1/square/seed0": _screen("T1", (3.0, 0), (0.2, 0), (2.5, 0), (3.0, 0), True, flagged=(0,)),
        "T1/checker/seed0": _screen("T1", (4.0, 0), (0.1, 3), (2.0, 0), (0.1, 3), True, trigger="checker",
                                    flagged=(0, 3)),
        "T3/square/seed0": _screen("T3", (0.5, 7), (2.2, 0), (1.2, 0), (2.2, 0), False),
    }
    saved = {"dataset": "fashion-mnist", "screens": screens,
             "parameters": {"nets": list(screens), "backdoored": [0, 0, 1, 1, 1], "sigmas": [0.3], "n_sets": 4}}
    path = tmp_path / "screen_zoo.json"
    path.write_text(json.dumps(saved))
    assert table["main"]([str(path)]) == 0
    plain = capsys.readouterr().out.splitlines()
    assert not any("nets only" in line for line in plain)  # the breakdown is asked for, never implied
    assert table["main"](["--by-threat", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:len(plain)] == plain  # the zoo's own table first, unchanged
    t1 = lines.index("**fashion-mnist, T1 nets only (a breakdown, not pre-registered)** (2 clean and 2 backdoored nets):")
    t3 = lines.index("**fashion-mnist, T3 nets only (a breakdown, not pre-registered)** (2 clean and 1 backdoored nets):")
    assert t1 < t3
    assert "| Neural Cleanse alone | 1.00 | (no σ) | 2 of 2 | 2 of 2 / 1 of 2 |" in lines[t1:t3]
    assert "| Neural Cleanse alone | 0.00 | (no σ) | 0 of 1 | 0 of 1 / 1 of 2 |" in lines[t3:]
    # W names T3's target at 2.2, above both clean nets' 1.0 and 0.5 and above the index 2
    assert "| W of the NC candidates alone (smoothing index) | 1.00 | 1.00–1.00 (best σ 0.3) | 1 of 1 | 1 of 1 / 0 of 2 |" in lines[t3:]
    # --took leaves out the T3 net, whose backdoor did not take: NC then ranks perfectly
    saved["nets"] = {label: {"backdoor_accuracy": None if screen["threat"] is None else 0.05 if label.startswith("T3")
                             else 0.99} for label, screen in screens.items()}
    path.write_text(json.dumps(saved))
    assert table["main"](["--took", str(path)]) == 0
    took = capsys.readouterr().out.splitlines()
    assert took[0] == ("**fashion-mnist, nets whose backdoor took (attack success ≥ 0.5; 1 left out; a breakdown, "
                       "not pre-registered)** (2 clean and 2 backdoored nets):")
    assert "| Neural Cleanse alone | 1.00 | (no σ) | 2 of 2 | 2 of 2 / 1 of 2 |" in took
    assert table["main"](["--nets", str(path)]) == 0
    nets = capsys.readouterr().out.splitlines()
    assert "| clean/seed1 | 0.3 | 2.50 (8) | 0.50 (1) | 1.50 (8) | 8 | backdoored |" in nets
    assert "| T1/checker/seed0 | 0.3 | 4.00 (0) | 0.10 (3) | 2.00 (0) | 0, 3 | backdoored |" in nets
    assert "| T3/square/seed0 | 0.3 | 0.50 (7) | 2.20 (0) | 1.20 (0) | none | clean |" in nets
    with pytest.raises(SystemExit):
        table["main"](["--took", "--records", str(tmp_path)])
    assert "--took needs finished runs' JSONs" in capsys.readouterr().err


def test_nc_candidates_table_scores_a_run_in_progress_with_the_runs_own_code(tmp_path, capsys):
    import runpy
    from pathlib import Path

    table = runpy.run_path(str(Path(__file__).resolve().parents[2] / "examples" / "nc_candidates_table.py"))
    exp = _common.Experiment("nc_candidates", tmp_path, quick=False, data_dir=None, cache_dir=None,
                             dataset="fashion-mnist", log=lambda _: None)
    signature = {"sigmas": ["0.3"], "repetitions": 2}
    norms = np.r_[10.0, 40, 41, 42, 43, 44, 45, 46, 47, 48]
    for threat, trigger, flagged in ((None, None, []), ("T3", "square", [0])):
        config = exp.net_config(threat, trigger, 0)
        exp.nets[config.label] = {"clean_accuracy": 0.9}
        # two repetitions: the clean candidate set, then one set per class; class 0 is smooth on
        # the backdoored net, and one clean set (of the clean net) could not be judged
        scores = np.full((2, 11), 0.5)
        scores[:, 1] = 3.0 if threat else 0.5
        scores[0, 0] = 0.0 if not threat else 2.0
        if not threat:
            scores[:, 6] = -2.0  # class 5's candidate makes the clean net's sets wobblier
        arrays = {"mask_norms": norms if threat else norms[::-1], "anomaly_index": np.zeros(10),
                  "flagged": np.array(flagged, dtype=np.int64), "model_anomaly_index": np.float64(5.0 if threat else 0.9),
                  "reached_threshold": np.ones(10, bool), "steps": np.full(10, 50),
                  "success_crafting": np.full(10, 0.99), "success_other_training": np.r_[1.0, np.full(9, 0.95)],
                  "scores_0.3": scores, "clean_scores_0.3": scores[:, 0],
                  "median_score_0.3": np.median(scores[:, 1:], axis=0),
                  "flagged_share_0.3": np.mean(scores[:, 1:] > 1.3, axis=0)}
        _common.NetRecord(exp, config, signature).save(arrays)
    nets, candidates, summary, reproduced, planned = table["from_records"](tmp_path)
    # the clean nets are shared by both threat models
    assert nets == {"T3": [("clean/seed0", False), ("T3/square/seed0", True)], "T1": [("clean/seed0", False)]}
    assert planned == {"T3": 12, "T1": 12}
    s = summary["T3"]["0.3"]
    # 1 of the 20 (net, class) candidates is flagged; the target's on the backdoored net; 1 of 4 clean sets
    assert (s["candidates_flagged"], s["target_candidates_flagged"], s["clean_flagged"]) == (0.05, 1.0, 0.25)
    assert (s["untestable_clean_sets"], s["scored_clean_sets"], s["scored_candidate_sets"]) == (1, 4, 40)
    assert (s["candidates_flagged_wobblier"], s["target_candidates_flagged_wobblier"],
            s["clean_flagged_wobblier"]) == (0.05, 0.0, 0.0)
    assert reproduced["T3"]["0.3"] is False
    assert table["main"]([str(tmp_path), "--records"]) == 0
    out = capsys.readouterr().out
    assert "**T3** (1 clean and 1 backdoored nets, 2 of the 12 planned):" in out
    assert "the smallest mask is the target's on 1 of 1 backdoored nets, and NC flags the target on 1" in out
    assert "median 0.95, min 0.95, 10% ≥ 0.99" in out
    assert "| 0.3 | 0.05 | 1.00 | 0.25 | +0.50 | 0.05 / 0.00 / 0.00 | 0 of 40 / 1 of 4 | no |" in out


def test_noise_votes_example_counts_where_noisy_copies_vote():
    import runpy
    from pathlib import Path

    import torch

    script = runpy.run_path(str(Path(__file__).resolve().parents[2] / "examples" / "noise_votes.py"))
    X = np.random.RandomState(0).rand(20, 1, 4, 4).astype(np.float32)

    class Constant(torch.nn.Module):  # every copy votes class 3: W = 0 everywhere
        def forward(self, x):
            return torch.nn.functional.one_hot(torch.full((len(x),), 3), 10).float() + 0 * x.sum()

    v = script["noise_votes"](Constant(), X, 0.3, n_samples=50)
    assert v == {"mean_W": 0.0, "zero_share": 1.0, "per_class": [0, 0, 0, 20, 0, 0, 0, 0, 0, 0]}

    class Threshold(torch.nn.Module):  # class 1 where the first pixel exceeds 0.5, else 0
        def forward(self, x):
            s = 50 * (x.reshape(len(x), -1)[:, :1] - 0.5)
            return torch.cat([-s, s, torch.full((len(x), 8), -1e3)], dim=1)

    v = script["noise_votes"](Threshold(), X, 0.3, n_samples=50)
    assert v["per_class"][2:] == [0] * 8 and sum(v["per_class"]) == 20
    assert v["per_class"][1] == int((X[:, 0, 0, 0] > 0.5).sum())  # copies vote mostly as the input
    assert 0 < v["mean_W"] <= np.log(2) and v["zero_share"] < 1.0


def test_untestable_counts_names_only_the_sigmas_with_untestable_sets():
    assert _common.untestable_counts({"0.05": 3, "0.1": 0, "0.2": 1}) == "3 at sigma 0.05, 1 at sigma 0.2"
    assert _common.untestable_counts({"0.05": 0}) == ""
