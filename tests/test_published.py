"""Published serving measurements: every row is cited, the quick rows are priced, the median is what it says."""

from __future__ import annotations

import json

import pytest

from accelsim.chips import preset_names
from accelsim.models.config import load_config
from accelsim.validate.published import Comparison, load_rows, median_error


def test_every_row_is_cited_and_names_a_known_model_and_chip():
    rows = load_rows()
    assert len(rows) >= 20
    for row in rows:
        assert row["source"] and row["quote"], row["id"]
        assert row["chip"] in preset_names(), row["id"]
        load_config(row["model"])  # a one-line error if the model is not shipped
        assert row["value"] > 0


def _comparison(measured: float, predicted: float | None) -> Comparison:
    return Comparison("x", "m", "c", 1, "tpot_s", measured, predicted, "hbm", "", "s")


def test_median_error_by_hand():
    rows = [_comparison(1.0, 1.1), _comparison(2.0, 1.0), _comparison(4.0, 5.0), _comparison(1.0, None)]
    # |1.1 - 1| = 0.1, |0.5 - 1| = 0.5, |1.25 - 1| = 0.25; the unpriced row is left out: median 0.25
    assert median_error(rows) == pytest.approx(0.25)


def test_validate_published_quick_from_the_command_line(tmp_path, capsys):
    """One run of the quick rows (one of them a maximum-throughput search) through the command line."""
    from accelsim.cli import main
    from accelsim.validate.published import QUICK_IDS

    assert main(["validate", "--published", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "median |predicted/measured - 1| over" in out
    data = json.loads((tmp_path / "validate-published.json").read_text())
    assert sorted(r["id"] for r in data["rows"]) == sorted(QUICK_IDS)
    priced = {r["id"]: r for r in data["rows"] if r["predicted"] is not None}
    assert all(r["predicted"] > 0 for r in priced.values())
    sweep = priced["trtllm-llama31-8b-h100-tp1-fp8-1000-1000"]
    assert sweep["note"].startswith("max throughput over concurrency")
    assert (tmp_path / "validate-published.png").stat().st_size > 1000
