"""Fig. 6 re-scored: pooled, within each net, normalised per net -- on hand-made scores
whose three AUCs are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wobbledetect.lab.reproduce import fig6_scoring, run_figure
from wobbledetect.lab.reproduce.fig6_scoring import normalise_per_net, score_breakdown


def _pairs(rows):
    """Fig. 6's ``pairs`` of one threat model and their scores, from (net, repetition,
    candidate, label, score) rows; the label is 1 for the net's own trigger."""
    pairs = {"net": [], "repetition": [], "candidate": [], "label": []}
    scores = []
    for net, rep, candidate, label, score in rows:
        for key, value in zip(pairs, (net, rep, candidate, label)):
            pairs[key].append(value)
        scores.append(score)
    return pairs, scores


def _two_nets(null_scores=None):
    """Net "a" scores everything around 0, net "b" around 10; within each net the trigger
    scores highest, but b's clean sets outscore a's triggered ones."""
    pairs, scores = _pairs(
        (net, rep, candidate, label, offset + value)
        for net, offset in (("a", 0.0), ("b", 10.0))
        for rep in range(3)
        for candidate, label, value in (("clean", 0, rep * 0.5), ("square", 1, 4.0 + rep * 0.1),
                                        ("plus", 0, 1.0 + rep * 0.2)))
    results = {"pairs": {"T1": pairs}, "scores": {"T1": {"0.3": {"smoother": scores}}}}
    if null_scores is not None:
        results["null_scores"] = null_scores
    return results


def test_pooling_hides_what_each_net_separates_and_normalising_recovers_it():
    out = score_breakdown(_two_nets())
    assert out["null"] == "leave one repetition out"
    # b's 6 negatives all outscore a's 3 positives: 18 of 6 x 12 (positive, negative) pairs lost.
    assert out["pooled"]["paper"]["smoother"]["T1"]["0.3"] == pytest.approx(1 - 18 / 72)
    within = out["within_net"]["paper"]["smoother"]["T1"]["0.3"]
    assert within["per_net"] == {"a": 1.0, "b": 1.0} and within["median"] == 1.0
    assert out["normalised"]["paper"]["smoother"]["T1"]["0.3"] == 1.0
    # Clean-only negatives: 3 positives and 3 clean sets per net.
    assert out["pooled"]["clean-only"]["smoother"]["T1"]["0.3"] == pytest.approx(1 - 9 / 36)
    assert out["normalised"]["clean-only"]["smoother"]["T1"]["0.3"] == 1.0


def test_leave_one_repetition_out_null():
    results = _two_nets()
    pairs, scores = results["pairs"]["T1"], results["scores"]["T1"]["0.3"]["smoother"]
    z = normalise_per_net(pairs, scores)
    # Net a, repetition 0: null = clean scores of repetitions 1, 2 = [0.5, 1.0].
    null = np.array([0.5, 1.0])
    assert z[1] == pytest.approx((4.0 - null.mean()) / null.std(ddof=1))
    # Net b is a shifted copy of net a: same z.
    np.testing.assert_allclose(z[:9], z[9:])


def test_null_sets_are_used_when_the_run_drew_them():
    null = {net: {"0.3": {"smoother": [offset, offset + 2.0]}} for net, offset in (("a", 0.0), ("b", 10.0))}
    out = score_breakdown(_two_nets(null))
    assert out["null"] == "null sets"
    z = normalise_per_net(_two_nets()["pairs"]["T1"], _two_nets()["scores"]["T1"]["0.3"]["smoother"],
                          {"a": [0.0, 2.0], "b": [10.0, 12.0]})
    assert z[1] == pytest.approx((4.0 - 1.0) / np.std([0.0, 2.0], ddof=1))
    assert out["normalised"]["paper"]["smoother"]["T1"]["0.3"] == 1.0


def test_a_null_without_spread_only_centres_and_an_empty_one_is_refused():
    pairs = {"net": ["a", "a"], "repetition": [0, 1], "candidate": ["clean", "square"]}
    assert normalise_per_net(pairs, [1.0, 3.0], {"a": [2.0, 2.0]}).tolist() == [-1.0, 1.0]
    with pytest.raises(ValueError, match="Net 'a' has no null scores"):
        normalise_per_net({"net": ["a"], "repetition": [0], "candidate": ["square"]}, [1.0])


