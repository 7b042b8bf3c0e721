"""Block sizes for every kernel call of a model phase on one chip, chosen by the tiling model."""

from __future__ import annotations

from accelsim.chips import Chip
from accelsim.models.config import LlamaConfig
from accelsim.models.llama import ModelBlocks, expected_experts_touched
from accelsim.ops import get_op
from accelsim.shapes import AttentionShape, DecodeShape, MatmulShape


def model_blocks(config: LlamaConfig, tokens: int, chip: Chip, dtype: str, *, batch: int, seq: int,
                 cache_len: int, phase: str, compute_dtype: str | None = None,
                 weight_dtype: str | None = None) -> ModelBlocks:
    """Blocks for ``tokens`` = batch * seq rows per matmul (prefill) or batch rows (decode).

    Matmul plans are per projection shape; MoE experts see ``expert_capacity`` rows each.
    Decode blocks are chosen for a full cache, so one compiled step serves every length.
    ``compute_dtype`` (other than ``dtype``): matmuls multiply in it (low-precision compute);
    ``weight_dtype``: the weights' stored dtype (narrower weights are widened per block: weight-only).
    """
    c = config
    low_precision = compute_dtype is not None and compute_dtype != dtype

    def _mm(m: int, k: int, n: int) -> tuple[int, int, int, int]:
        multiply = compute_dtype if low_precision else dtype
        plan = get_op("matmul").plan(MatmulShape(m, k, n), chip, multiply, weight_dtype=weight_dtype or multiply)
        return plan.blocks["bm"], plan.blocks["bn"], plan.blocks["bk"], plan.blocks["splits"]

    experts = capacity = 0
    router = None
    ffn_rows = tokens
    if c.is_moe:
        experts = expected_experts_touched(c, tokens)
        capacity = -(-tokens * c.experts_per_token // experts)
        ffn_rows = capacity
        router = _mm(tokens, c.hidden_size, c.num_experts)
    attention = (64, 64)
    decode_kv, decode_splits = 64, 1
    if phase == "prefill":
        shape = AttentionShape(batch, c.num_heads, c.num_kv_heads, seq, seq, c.head_dim, causal=True)
        blocks = get_op("attention").plan(shape, chip, dtype).blocks
        attention = (blocks["block_q"], blocks["block_kv"])
    else:
        shape = DecodeShape(batch, c.num_heads, c.num_kv_heads, cache_len, c.head_dim)
        blocks = get_op("decode").plan(shape, chip, dtype).blocks
        decode_kv, decode_splits = blocks["block_kv"], blocks["splits"]
    head_rows = batch if phase == "prefill" else tokens  # prefill computes logits of the last position only
    return ModelBlocks(
        qkv=_mm(tokens, c.hidden_size, c.q_size + 2 * c.kv_size),
        o=_mm(tokens, c.q_size, c.hidden_size),
        gate_up=_mm(ffn_rows, c.hidden_size, 2 * c.intermediate_size),
        down=_mm(ffn_rows, c.intermediate_size, c.hidden_size),
        lm_head=_mm(head_rows, c.hidden_size, c.vocab_size),
        attention=attention, decode_kv=decode_kv, decode_splits=decode_splits, router=router,
        experts_touched=experts, expert_capacity=capacity, low_precision_compute=low_precision,
    )


def phase_blocks(config: LlamaConfig, chip: Chip, dtype: str, batch: int, prompt_len: int,
                 cache_len: int, compute_dtype: str | None = None,
                 weight_dtype: str | None = None) -> tuple[ModelBlocks, ModelBlocks]:
    """(prefill blocks, decode blocks) for one run shape on one chip."""
    prefill = model_blocks(config, batch * prompt_len, chip, dtype, batch=batch, seq=prompt_len,
                           cache_len=cache_len, phase="prefill", compute_dtype=compute_dtype, weight_dtype=weight_dtype)
    decode = model_blocks(config, batch, chip, dtype, batch=batch, seq=1, cache_len=cache_len, phase="decode",
                          compute_dtype=compute_dtype, weight_dtype=weight_dtype)
    return prefill, decode
