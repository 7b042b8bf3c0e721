"""Tensor-parallel execution of the Llama model on N devices with ``jax.shard_map`` (Megatron layout).

Attention heads are split over the devices: each holds H/N query and G/N KV heads of the fused
``wqkv`` (column-sharded), and the matching rows of ``wo`` (row-sharded, summed with ``psum``);
gate/up are column-sharded and ``w_down`` row-sharded, summed with ``psum``; the embedding, the
norms and the LM head are replicated; the KV cache is sharded over its KV-head axis. Inside
``shard_map`` the unchanged ``prefill`` and ``decode`` of ``accelsim.models.llama`` run on one
device's share (a config with H/N, G/N heads and F/N intermediate width), so our kernels see the
local shapes. On a CPU host the N devices are XLA host devices (``jax_num_cpu_devices``); on GPUs or
TPUs they are ``jax.devices()``. ``check_vma`` is off: a ``pallas_call``'s ``out_shape`` carries no
record of which mesh axes its output varies over; the logits are replicated because both partial
sums of a layer are ``psum``-ed.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.sharding import AbstractMesh, Mesh, NamedSharding, PartitionSpec as P

from accelsim.errors import AccelsimError
from accelsim.models.config import LlamaConfig
from accelsim.models.llama import ModelBlocks, decode, prefill
from kernels.decode import KVCache

AXIS = "tp"
_COLUMN, _ROW, _REPLICATED = P(None, None, AXIS), P(None, AXIS, None), P()
LAYER_SPECS = {"attn_norm": _REPLICATED, "wqkv": _COLUMN, "wo": _ROW, "mlp_norm": _REPLICATED,
               "w_gate_up": _COLUMN, "w_down": _ROW}
PARAM_SPECS = {"embed": _REPLICATED, "final_norm": _REPLICATED, "layers": LAYER_SPECS, "lm_head": _REPLICATED}
CACHE_SPEC = KVCache(P(None, None, AXIS), P(None, None, AXIS))  # (layers, batch, kv heads, positions, head dim)


def ensure_devices(n: int) -> list[jax.Device]:
    """The first ``n`` devices; on a CPU host, asks XLA for ``n`` host devices if jax has not started yet."""
    from jax._src import xla_bridge

    if n < 1:
        raise AccelsimError(f"--tensor-parallel must be at least 1 (got {n})")
    if not xla_bridge.backends_are_initialized() and n > jax.config.jax_num_cpu_devices:
        jax.config.update("jax_num_cpu_devices", n)
    devices = jax.devices()
    if len(devices) < n:
        raise AccelsimError(f"--tensor-parallel {n} needs {n} devices but jax has {len(devices)} "
                            f"({devices[0].platform}); on a CPU host set "
                            f"XLA_FLAGS=--xla_force_host_platform_device_count={n} before jax starts")
    return devices[:n]


def tensor_parallel_mesh(n: int) -> Mesh:
    """A one-axis mesh (``AXIS``) over the first ``n`` devices."""
    return Mesh(ensure_devices(n), (AXIS,))


def shardable(config: LlamaConfig, n: int) -> bool:
    """Whether ``n``-way tensor parallelism splits ``config`` evenly (``local_config`` accepts it)."""
    return (not config.is_moe and config.num_kv_heads % n == 0 and config.intermediate_size % n == 0
            and config.num_heads % n == 0)


def abstract_mesh(n: int) -> AbstractMesh:
    """A device-free one-axis mesh of ``n`` devices: enough to trace (not run) the sharded program."""
    return AbstractMesh((n,), (AXIS,))


def local_config(config: LlamaConfig, n: int) -> LlamaConfig:
    """One device's share of ``config`` under ``n``-way tensor parallelism: H/n, G/n heads, F/n width."""
    c = config
    if c.is_moe:
        raise AccelsimError(f"{c.name or 'config'}: tensor parallelism of MoE experts is not modelled")
    for what, value in (("num_kv_heads", c.num_kv_heads), ("intermediate_size", c.intermediate_size)):
        if value % n:
            raise AccelsimError(f"--tensor-parallel {n} must divide {what} ({value}) of {c.name or 'the model'}")
    return dataclasses.replace(c, num_heads=c.num_heads // n, num_kv_heads=c.num_kv_heads // n,
                               intermediate_size=c.intermediate_size // n)


def _interleave(w: jax.Array, widths: list[int], n: int) -> jax.Array:
    """Columns [A | B | ...] of the given widths reordered to [A_0 B_0 ... | A_1 B_1 ... | ...], so that
    an even split of the last axis over ``n`` devices gives device i the i-th slice of every part."""
    parts = jnp.split(w, [sum(widths[:i + 1]) for i in range(len(widths) - 1)], axis=-1)
    chunks = [jnp.split(part, n, axis=-1) for part in parts]
    return jnp.concatenate([chunk[i] for i in range(n) for chunk in chunks], axis=-1)


def shard_params(params: dict, config: LlamaConfig, mesh: Mesh) -> dict:
    """``stack_params`` output laid out for ``mesh`` (fused columns interleaved per device) and placed on it."""
    c, n = config, mesh.size
    layers = dict(params["layers"])
    layers["wqkv"] = _interleave(layers["wqkv"], [c.q_size, c.kv_size, c.kv_size], n)
    layers["w_gate_up"] = _interleave(layers["w_gate_up"], [c.intermediate_size] * 2, n)
    laid_out = {**params, "layers": layers}
    return jax.tree.map(lambda x, spec: jax.device_put(x, NamedSharding(mesh, spec)), laid_out, PARAM_SPECS)


def sharded_prefill(params: dict, tokens: jax.Array, config: LlamaConfig, blocks: ModelBlocks, cache_len: int,
                    all_logits: bool = False, *, mesh: Mesh) -> tuple[jax.Array, KVCache]:
    """``llama.prefill`` over ``mesh``: ``params`` from ``shard_params``, ``blocks`` for ``local_config``;
    logits replicated, the KV cache sharded over KV heads."""
    local = local_config(config, mesh.size)

    def body(p: dict, t: jax.Array) -> tuple[jax.Array, KVCache]:
        return prefill(p, t, local, blocks, cache_len, all_logits, tp_axis=AXIS)

    return jax.shard_map(body, mesh=mesh, in_specs=(PARAM_SPECS, P()), out_specs=(P(), CACHE_SPEC),
                         check_vma=False)(params, tokens)


def sharded_decode(params: dict, tokens: jax.Array, cache: KVCache, lengths: jax.Array, config: LlamaConfig,
                   blocks: ModelBlocks, *, mesh: Mesh) -> tuple[jax.Array, KVCache]:
    """``llama.decode`` over ``mesh``, with the arguments of ``sharded_prefill``'s and its cache."""
    local = local_config(config, mesh.size)

    def body(p: dict, t: jax.Array, kv: KVCache, lens: jax.Array) -> tuple[jax.Array, KVCache]:
        return decode(p, t, kv, lens, local, blocks, tp_axis=AXIS)

    return jax.shard_map(body, mesh=mesh, in_specs=(PARAM_SPECS, P(), CACHE_SPEC, P()),
                         out_specs=(P(), CACHE_SPEC), check_vma=False)(params, tokens, cache, lengths)
