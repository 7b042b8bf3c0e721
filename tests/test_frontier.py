"""The serving frontier: Pareto on hand-made points, a sweep's frontier properties, reading it at a fixed speed,
and ``accelsim frontier``'s one-line errors for bad input (exit 2, nothing on stdout)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest

from accelsim.chips import load_chip
from accelsim.cli import main
from accelsim.models.capacity import Split, candidate_splits
from accelsim.models.config import load_config
from accelsim.serving.frontier import Workload, concurrencies, max_throughput, sweep
from accelsim.serving.pareto import at_interactivity, pareto
from accelsim.serving.point import ServingPoint


def made(user: float, per_chip: float, name: str = "x") -> ServingPoint:
    """A point at (tok/s per user, tok/s per chip): one token at TTFT 1/user over user/per_chip chips."""
    return ServingPoint(name, name, user / per_chip, 1, 16, 1, 1.0 / user, None, "hand-made")


def coordinates(points):
    return [(round(p.tokens_per_s_user, 9), round(p.tokens_per_s_chip, 9)) for p in points]


def test_point_throughputs_by_hand():
    p = ServingPoint("c", "TP2", 2, 8, 1024, 101, ttft_s=0.5, tpot_s=0.01, binding_limit="bandwidth")
    assert p.request_s == pytest.approx(1.5)             # 0.5 + 100 x 0.01
    assert p.tokens_per_s_total == pytest.approx(538.6666667)  # 8 x 101 / 1.5
    assert p.tokens_per_s_chip == pytest.approx(269.3333333)
    assert p.tokens_per_s_user == pytest.approx(100.0)
    held = ServingPoint("c", "TP2", 2, 8, 1024, 101, 0.5, 0.01, "bandwidth", slot_s=1.0)
    assert held.tokens_per_s_total == pytest.approx(808.0)     # the slot, not the whole request


def test_pareto_keeps_exactly_the_undominated_points_by_hand():
    a, b, c, d, e, f = made(10, 100, "a"), made(20, 80, "b"), made(15, 70, "c"), made(30, 80, "d"), \
        made(5, 100, "e"), made(40, 10, "f")
    front = pareto([b, c, a, f, e, d])
    # b is beaten by d (same per-chip, faster), c by b and d, e by a (same per-chip, faster)
    assert [p.chip for p in front] == ["a", "d", "f"]


def test_pareto_of_one_point_and_of_none():
    only = made(3, 4)
    assert pareto([only]) == [only] and pareto([]) == []


def test_at_interactivity_by_hand():
    front = pareto([made(10, 100, "a"), made(30, 80, "d"), made(40, 10, "f")])
    read = at_interactivity(front, 20)
    assert read.point.chip == "d"                            # of d (30 tok/s, 80) and f (40, 10): d
    # log-log between a (10, 100) and d (30, 80): 100 x 0.8 ** (ln 2 / ln 3) = 86.868...
    assert read.interpolated_tokens_per_s_chip == pytest.approx(86.868, rel=1e-4)
    assert at_interactivity(front, 5).point.chip == "a"      # slower than the whole frontier: its best point
    assert at_interactivity(front, 5).interpolated_tokens_per_s_chip is None
    beyond = at_interactivity(front, 50)
    assert beyond.point is None and beyond.interpolated_tokens_per_s_chip is None


def test_concurrency_ladder():
    assert concurrencies(1) == [1]
    assert concurrencies(0) == []
    assert concurrencies(10, points_per_octave=1) == [1, 2, 4, 8, 10]
    assert concurrencies(10, points_per_octave=2) == [1, 2, 3, 4, 6, 8, 10]  # round(2 ** (k / 2))
    assert concurrencies(10 ** 9)[-1] == 4096
    assert concurrencies(40, points_per_octave=4) == [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40]
    ladder = concurrencies(1000, points_per_octave=5)
    assert all(2 * r in ladder for r in ladder if r >= 5 and 2 * r < 1000)  # PP2 micro-batches = 1-stage batches


@dataclass
class FakeRun:
    chip: str
    batch: int
    ttft_s: float
    tpot_s: float | None
    binding_limit: str = "fake"


def fake_price(config, chip, split, batch, isl, osl, **_):
    """A made-up cost: weights read once per step, split over the tensor ways; pipeline stages add latency."""
    step = (1e-3 + 2e-5 * batch) / split.tensor * (1 + 0.1 * (split.pipeline - 1))
    return FakeRun(chip.name, batch, ttft_s=1e-4 * isl * batch / split.tensor, tpot_s=step if osl > 1 else None)


def test_sweep_covers_every_split_and_its_frontier_is_monotone_real_and_undominated():
    config, chip = load_config("llama-3.1-8b"), load_chip("h100-sxm")
    workload = Workload(config, 1024, 256, max_chips=4, pricer=fake_price)
    result = sweep(workload, chip, points_per_octave=1)
    splits = candidate_splits(config, chip, 4, 1280)
    assert sorted(result.max_concurrency) == sorted(s.label for s in splits)
    front = result.frontier
    assert front and all(any(f is p for p in result.points) for f in front)  # real evaluated points
    for low, high in zip(front, front[1:]):
        assert high.tokens_per_s_user > low.tokens_per_s_user and high.tokens_per_s_chip < low.tokens_per_s_chip
    for f in front:  # nothing beats a frontier point on both axes
        assert not any(p.tokens_per_s_user >= f.tokens_per_s_user and p.tokens_per_s_chip >= f.tokens_per_s_chip
                       and (p.tokens_per_s_user, p.tokens_per_s_chip) != (f.tokens_per_s_user, f.tokens_per_s_chip)
                       for p in result.points)
    for p in result.points:  # every point off it is matched or beaten by one on it
        assert any(f.tokens_per_s_user >= p.tokens_per_s_user and f.tokens_per_s_chip >= p.tokens_per_s_chip
                   for f in front)


def test_max_throughput_honours_the_chip_count_and_latency_limits():
    config, chip = load_config("llama-3.1-8b"), load_chip("h100-sxm")
    best = max_throughput(config, chip, 2, 1024, 256, pricer=fake_price)
    assert best.chips == 2 and best.split == "TP2"
    limited = max_throughput(config, chip, 2, 1024, 256, tpot_limit_s=1e-3, pricer=fake_price)
    assert limited.tpot_s <= 1e-3 and limited.tokens_per_s_total < best.tokens_per_s_total
    assert max_throughput(config, chip, 2, 1024, 256, ttft_limit_s=1e-9, pricer=fake_price) is None
    odd = max_throughput(config, chip, 3, 1024, 256, pricer=fake_price)  # no candidate has 3 chips
    assert odd.chips == 3 and odd.split == "TP3"                          # estimate's split of 3 chips


def test_small_real_sweep():
    pytest.importorskip("accelsim.serving.pricing")
    config, chip = load_config("smollm2-135m"), load_chip("h100-sxm")
    result = sweep(Workload(config, 32, 4, max_chips=1), chip, points_per_octave=1)
    front = result.frontier
    assert result.points and all(any(f is p for p in result.points) for f in front)
    assert all(p.split == Split().label and math.isfinite(p.tokens_per_s_chip) for p in result.points)
    for low, high in zip(front, front[1:]):
        assert high.tokens_per_s_user > low.tokens_per_s_user and high.tokens_per_s_chip < low.tokens_per_s_chip


SMALL = ["frontier", "--model", "smollm2-135m", "--chip", "h100-sxm", "--isl", "32", "--osl", "4", "--max-chips", "1",
         "--points-per-octave", "1"]


def test_cli_json_costs_only_what_has_a_price_and_writes_the_png(tmp_path, capsys):
    pytest.importorskip("accelsim.serving.pricing")
    png = tmp_path / "plots" / "frontier.png"
    code = main([*SMALL, "--price", "h100-sxm=2", "--at-interactivity", "100", "--png", str(png), "--json"])
    out = capsys.readouterr().out
    data = json.loads(out)
    chip = data["runs"][0]["chips"][0]
    assert code == 0 and png.stat().st_size > 10_000
    assert sum(p["on_frontier"] for p in chip["points"]) == len(chip["frontier"]) >= 1
    for point in chip["frontier"]:
        assert point["cost_per_mtok"] == pytest.approx(2.0 / 3600 / point["tokens_per_s_chip"] * 1e6)
        assert point["joules_per_token"] == pytest.approx(700.0 / point["tokens_per_s_chip"])  # h100-sxm: 700 W
    fixed = data["runs"][0]["at_interactivity"]["chips"][0]["point"]
    assert fixed["tokens_per_s_user"] >= 100
    code = main([*SMALL, "--json"])
    unpriced = json.loads(capsys.readouterr().out)["runs"][0]["chips"][0]["points"]
    assert code == 0 and not any("cost_per_mtok" in p for p in unpriced)


def test_cli_table_shows_cost_columns_only_with_a_price(capsys):
    pytest.importorskip("accelsim.serving.pricing")
    assert main([*SMALL, "--price", "h100-sxm=2", "--at-interactivity", "100"]) == 0
    priced = capsys.readouterr().out
    assert "Pareto frontier" in priced and "$/Mtok" in priced and "at 100 tok/s per user" in priced
    assert main([*SMALL, "--all-points"]) == 0
    unpriced = capsys.readouterr().out
    assert "every point" in unpriced and "$/Mtok" not in unpriced and "J/tok" in unpriced  # power is in the file


BAD = [
    (["--chip", "no-such-chip"], "no-such-chip"),
    (["--chip", "h100-sxm", "--price", "b200=2"], "--price b200"),
    (["--chip", "h100-sxm", "--price", "h100-sxm=-1"], "--price h100-sxm=-1"),
    (["--chip", "h100-sxm", "--price", "h100-sxm=cheap"], "--price h100-sxm=cheap"),
    (["--chip", "h100-sxm", "--draft-model", "self:8", "--acceptance", "1"], "--acceptance"),
    (["--chip", "h100-sxm", "--draft-model", "self:8", "--acceptance", "-0.1"], "--acceptance"),
    (["--chip", "h100-sxm", "--draft-model", "self:8", "--acceptance", "0.5", "--draft-len", "0"], "--draft-len"),
    (["--chip", "h100-sxm", "--draft-model", "self:99", "--acceptance", "0.5"], "--draft-model self:99"),
    (["--chip", "h100-sxm", "--acceptance", "0.5"], "--draft-model"),
    (["--chip", "h100-sxm", "--at-interactivity", "0"], "--at-interactivity"),
    (["--chip", "h100-sxm", "--at-interactivity", "-3"], "--at-interactivity"),
    (["--chip", "h100-sxm", "--osl", "64,zero"], "--osl"),
    (["--prefill-chip", "h100-sxm"], "--decode-chip"),
    ([], "--chip"),
]


@pytest.mark.parametrize("argv,named", BAD, ids=[n for _, n in BAD])
def test_bad_input_is_one_line_naming_it(argv, named, capsys):
    code = main(["frontier", "--model", "smollm2-135m", "--isl", "32", "--osl", "4", *argv])
    out = capsys.readouterr()
    assert code == 2 and out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("accelsim: error:") and named in lines[0]


def test_from_run_serves_by_continuous_batching_by_hand():
    from types import SimpleNamespace

    from accelsim.serving.point import arrival_wait_s, from_run

    # 8 requests: the batch's prefill takes 0.8 s, a decode step 10 ms, 101 output tokens
    run = SimpleNamespace(chip="c", batch=8, ttft_s=0.8, tpot_s=0.01, binding_limit="hbm")
    p = from_run(run, "TP2", 2, 1024, 101)
    assert p.ttft_s == pytest.approx(0.1 + 0.01)                # its own share, 0.8 / 8, in an iteration that decodes the others
    assert p.tpot_s == pytest.approx(0.01 + (0.8 - 0.1) / 100)  # the others' prefills slow each step: 17 ms
    assert p.request_s == pytest.approx(0.8 + 101 * 0.01)       # osl = 101 iterations plus the batch's prefill work
    assert p.tokens_per_s_total == pytest.approx(8 * 101 / 1.81)
    assert arrival_wait_s(p) == pytest.approx(0.017 / 2)       # a random arrival waits half an iteration
    alone = from_run(SimpleNamespace(chip="c", batch=1, ttft_s=0.1, tpot_s=0.01, binding_limit="hbm"), "TP2", 2, 1024, 101)
    assert (alone.ttft_s, alone.tpot_s, arrival_wait_s(alone)) == (pytest.approx(0.1), pytest.approx(0.01), 0.0)
