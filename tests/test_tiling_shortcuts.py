"""The attention tilers' cache shortcuts equal the general stream model (cost/cache.py) exactly."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.chips import load_chip
from accelsim.cost.blocks import count_stream
from accelsim.cost.cache import main_bytes_on_chip
from accelsim.tiling.attention import flash_kv_rows, flash_main_bytes, flash_streams
from accelsim.tiling.decode import decode_streams

CACHED = st.sampled_from(["h100-sxm", "b200", "mi300x", "a100-80gb"])
SETTINGS = settings(derandomize=True, deadline=None, max_examples=60)


@SETTINGS
@given(data=st.data(), kv_heads=st.sampled_from([1, 2, 8]), group=st.sampled_from([1, 4]),
       cache_len=st.integers(1, 700), block_kv=st.sampled_from([8, 16, 64, 256]), chip_name=CACHED)
def test_decode_misses_behind_a_cache_are_its_copies(data, kv_heads, group, cache_len, block_kv, chip_name):
    lengths = np.asarray(data.draw(st.lists(st.integers(1, cache_len), min_size=1, max_size=40)))
    blocks = -(-cache_len // block_kv)
    splits = data.draw(st.sampled_from([s for s in (1, 2, 4, 8, 16, 32, 64) if s <= blocks]))
    streams = decode_streams(lengths, kv_heads, group, 64, cache_len, block_kv, 2.0, splits)
    assert main_bytes_on_chip(load_chip(chip_name), streams) == sum(count_stream(s).bytes for s in streams)


@SETTINGS
@given(batch=st.integers(1, 40), kv_heads=st.sampled_from([1, 2, 8]), group=st.sampled_from([1, 4]),
       q_len=st.integers(1, 700), extra=st.integers(0, 50), block_q=st.sampled_from([16, 32, 128]),
       block_kv=st.sampled_from([16, 64, 256]), chip_name=CACHED)
def test_causal_flash_misses_equal_the_stream_model(batch, kv_heads, group, q_len, extra, block_q, block_kv,
                                                    chip_name):
    chip, kv_len, d = load_chip(chip_name), q_len + extra, 64
    streams = flash_streams(batch, kv_heads, group, q_len, kv_len, d, block_q, block_kv, True, 2.0)
    rows, _ = flash_kv_rows(q_len, kv_len, block_q, block_kv, True)
    q_bytes, kv_bytes = batch * kv_heads * group * q_len * d * 2.0, batch * kv_heads * rows * d * 2.0
    assert flash_main_bytes(chip, streams[0], q_len, kv_len, block_q, block_kv, d, 2.0, q_bytes, kv_bytes) == \
        main_bytes_on_chip(chip, streams)
