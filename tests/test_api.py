"""The public Python API (accelsim.price, load_chip, chips, estimate) against counts worked out by hand."""

from __future__ import annotations

import json
import linecache
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

import accelsim
from accelsim.errors import AccelsimError, NotPriceable

S = jax.ShapeDtypeStruct
ROOT = Path(__file__).resolve().parent.parent
NO_CACHE_CHIP = "tpu-v5e"  # HBM then VMEM, no L2: main-memory bytes are exactly the copies


def test_matmul_flops_and_bytes():
    m, k, n = 96, 40, 24
    result = accelsim.price(lambda a, b: a @ b, S((m, k), jnp.bfloat16), S((k, n), jnp.bfloat16), chip="h100-sxm")
    assert result.flops == 2 * m * n * k
    assert result.bytes_per_level["hbm"] == (m * k + k * n + m * n) * 2  # operands read once, result written once
    assert [(op.name, op.kind) for op in result.ops] == [("dot_general", "xla_matmul")]
    assert result.chip == "h100-sxm" and result.time_s > 0


def test_scanned_mlp_counts_every_trip():
    layers, batch, width = 5, 4, 16

    def mlp(x, weights):
        def layer(h, w):
            with jax.named_scope("layer"):
                return jnp.tanh(h @ w), None
        return lax.scan(layer, x, weights)[0]

    result = accelsim.price(mlp, S((batch, width), jnp.float32), S((layers, width, width), jnp.float32),
                            chip=NO_CACHE_CHIP)
    assert result.flops == layers * 2 * batch * width * width
    matmul = (batch * width + width * width + batch * width) * 4  # per layer: h and w read, h @ w written
    tanh = 2 * batch * width * 4
    assert result.bytes_per_level["hbm"] == layers * (matmul + tanh)
    assert {op.scope for op in result.ops} == {"layer"} and {op.calls for op in result.ops} == {layers}