def test_rescoring_a_finished_run_writes_its_files(tmp_path):
    results = _two_nets() | {"mode": "full", "epochs": 4, "parameters": {"sigmas": [0.3]}}
    (tmp_path / "fig6.json").write_text(json.dumps(results))
    lines = []
    out = run_figure("fig6-scoring", tmp_path, quick=False, data_dir=None, log=lines.append)
    assert out["files"] == ["fig6_scoring.png", "fig6_scoring.json"]
    saved = json.loads((tmp_path / "fig6_scoring.json").read_text())
    assert saved["normalised"]["paper"]["smoother"]["T1"]["0.3"] == 1.0 and saved["epochs"] == 4
    assert (tmp_path / "fig6_scoring.png").read_bytes()[:4] == b"\x89PNG"
    assert any("T1 normalised: 0.3 1.00" in line for line in lines)
    # "plus" is nobody's trigger: 6 plus against 6 clean sets of net "a" and "b".
    assert saved["unused_trigger"]["auc"]["never trained"]["T1"]["0.3"]["n_clean"] == 6
    assert any(line.startswith("[fig6-scoring] unused trigger (never trained) behaves like clean: T1 ")
               for line in lines)


def test_rescoring_needs_a_run_and_refuses_epochs(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `wobbledetect reproduce fig6"):
        fig6_scoring.run(tmp_path)
    with pytest.raises(ValueError, match="Leave out --epochs"):
        fig6_scoring.run(tmp_path, epochs=16)


def test_one_repetition_without_null_sets_says_it_cannot_normalise():
    results = _two_nets()
    pairs = results["pairs"]["T1"]
    keep = [i for i, rep in enumerate(pairs["repetition"]) if rep == 0]
    one = {"pairs": {"T1": {k: [v[i] for i in keep] for k, v in pairs.items()}},
           "scores": {"T1": {"0.3": {"smoother": [results["scores"]["T1"]["0.3"]["smoother"][i]
                                                  for i in keep]}}}}
    with pytest.warns(UserWarning, match="cannot normalise per net: Net 'a' has no null scores"):
        out = score_breakdown(one)
    assert np.isnan(out["normalised"]["paper"]["smoother"]["T1"]["0.3"])
    assert out["pooled"]["paper"]["smoother"]["T1"]["0.3"] == pytest.approx(1 - 2 / 8)


def _zoo(unused_shift, n_nets=6, repetitions=5, seed=0):
    """Backdoored nets on "square"; "plus" is nobody's trigger and scores ``unused_shift``
    above the net's clean sets on average; each net has its own offset."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_nets):
        offset = rng.normal(0, 3)
        rows += [(f"T1/square/seed{i}", rep, candidate, label, offset + mean + rng.normal())
                 for rep in range(repetitions)
                 for candidate, label, mean in (("clean", 0, 0.0), ("square", 1, 5.0),
                                                ("plus", 0, unused_shift))]
    pairs, scores = _pairs(rows)
    return {"pairs": {"T1": pairs}, "scores": {"T1": {"0.1": {"smoother": scores},
                                                       "0.3": {"smoother": list(np.array(scores) * 2)}}}}


def test_unused_trigger_auc_is_the_pooled_auc_with_an_interval_over_nets():
    from sklearn.metrics import roc_auc_score

    results = _zoo(unused_shift=0.0)
    out = fig6_scoring.unused_trigger_auc(results)
    assert out["never_trained"] == ["plus"] and out["level"] == pytest.approx(1 - 0.05 / 2)
    pairs = results["pairs"]["T1"]
    candidate = np.array(pairs["candidate"])
    score = np.array(results["scores"]["T1"]["0.1"]["smoother"])
    keep = candidate != "square"
    expected = roc_auc_score(candidate[keep] == "plus", score[keep])
    cell = out["auc"]["never trained"]["T1"]["0.1"]
    assert cell["auc"] == pytest.approx(expected)
    assert cell["n_triggered"] == cell["n_clean"] == 6 * 5
    assert cell["low"] < cell["auc"] < cell["high"]
    # Scores doubled: the same ranks, the same AUC and the same bootstrap draws.
    assert out["auc"]["never trained"]["T1"]["0.3"] == cell
    # On this zoo "other" is "plus" too; "own" is the net's trigger against the same clean sets.
    assert out["auc"]["other"]["T1"]["0.1"] == cell
    keep = candidate != "plus"
    assert out["auc"]["own"]["T1"]["0.1"]["auc"] == pytest.approx(
        roc_auc_score(candidate[keep] == "square", score[keep]))
    assert out["behaves_like_clean"] == {"never trained": {"T1": True}, "other": {"T1": True}}
    # In the breakdown of a Fig. 6 result.
    assert score_breakdown(results)["unused_trigger"] == out


def test_an_unused_trigger_that_moves_w_does_not_behave_like_clean():
    out = fig6_scoring.unused_trigger_auc(_zoo(unused_shift=2.0))
    cell = out["auc"]["never trained"]["T1"]["0.1"]
    assert cell["auc"] > 0.7 and cell["low"] > 0.5
    assert out["behaves_like_clean"]["never trained"] == {"T1": False}
