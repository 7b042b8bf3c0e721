"""Cost and energy of serving points: prices per chip-hour given by the user, power from the chip file.

Nothing here invents a figure: a chip without a price gets no cost, one whose file has no ``[power]``
gets no energy. Per output token, with ``r`` = output tok/s per chip (prefill's chip time included):
cost per million tokens = price per chip-hour / 3600 / r x 1e6; joules per token = watts / r, tokens
per joule its inverse; cost per query = cost per token x output tokens.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any, Iterable, Mapping

from accelsim.errors import AccelsimError
from accelsim.serving.point import ServingPoint


def parse_prices(values: Iterable[str], chips: Iterable[str]) -> dict[str, float]:
    """``--price`` values (``name=dollars_per_chip_hour``, or a TOML file of ``name = price``) for ``chips``.

    Every price must be a finite number >= 0 and name one of ``chips``: a price for a chip not swept is
    refused, not ignored (a typo would otherwise silently drop the cost columns)."""
    known = list(chips)
    prices: dict[str, float] = {}
    for value in values:
        for name, price in _entries(value):
            if name not in known:
                raise AccelsimError(f"--price {name}: that chip is not swept (swept: {', '.join(known)})")
            prices[name] = _dollars(name, price)
    return prices


def _entries(value: str) -> list[tuple[str, Any]]:
    name, sep, price = value.partition("=")
    if sep:
        return [(name.strip(), price.strip())]
    path = Path(value)
    if not path.is_file():
        raise AccelsimError(f"--price {value}: expected NAME=DOLLARS_PER_CHIP_HOUR or a TOML file of name = price")
    try:
        table = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise AccelsimError(f"--price {value}: not a readable TOML file ({exc})") from None
    return list(table.items())


def _dollars(name: str, price: Any) -> float:
    try:
        dollars = float(price) if not isinstance(price, bool) else math.nan
    except (TypeError, ValueError):
        dollars = math.nan
    if not math.isfinite(dollars) or dollars < 0:
        raise AccelsimError(f"--price {name}={price}: expected a finite price per chip-hour >= 0")
    return dollars


def cost_per_million_tokens(price_per_chip_hour: float, tokens_per_s_chip: float) -> float:
    return price_per_chip_hour / 3600.0 / tokens_per_s_chip * 1e6


def joules_per_token(watts: float, tokens_per_s_chip: float) -> float:
    return watts / tokens_per_s_chip


def economics(point: ServingPoint, price_per_chip_hour: float | None, watts: float | None) -> dict[str, float]:
    """The cost and energy columns this point has figures for (none without a price or a power)."""
    rate = point.tokens_per_s_chip
    out: dict[str, float] = {}
    if rate <= 0:
        return out
    if price_per_chip_hour is not None:
        per_mtok = cost_per_million_tokens(price_per_chip_hour, rate)
        out.update(price_per_chip_hour=price_per_chip_hour, cost_per_mtok=per_mtok,
                   cost_per_query=per_mtok * point.osl / 1e6)
    if watts is not None:
        out.update(watts_per_chip=watts, joules_per_token=joules_per_token(watts, rate),
                   tokens_per_joule=rate / watts)
    return out


def chip_watts(chip: Any) -> float | None:
    """The chip file's power per chip (``[power]``: the chip's TDP, or a system's power over its chips)."""
    power = getattr(chip, "power", None)
    return None if power is None else float(power.watts)


def per_chip(point: ServingPoint, figures: Mapping[str, float | None]) -> float | None:
    """A per-chip figure (price, watts) for ``point``'s chips; for a disaggregated point the prefill and
    decode pools' figures weighted by their chips (None unless both are known)."""
    extra = dict(point.extra)
    if "prefill_chip" not in extra:
        return figures.get(point.chip)
    prefill, decode = figures.get(extra["prefill_chip"]), figures.get(extra["decode_chip"])
    if prefill is None or decode is None:
        return None
    return (prefill * extra["prefill_chips"] + decode * extra["decode_chips"]) / point.chips


def with_economics(point: ServingPoint, prices: Mapping[str, float], watts: Mapping[str, float | None]
                   ) -> dict[str, Any]:
    """``point.to_dict()`` plus its cost and energy columns."""
    return {**point.to_dict(), **economics(point, per_chip(point, prices), per_chip(point, watts))}