def row_panel_matmul(a, b, bm: int, bn: int, i_outer: bool):
    """A user's Pallas matmul: each step multiplies an (bm, K) row panel of A by a (K, bn) column panel of B.
    ``i_outer`` puts the A-row axis outside (grid (i, j)), else inside (grid (j, i))."""
    m, k = a.shape
    n = b.shape[1]

    def body(a_ref, b_ref, o_ref):
        o_ref[...] = jnp.dot(a_ref[...], b_ref[...], preferred_element_type=jnp.float32).astype(o_ref.dtype)

    if i_outer:
        grid, ij = (m // bm, n // bn), (lambda i, j: (i, j))
    else:
        grid, ij = (n // bn, m // bm), (lambda j, i: (i, j))
    a_spec = pl.BlockSpec((bm, k), lambda *g: (ij(*g)[0], 0))
    b_spec = pl.BlockSpec((k, bn), lambda *g: (0, ij(*g)[1]))
    o_spec = pl.BlockSpec((bm, bn), lambda *g: ij(*g))
    return pl.pallas_call(body, grid=grid, in_specs=[a_spec, b_spec], out_specs=o_spec,
                          out_shape=jax.ShapeDtypeStruct((m, n), a.dtype), interpret=True)(a, b)


@pytest.mark.parametrize("i_outer", [True, False])
def test_user_pallas_kernel_bytes_follow_the_revisit_rule(i_outer):
    m, k, n, bm, bn = 64, 32, 48, 16, 16
    gm, gn = m // bm, n // bn
    a, b = S((m, k), jnp.float32), S((k, n), jnp.float32)
    result = accelsim.price(row_panel_matmul, a, b, bm=bm, bn=bn, i_outer=i_outer, chip=NO_CACHE_CHIP)
    if i_outer:  # A's panel stays put while j sweeps: A is read once, B once per row panel
        a_bytes, b_bytes = m * k * 4, k * n * 4 * gm
    else:  # A's panel changes every step: A is read once per column panel, B (outer) once
        a_bytes, b_bytes = m * k * 4 * gn, k * n * 4
    assert result.bytes_per_level["hbm"] == a_bytes + b_bytes + m * n * 4
    assert result.flops == gm * gn * 2 * bm * bn * k == 2 * m * n * k
    assert [op.kind for op in result.ops] == ["kernel"]


def gather_blocks(page_table, x):
    """A user's scalar-prefetch kernel: grid step i copies block ``page_table[i]`` of x (8 floats) to output block i."""
    def body(table_ref, x_ref, o_ref):
        o_ref[...] = x_ref[...]
    grid_spec = pltpu.PrefetchScalarGridSpec(
        num_scalar_prefetch=1, grid=(page_table.shape[0],),
        in_specs=[pl.BlockSpec((8,), lambda i, table: (table[i],))],
        out_specs=pl.BlockSpec((8,), lambda i, table: (i,)))
    out_shape = jax.ShapeDtypeStruct((8 * page_table.shape[0],), x.dtype)
    return pl.pallas_call(body, grid_spec=grid_spec, out_shape=out_shape, interpret=True)(page_table, x)


@pytest.mark.parametrize("table, copied_in", [([1, 0, 0, 2], 3), ([1, 1, 1, 1], 1), ([0, 1, 0, 1], 4)])
def test_scalar_prefetch_kernel_copies_a_block_when_its_page_changes(table, copied_in):
    x = S((24,), jnp.float32)
    result = accelsim.price(gather_blocks, jnp.asarray(table, jnp.int32), x, chip=NO_CACHE_CHIP)
    assert result.bytes_per_level["hbm"] == (copied_in + len(table)) * 8 * 4  # pages read, every output block written
    with pytest.raises(NotPriceable, match="scalar-prefetch.*primitive 'pallas_call'"):
        accelsim.price(gather_blocks, S((4,), jnp.int32), x)  # the pages are data the price depends on


def test_jitted_pytree_function_with_static_keyword():
    batch, width, hidden = 8, 16, 32

    @jax.jit
    def dense(params, x):
        return {"h": jnp.tanh(x @ params["w"] + params["b"])}

    params = {"w": S((width, hidden), jnp.float32), "b": jnp.zeros((hidden,), jnp.float32)}
    result = accelsim.price(dense, params, x=S((batch, width), jnp.float32), chip=NO_CACHE_CHIP)
    assert result.flops == 2 * batch * width * hidden
    dot = (batch * width + width * hidden + batch * hidden) * 4
    # add and tanh fuse (XLA's loop fusion): x @ w and the (hidden,) bias are read, tanh's result written;
    # the sum between them never reaches memory
    add = (batch * hidden + hidden) * 4
    tanh = batch * hidden * 4
    assert result.bytes_per_level["hbm"] == dot + add + tanh
    assert sorted(op.name for op in result.ops) == ["add", "dot_general", "tanh"]

    def scaled(x, factor):
        return x * factor

    assert accelsim.price(scaled, S((4, 4), jnp.float32), factor=3).bytes_per_level["hbm"] == 2 * 16 * 4


def test_data_dependent_cond_is_one_error_naming_primitive_and_scope():
    def routed(x):
        with jax.named_scope("router"):
            return lax.cond(x.sum() > 0, lambda v: v * 2, lambda v: -v, x)

    with pytest.raises(NotPriceable, match=r"lax\.cond.*primitive 'cond' at scope 'router'") as caught:
        accelsim.price(routed, S((8,), jnp.float32))
    assert isinstance(caught.value, AccelsimError) and caught.value.__cause__ is None
    assert (caught.value.primitive, caught.value.scope) == ("cond", "router")


def test_data_dependent_while_loop_is_one_error_naming_primitive():
    def until_large(x):
        return lax.while_loop(lambda v: v.sum() < 100.0, lambda v: v * 2.0, x)

    with pytest.raises(NotPriceable, match="data-dependent trip count.*primitive 'while'") as caught:
        accelsim.price(jax.jit(until_large), S((8,), jnp.float32))
    assert caught.value.primitive == "while"


def test_static_fori_loop_counts_each_trip():
    def repeat(x):
        return lax.fori_loop(0, 7, lambda i, v: v * 2.0, x)

    per_trip = 2 * 16 * 4 + 2 * 4  # v read and v * 2 written; the int32 counter read and i + 1 written
    assert accelsim.price(repeat, S((16,), jnp.float32)).bytes_per_level["hbm"] == 7 * per_trip


def test_result_to_dict_is_valid_json_and_str_is_a_table():
    result = accelsim.price(lambda a: jnp.exp(a) @ a, S((32, 32), jnp.float32), chip="tpu-v5e")
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["chip"] == "tpu-v5e" and data["total"]["flops"] == 2 * 32 ** 3
    assert sorted(op["name"] for op in data["ops"]) == ["dot_general", "exp"]
    text = str(result)
    assert text.splitlines()[0].startswith("<lambda> on tpu-v5e") and "hbm bytes" in text and "total" in text
    with pytest.raises(Exception):
        result.total = None  # frozen


def test_chips_and_load_chip():
    from accelsim.chips import preset_names

    assert accelsim.chips() == preset_names() and "h100-sxm" in accelsim.chips()
    chip = accelsim.load_chip("h100-sxm")
    assert accelsim.load_chip(chip) is chip
    assert accelsim.load_chip(ROOT / "accelsim" / "chips" / "presets" / "tpu-v5e.toml").name == "tpu-v5e"
    assert accelsim.price(lambda a: a + a, S((4,), jnp.float32), chip=chip).chip == "h100-sxm"
    with pytest.raises(AccelsimError, match="unknown chip"):
        accelsim.price(lambda a: a, S((4,), jnp.float32), chip="h100-pcie-typo")


def test_estimate_is_what_the_cli_prints():
    args = dict(batch=2, prompt_len=8, gen_len=3)
    data = accelsim.estimate("smollm2-135m", chip="h100-sxm", **args)
    cli = subprocess.run([sys.executable, "-m", "accelsim.cli", "estimate", "--model", "smollm2-135m", "--chip",
                          "h100-sxm", "--batch", "2", "--prompt-len", "8", "--gen-len", "3", "--json"],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    assert data == json.loads(cli.stdout)
    assert data["priced_decode_lengths"] == [9, 10] and [c["chip"] for c in data["chips"]] == ["h100-sxm"]
    with pytest.raises(AccelsimError, match="batch must be at least 1"):
        accelsim.estimate("smollm2-135m", batch=0)


def test_import_is_cheap_and_the_one_liner_prints_a_table():
    lazy = subprocess.run([sys.executable, "-c", "import accelsim, sys; print('jax' in sys.modules)"],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    assert lazy.stdout.strip() == "False"
    one_liner = ("import accelsim, jax, jax.numpy as jnp; print(accelsim.price(lambda a, b: a @ b, "
                 "jax.ShapeDtypeStruct((4096, 4096), jnp.bfloat16), jax.ShapeDtypeStruct((4096, 4096), jnp.bfloat16), "
                 "chip='h100-sxm'))")
    run = subprocess.run([sys.executable, "-c", one_liner], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert f"{2 * 4096 ** 3 / 1e9:.3g} GFLOP" in run.stdout  # 137 GFLOP in the title
    assert re.search(r"dot_general\s+xla_matmul", run.stdout)


def test_readme_python_api_example_runs_as_written(capsys):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Python API\n.*?```python\n(.*?)```", readme, re.S)
    assert block, "README has no Python API example"
    source, name = block.group(1), "<README.md Python API example>"
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)  # hypothesis reads the source
    exec(compile(source, name, "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out
    assert "add on h100-sxm" in printed and "add on tpu-v5e" in printed
    assert f"{3 * 4096 * 4096 * 2 / 1e6:.3g} MB" in printed  # x, y read and x + y written once, in bf16
