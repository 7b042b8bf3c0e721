"""Frozen shape and block values that check themselves, with errors that name both sides.

Every field is a positive integer (flags excepted); relations between fields (kv heads dividing query
heads) are checked on construction, so a value that exists is valid. Ops take these values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from accelsim.errors import AccelsimError, TooLarge


MAX_DIM = 2**31 - 1  # the largest dimension: kernels index in int32, so no array dimension may pass it


def positive_int(name: str, value, limit: int = MAX_DIM, limit_name: str = "accelsim.shapes.MAX_DIM") -> int:
    """``value`` if it is an integer from 1 to ``limit``, else a one-line error naming ``name`` and the limit."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise AccelsimError(f"{name} must be a positive integer (got {value!r})")
    if value > limit:
        raise TooLarge(f"{name} {value} is over the limit of {limit} ({limit_name})")
    return value


def same(what: str, left_name: str, left, right_name: str, right) -> None:
    """A one-line error naming both sides when ``left`` and ``right`` should agree and do not."""
    if left != right:
        raise AccelsimError(f"{what} differ: {left_name} {left!r} vs {right_name} {right!r}")


@dataclass(frozen=True)
class Dims:
    """Base of the shape values: every int field positive, checked on construction."""

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.type in ("int", int):
                positive_int(f"{type(self).__name__}.{f.name}", getattr(self, f.name))

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MatmulShape(Dims):
    """C[M, N] = A[M, K] @ B[K, N]."""

    M: int
    K: int
    N: int


@dataclass(frozen=True)
class MatmulBlocks(Dims):
    bm: int
    bn: int
    bk: int


@dataclass(frozen=True)
class AttentionShape(Dims):
    """Prefill attention of ``heads`` query heads over ``kv_heads`` key/value heads (GQA)."""

    batch: int
    heads: int
    kv_heads: int
    q_len: int
    kv_len: int
    head_dim: int
    causal: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.heads % self.kv_heads:
            raise AccelsimError(f"kv heads ({self.kv_heads}) must divide query heads ({self.heads})")

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads


@dataclass(frozen=True)
class DecodeShape(Dims):
    """One decode step of ``batch`` sequences at ``context`` positions (after the append)."""

    batch: int
    heads: int
    kv_heads: int
    context: int
    head_dim: int

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.heads % self.kv_heads:
            raise AccelsimError(f"kv heads ({self.kv_heads}) must divide query heads ({self.heads})")
