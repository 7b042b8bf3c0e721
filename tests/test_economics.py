"""Cost and energy per token with hand-worked numbers; prices parsed from flags and TOML; never invented."""

from __future__ import annotations

import pytest

from accelsim.errors import AccelsimError
from accelsim.serving.economics import economics, parse_prices, per_chip
from accelsim.serving.point import ServingPoint


def point_at(per_chip_rate: float, osl: int = 1024) -> ServingPoint:
    """A 1-chip point of ``per_chip_rate`` output tok/s: one request, every token at 1/rate, no prefill."""
    return ServingPoint("h100-sxm", "1 chip", 1, 1, 128, osl, ttft_s=1.0 / per_chip_rate, tpot_s=1.0 / per_chip_rate,
                        binding_limit="bandwidth")


def test_cost_and_energy_by_hand():
    out = economics(point_at(1000.0), price_per_chip_hour=2.0, watts=700.0)
    assert out["cost_per_mtok"] == pytest.approx(0.5555556)       # 2 / 3600 / 1000 x 1e6
    assert out["cost_per_query"] == pytest.approx(5.688889e-4)    # 0.5555556 x 1024 / 1e6
    assert out["joules_per_token"] == pytest.approx(0.7)          # 700 W / 1000 tok/s
    assert out["tokens_per_joule"] == pytest.approx(1.4285714)


def test_no_price_no_cost_no_power_no_energy():
    assert economics(point_at(1000.0), None, None) == {}
    assert set(economics(point_at(1000.0), None, 300.0)) == {"watts_per_chip", "joules_per_token", "tokens_per_joule"}


def test_disaggregated_pools_are_priced_by_their_chips():
    extra = (("prefill_chip", "h100-sxm"), ("prefill_chips", 1.0), ("decode_chip", "b200"), ("decode_chips", 3))
    p = ServingPoint("h100-sxm>b200", "P:1 chip D:TP2", 4.0, 1, 128, 16, 0.1, 0.01, "bandwidth", extra=extra)
    assert per_chip(p, {"h100-sxm": 2.0, "b200": 6.0}) == pytest.approx(5.0)   # (1 x 2 + 3 x 6) / 4
    assert per_chip(p, {"h100-sxm": 2.0}) is None


def test_prices_from_flags_and_a_toml_file(tmp_path):
    table = tmp_path / "prices.toml"
    table.write_text('"h100-sxm" = 2.5\nb200 = 4\n')
    assert parse_prices(["b200=3.75"], ["b200"]) == {"b200": 3.75}
    assert parse_prices([str(table)], ["h100-sxm", "b200"]) == {"h100-sxm": 2.5, "b200": 4.0}


@pytest.mark.parametrize("value,named", [("b200=2", "--price b200"), ("h100-sxm=-1", "h100-sxm=-1"),
                                         ("h100-sxm=nan", "h100-sxm=nan"), ("h100-sxm=", "h100-sxm="),
                                         ("missing.toml", "missing.toml")])
def test_bad_prices_name_the_input(value, named):
    with pytest.raises(AccelsimError, match=named.replace(".", r"\.")):
        parse_prices([value], ["h100-sxm"])
