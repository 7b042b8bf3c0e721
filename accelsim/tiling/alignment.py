"""Block-shape rules: which block sizes a kernel may use on a chip, as its chip file states them."""

from __future__ import annotations

from accelsim.chips.spec import BlockRule, Chip

__all__ = ["BlockRule", "block_rule", "check_block", "legal_sizes"]


def block_rule(chip: Chip) -> BlockRule:
    """The chip's block rule (its chip file's ``[block_rule]`` and ``[accumulator]``, or the stated default)."""
    return chip.block_rule


def legal_sizes(dim: int, multiple: int, power_of_two: bool, cap: int = 4096) -> list[int]:
    """Candidate block sizes for an array dim: aligned sizes up to the dim (rounded up), plus the whole dim."""
    sizes = set()
    size = multiple
    if power_of_two:
        size = 1 << (multiple - 1).bit_length()
    while size < dim + multiple and size <= cap:
        sizes.add(size)
        size *= 2
    if not power_of_two:
        sizes.add(dim)  # a block spanning the whole dim is always legal
    if not sizes:
        sizes.add(min(dim, cap) if not power_of_two else multiple)
    return sorted(sizes)


def check_block(rule: BlockRule, block: tuple[int, int], array: tuple[int, int]) -> bool:
    """Whether a 2-D block (second-minor, minor) obeys the rule for an array of that shape."""
    (bs, bl), (ds, dl) = block, array
    ok_s = bs % rule.sublane == 0 or bs == ds
    ok_l = bl % rule.lane == 0 or bl == dl
    return ok_s and ok_l
