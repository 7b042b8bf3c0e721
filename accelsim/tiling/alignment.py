"""Block-shape rules per chip family: which block sizes a kernel may use on that chip."""

from __future__ import annotations

from dataclasses import dataclass

from accelsim.chips.spec import Chip


@dataclass(frozen=True)
class BlockRule:
    """A block's last dim must be a multiple of ``lane`` and its second-to-last of ``sublane``,
    unless the block spans the whole array dim; ``power_of_two`` blocks only (Triton)."""

    sublane: int
    lane: int
    power_of_two: bool
    source: str
    register_accumulator_bytes: int = 0  # >0: the f32 accumulator lives in registers, up to this size


TPU_RULE = BlockRule(8, 128, False, "Pallas TPU docs, 'Blocks': last two block dims divisible by 8 and 128, or equal to the array's")
GPU_RULE = BlockRule(
    16, 16, True,
    "Pallas GPU (Triton) lowering: block dims are powers of two; wgmma k-step is 16. Accumulators live in "
    "registers: 64K 32-bit registers per SM (Hopper and Ampere whitepapers); we assume at most half hold them",
    register_accumulator_bytes=128 * 1024,
)
FREE_RULE = BlockRule(8, 8, False, "no vendor block rule modelled: blocks are multiples of 8 (or the whole dim)")


def block_rule(chip: Chip) -> BlockRule:
    """The block rule of a chip family (TPU Mosaic, GPU Triton, or none)."""
    if chip.vendor.lower() == "google":
        return TPU_RULE
    if chip.architecture == "gpu":
        return GPU_RULE
    return FREE_RULE


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
