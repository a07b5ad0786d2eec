"""The demo job end to end, in a reduced size that runs in seconds."""

from __future__ import annotations

import json

import pytest

from wobbledetect.cli import main
from wobbledetect.lab.demo import SIGMA_GRID, run_demo

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_small_demo_writes_its_numbers_and_figures(tmp_path):
    lines = []
    results = run_demo(
        tmp_path, max_epochs=10, set_size=20, n_calibration=6, n_evaluation=6,
        n_samples=60, log=lines.append,
    )
    # T1 with 15% poisons on digits is learned within a few epochs (every run we made:
    # attack success >= 0.95 from 10 epochs on), with little cost in clean accuracy.
    assert results["backdoor_accuracy"] >= 0.9
    assert results["clean_accuracy"] >= 0.9
    assert results["sigma"] in SIGMA_GRID
    assert 0.0 <= results["auc"] <= 1.0
    assert sum(results["flagged"].values()) <= 18
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["auc"] == results["auc"]
    for name in ("boxplot.png", "roc.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    assert any(line.startswith("ROC AUC") for line in lines)
    # The grid's small sigmas warn; the demo counts the warnings, one line per kind.
    counted = saved["library_warnings_in_sigma_search"]
    assert set(counted) <= {"DegenerateWobblinessWarning", "SmallSetWarning"}
    for category, entry in counted.items():
        assert sum(line.startswith("the detector warned during the sigma search: "
                                   f"{entry['count']} {category}(s)") for line in lines) == 1


def test_cli_requires_a_command(capsys):
    with pytest.raises(SystemExit):
        main([])
    assert "demo" in capsys.readouterr().err
