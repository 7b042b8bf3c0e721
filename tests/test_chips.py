"""Chip presets, the chip-file loader's error messages, chip-family behaviour read from the chip file, and
the host calibration."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path

import pytest

from accelsim.chips import Chip, load_chip, load_chip_file, preset_names
from accelsim.chips.loader import HOST_NAME, PRESET_DIR, chip_from_dict, preset_for_device
from accelsim.chips.spec import MmaTile
from accelsim.cost.compute import step_cycles
from accelsim.errors import AccelsimError
from accelsim.tiling.alignment import block_rule
from accelsim.tiling.matmul import candidate_blocks, plan_matmul

REQUIRED_PRESETS = ("h100-sxm", "h200", "b200", "a100-80gb", "mi300x", "tpu-v5e", "tpu-v5p", "tpu-v6e",
                    "trainium2", "groq-lpu", "cerebras-wse3", "gb200-nvl72")
PRESETS = [name for name in preset_names() if name != HOST_NAME]


def _measured_sources(chip: Chip) -> list[tuple[str, str]]:
    return ([("clock", chip.clock_source), ("matrix", chip.matrix.source)]
            + [(f"memory {m.name}", m.source) for m in chip.memory]
            + [(f"link {link.name}", link.source) for link in chip.links])


def _every_source(chip: Chip) -> list[tuple[str, str]]:
    sources = _measured_sources(chip) + [("block_rule", chip.block_rule.source), ("systolic", chip.systolic.source),
                                         ("launch", chip.launch_source)]
    if chip.accumulator:
        sources.append(("accumulator", chip.accumulator.source))
    if chip.mma:
        sources.append(("mma", chip.mma.source))
    for section in ("power", "scale_up", "sustained", "fabric"):
        if getattr(chip, section) is not None:
            sources.append((section, getattr(chip, section).source))
    return sources


def _every_number(chip: Chip) -> list[tuple[str, float]]:
    numbers = [("clock_hz", chip.clock_hz), ("matrix.rows", chip.matrix.rows), ("matrix.cols", chip.matrix.cols),
               ("matrix.count", chip.matrix.count)]
    numbers += [(f"dense {d}", v) for d, v in chip.matrix.dense_flops.items()]
    numbers += [(f"sparse {d}", v) for d, v in chip.matrix.sparse_flops.items()]
    for m in chip.memory:
        numbers += [(f"{m.name} capacity", m.capacity_bytes), (f"{m.name} bandwidth", m.bandwidth_bytes_per_s),
                    (f"{m.name} instances", m.instances)]
    for link in chip.links:
        numbers += [(f"{link.name} bandwidth", link.bandwidth_bytes_per_s), (f"{link.name} count", link.count)]
    numbers += [("block_rule.sublane", chip.block_rule.sublane), ("block_rule.lane", chip.block_rule.lane)]
    if chip.accumulator:
        numbers += [("accumulator.capacity_bytes", chip.accumulator.capacity_bytes),
                    ("accumulator.fraction", chip.accumulator.fraction)]
    if chip.mma:
        numbers += [("mma.m", chip.mma.m), ("mma.n", chip.mma.n), ("mma.k", chip.mma.k)]
    return numbers


def test_every_required_preset_is_shipped():
    assert set(REQUIRED_PRESETS) <= set(PRESETS)
    assert HOST_NAME in preset_names()


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_with_positive_figures(name):
    chip = load_chip(name)
    assert chip.name == name
    assert Path(chip.origin) == PRESET_DIR / f"{name}.toml"
    for label, value in _every_number(chip):
        assert math.isfinite(value) and value > 0, f"{name}: {label} = {value}"
    for link in chip.links:
        assert link.latency_s >= 0
    assert chip.launch_overhead_s >= 0


@pytest.mark.parametrize("name", PRESETS)
def test_every_section_names_its_source(name):
    for section, source in _every_source(load_chip(name)):
        assert source.strip(), f"{name}: {section} has no source"


@pytest.mark.parametrize("name", PRESETS)
def test_ridge_point_is_peak_over_main_memory_bandwidth(name):
    chip = load_chip(name)
    if "bf16" not in chip.matrix.dense_flops:
        with pytest.raises(AccelsimError, match="bf16"):
            chip.ridge_point("bf16")
        return
    expected = chip.matrix.dense_flops["bf16"] / chip.memory[0].bandwidth_bytes_per_s
    assert chip.ridge_point("bf16") == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", PRESETS)
def test_sparse_figures_are_published_beside_dense_and_not_below_them(name):
    matrix = load_chip(name).matrix
    for dtype, sparse in matrix.sparse_flops.items():
        assert dtype in matrix.dense_flops, f"{name}: sparse {dtype} without a dense figure"
        assert sparse >= matrix.dense_flops[dtype], f"{name}: sparse {dtype} below dense"


@pytest.mark.parametrize("name", PRESETS)
def test_memory_hierarchy_shape(name):
    chip = load_chip(name)
    names = [m.name.lower() for m in chip.memory]
    if chip.architecture == "sram":
        assert not any("hbm" in n or "dram" in n for n in names), f"{name}: SRAM chip with off-chip memory {names}"
        assert chip.staging_memory.total_capacity_bytes <= chip.main_memory.total_capacity_bytes
    else:
        assert len(chip.memory) >= 2, f"{name}: needs main memory and an on-chip staging level"
        assert chip.staging_memory.capacity_bytes < chip.main_memory.capacity_bytes
        assert chip.staging_memory.bandwidth_bytes_per_s > chip.main_memory.bandwidth_bytes_per_s


@pytest.mark.parametrize("name", [n for n in PRESETS if load_chip(n).architecture == "systolic"])
def test_systolic_peak_matches_array_geometry_times_clock(name):
    """2 FLOP per cell per cycle: the cycle model and the peak FLOP/s must agree on these chips."""
    chip = load_chip(name)
    m = chip.matrix
    assert m.kind == "systolic"
    assert 2 * m.rows * m.cols * m.count * chip.clock_hz == pytest.approx(chip.peak_flops("bf16"), rel=0.01)


def test_known_figures_from_the_design_notes():
    h100 = load_chip("h100-sxm")
    assert h100.main_memory.bandwidth_bytes_per_s == 3.35e12
    assert h100.peak_flops("bf16") == 989.4e12
    assert h100.peak_flops("bf16", sparse=True) == 1978.9e12
    assert (load_chip("tpu-v5e").matrix.rows, load_chip("tpu-v6e").matrix.rows) == (128, 256)


# ------------------------------------------------------------------------------------------- bad chip files

GOOD = """\
name = "toy"
vendor = "Test"
architecture = "systolic"

[clock]
hz = 1e9
source = "test"

[matrix]
kind = "systolic"
rows = 4
cols = 4
count = 1
source = "test"

[matrix.dense_flops]
bf16 = 3.2e10

[[memory]]
name = "hbm"
capacity_bytes = 1e9
bandwidth_bytes_per_s = 1e11
source = "test"

[[memory]]
name = "sram"
capacity_bytes = 1e6
bandwidth_bytes_per_s = 1e12
source = "test"
"""

BAD = {
    "missing field": (("hz = 1e9\n", ""), "clock.hz"),
    "negative field": (("capacity_bytes = 1e9", "capacity_bytes = -1e9"), "memory[0].capacity_bytes"),
    "zero field": (("bandwidth_bytes_per_s = 1e12", "bandwidth_bytes_per_s = 0"), "memory[1].bandwidth_bytes_per_s"),
    "unknown field": (("count = 1\n", "count = 1\ncolour = \"red\"\n"), "matrix.colour"),
    "unknown dtype": (("bf16 = 3.2e10", "bf16 = 3.2e10\nfp7 = 1e9"), "matrix.dense_flops.fp7"),
    "wrong type": (("rows = 4", "rows = \"four\""), "matrix.rows"),
    "fractional count": (("count = 1\n", "count = 1.5\n"), "matrix.count"),
    "empty source": (("hz = 1e9\nsource = \"test\"", "hz = 1e9\nsource = \"\""), "source"),
    "bad choice": (("architecture = \"systolic\"", "architecture = \"tpu\""), "architecture"),
}


def test_the_toy_file_itself_loads(tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text(GOOD)
    chip = load_chip(str(path))
    assert chip.name == "toy" and chip.ridge_point("bf16") == pytest.approx(0.32)


def _rejects(tmp_path, text: str, case: str, field: str) -> None:
    path = tmp_path / f"{case.replace(' ', '_')}.toml"
    path.write_text(text)
    with pytest.raises(AccelsimError) as info:
        load_chip_file(path)
    message = str(info.value)
    assert str(path) in message and field in message, message
    assert "\n" not in message


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_chip_file_names_the_file_and_the_field(tmp_path, case):
    (old, new), field = BAD[case]
    assert old in GOOD
    _rejects(tmp_path, GOOD.replace(old, new, 1), case, field)


def test_unreadable_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(AccelsimError, match="broken.toml"):
        load_chip(str(path))


def test_unknown_chip_suggests_the_nearest_preset():
    with pytest.raises(AccelsimError) as info:
        load_chip("h100")
    assert "h100-sxm" in str(info.value)


# ------------------------------------------------------------------------------------------- calibration


@pytest.mark.parametrize("name", PRESETS)
def test_toml_writer_round_trips_every_preset(name):
    from accelsim.chips.calibrate import to_toml

    data = tomllib.loads((PRESET_DIR / f"{name}.toml").read_text())
    assert tomllib.loads(to_toml(data)) == data


def test_quick_calibration_writes_a_loadable_host_chip(tmp_path, monkeypatch):
    from accelsim.chips.calibrate import calibrate

    monkeypatch.setenv("ACCELSIM_CACHE", str(tmp_path))
    with pytest.raises(AccelsimError, match="calibrate"):
        load_chip(HOST_NAME)
    messages: list[str] = []
    path = calibrate(messages.append, quick=True)
    assert path == tmp_path / "host.toml" and path.exists() and messages
    chip = load_chip(HOST_NAME)
    assert chip.name == HOST_NAME and chip.architecture in ("cpu", "gpu")
    for label, value in _every_number(chip):
        assert math.isfinite(value) and value > 0, f"host: {label} = {value}"
    assert set(chip.matrix.dense_flops) == {"f32", "bf16"}
    assert len(chip.memory) == 2 and chip.staging_memory is chip.memory[-1]
    for section, source in _measured_sources(chip):
        assert source.startswith("measured by accelsim calibrate on "), f"{section}: {source}"
    assert chip.ridge_point("bf16") > 0
    if chip.architecture == "cpu":  # no kernel compiler rule, accumulator or launch cost: the stated defaults
        assert (chip.block_rule.sublane, chip.block_rule.lane, chip.block_rule.power_of_two) == (8, 8, False)
        assert chip.block_rule.source.startswith("no [block_rule]") and chip.accumulator is None
        assert chip.launch_overhead_s == 0 and chip.mma is None and chip.device_names == ()


def test_the_gpu_host_keeps_the_triton_rule_and_register_budget():
    """calibrate on a GPU writes the rule code used to give every 'gpu' chip; the written file must load."""
    from accelsim.chips.calibrate import to_toml
    from accelsim.chips.host_chip import GPU_KERNEL_RULES

    data = tomllib.loads(GOOD.replace('architecture = "systolic"', 'architecture = "gpu"')
                         .replace('kind = "systolic"', 'kind = "tensor_core"'))
    chip = chip_from_dict(tomllib.loads(to_toml({**data, **GPU_KERNEL_RULES})), where="gpu-host")
    rule = chip.block_rule
    assert (rule.sublane, rule.lane, rule.power_of_two) == (16, 16, True)
    assert rule.register_accumulator_bytes == 65536 * 4 // 2  # 64K 32-bit registers, half for accumulators
    assert (chip.mma.m, chip.mma.n, chip.mma.k) == (16, 8, 16)


# ------------------------------------------------------------------------------------------- chip-family behaviour

FAMILY = """\
device_names = ["Toy One", "Toy"]

[block_rule]
sublane = 128
lane = 128
power_of_two = false
source = "test"

[accumulator]
capacity_bytes = 2097152
fraction = 1.0
source = "test"

[systolic]
stationary_double_buffered = true
drain_overlaps = false
source = "test"

[launch]
overhead_s = 5e-6
source = "test"
"""


def _with_family(extra: str = FAMILY) -> str:
    """GOOD with the new sections: top-level keys before the first table, tables after the rest."""
    head, _, tables = extra.partition("\n\n")
    return GOOD.replace('architecture = "systolic"\n', f'architecture = "systolic"\n{head}\n', 1) + "\n" + tables


TENSOR_CORE = GOOD.replace('kind = "systolic"', 'kind = "tensor_core"') + """
[mma]
m = 64
n = 8
k = 16
source = "test"
"""

BAD_FAMILY = {
    "block rule missing lane": (("\nlane = 128\n", "\n"), "block_rule.lane"),
    "block rule missing source": (("power_of_two = false\nsource = \"test\"", "power_of_two = false"), "block_rule.source"),
    "block rule wrong type": (("power_of_two = false", "power_of_two = \"no\""), "block_rule.power_of_two"),
    "block rule zero sublane": (("sublane = 128", "sublane = 0"), "block_rule.sublane"),
    "block rule negative lane": (("\nlane = 128\n", "\nlane = -128\n"), "block_rule.lane"),
    "block rule unknown field": (("sublane = 128", "sublane = 128\nmin_size = 16"), "block_rule.min_size"),
    "accumulator missing capacity": (("capacity_bytes = 2097152\n", ""), "accumulator.capacity_bytes"),
    "accumulator wrong type": (("capacity_bytes = 2097152", "capacity_bytes = \"2 MiB\""), "accumulator.capacity_bytes"),
    "accumulator negative capacity": (("capacity_bytes = 2097152", "capacity_bytes = -2097152"), "accumulator.capacity_bytes"),
    "accumulator zero fraction": (("fraction = 1.0", "fraction = 0.0"), "accumulator.fraction"),
    "accumulator fraction above one": (("fraction = 1.0", "fraction = 1.5"), "accumulator.fraction"),
    "accumulator fraction not stated as assumption": (("fraction = 1.0", "fraction = 0.5"), "accumulator.assumption"),
    "systolic missing drain": (("drain_overlaps = false\n", ""), "systolic.drain_overlaps"),
    "systolic wrong type": (("stationary_double_buffered = true", "stationary_double_buffered = 1"),
                            "systolic.stationary_double_buffered"),
    "systolic load width without double buffering": (
        ("stationary_double_buffered = true", "stationary_double_buffered = false\nload_bytes_per_cycle = 1024.0"),
        "systolic.load_bytes_per_cycle"),
    "systolic negative load width": (("drain_overlaps = false", "drain_overlaps = false\nload_bytes_per_cycle = -4.0"),
                                     "systolic.load_bytes_per_cycle"),
    "launch missing overhead": (("overhead_s = 5e-6\n", ""), "launch.overhead_s"),
    "launch missing source": (("overhead_s = 5e-6\nsource = \"test\"", "overhead_s = 5e-6"), "launch.source"),
    "launch wrong type": (("overhead_s = 5e-6", "overhead_s = \"5 us\""), "launch.overhead_s"),
    "launch negative": (("overhead_s = 5e-6", "overhead_s = -5e-6"), "launch.overhead_s"),
    "device names wrong type": (('device_names = ["Toy One", "Toy"]', 'device_names = "Toy"'), "device_names"),
    "device names empty entry": (('device_names = ["Toy One", "Toy"]', 'device_names = ["", "Toy"]'), "device_names[0]"),
    "mma on a systolic chip": (("[launch]", "[mma]\nm = 1\nn = 1\nk = 1\nsource = \"test\"\n\n[launch]"), "mma"),
}

BAD_MMA = {
    "mma missing k": (("k = 16\n", ""), "mma.k"),
    "mma fractional k": (("k = 16\n", "k = 16.5\n"), "mma.k"),
    "mma zero n": (("n = 8\n", "n = 0\n"), "mma.n"),
    "mma negative m": (("m = 64\n", "m = -64\n"), "mma.m"),
    "mma missing source": (("k = 16\nsource = \"test\"", "k = 16"), "mma.source"),
    "systolic on a tensor-core chip": (("[mma]", "[systolic]\nstationary_double_buffered = true\ndrain_overlaps = false\n"
                                                "source = \"test\"\n\n[mma]"), "systolic"),
}


def test_every_new_field_is_loaded(tmp_path):
    path = tmp_path / "family.toml"
    path.write_text(_with_family())
    chip = load_chip_file(path)
    rule = chip.block_rule
    assert (rule.sublane, rule.lane, rule.power_of_two, rule.source) == (128, 128, False, "test")
    assert chip.accumulator.capacity_bytes == 2097152 and rule.register_accumulator_bytes == 2097152
    assert (chip.systolic.stationary_double_buffered, chip.systolic.drain_overlaps) == (True, False)
    assert chip.launch_overhead_s == 5e-6 and chip.device_names == ("Toy One", "Toy")
    path.write_text(TENSOR_CORE)
    assert load_chip_file(path).mma == MmaTile(64, 8, 16, "test")


def test_a_chip_file_without_the_new_sections_gets_the_stated_defaults(tmp_path):
    path = tmp_path / "plain.toml"
    path.write_text(GOOD)
    chip = load_chip_file(path)
    assert (chip.block_rule.sublane, chip.block_rule.lane, chip.block_rule.power_of_two) == (8, 8, False)
    assert chip.block_rule.source == "no [block_rule] in the chip file: blocks are multiples of 8 (or the whole dim)"
    assert chip.accumulator is None and chip.block_rule.register_accumulator_bytes == 0
    assert not chip.systolic.stationary_double_buffered and not chip.systolic.drain_overlaps
    assert chip.launch_overhead_s == 0 and chip.launch_source.startswith("no [launch]") and chip.device_names == ()
    assert chip.mma is None  # a systolic chip has no MMA tile
    path.write_text(GOOD.replace('kind = "systolic"', 'kind = "tensor_core"'))  # 4 x 4 tile rows x cols
    tile = load_chip_file(path).mma
    assert (tile.m, tile.n, tile.k) == (4, 4, 16) and tile.source.startswith("no [mma]")


@pytest.mark.parametrize("case", sorted(BAD_FAMILY))
def test_bad_family_field_names_the_file_and_the_field(tmp_path, case):
    (old, new), field = BAD_FAMILY[case]
    text = _with_family()
    assert old in text
    _rejects(tmp_path, text.replace(old, new, 1), case, field)


@pytest.mark.parametrize("case", sorted(BAD_MMA))
def test_bad_mma_field_names_the_file_and_the_field(tmp_path, case):
    (old, new), field = BAD_MMA[case]
    assert old in TENSOR_CORE
    _rejects(tmp_path, TENSOR_CORE.replace(old, new, 1), case, field)


# Figures worked out from each vendor's documents (see each preset's sources).
BLOCK_RULES = {  # (sublane, lane, power of two, accumulator budget in bytes)
    "h100-sxm": (16, 16, True, 256 * 1024 // 2), "h200": (16, 16, True, 256 * 1024 // 2),
    "a100-80gb": (16, 16, True, 256 * 1024 // 2), "b200": (16, 16, True, 256 * 1024 // 2),
    "gb200-nvl72": (16, 16, True, 256 * 1024 // 2),
    "mi300x": (16, 16, True, 512 * 1024 // 2), "tpu-v5e": (8, 128, False, 0), "tpu-v5p": (8, 128, False, 0),
    "tpu-v6e": (8, 128, False, 0), "trainium2": (128, 128, False, 128 * 16 * 1024),
    "groq-lpu": (8, 8, False, 0), "cerebras-wse3": (8, 8, False, 0),
}
MMA_TILES = {"a100-80gb": (16, 8, 16), "h100-sxm": (64, 8, 16), "h200": (64, 8, 16), "b200": (128, 16, 16),
             "gb200-nvl72": (128, 16, 16),
             "mi300x": (32, 32, 8)}


@pytest.mark.parametrize("name", sorted(BLOCK_RULES))
def test_each_preset_states_its_family_behaviour(name):
    chip = load_chip(name)
    rule = block_rule(chip)
    assert (rule.sublane, rule.lane, rule.power_of_two, rule.register_accumulator_bytes) == BLOCK_RULES[name]
    defaults = [s for s in (rule.source, chip.launch_source) if s.startswith("no [")]
    assert not defaults, f"{name} relies on a default: {defaults}"
    if chip.matrix.kind == "tensor_core":
        assert (chip.mma.m, chip.mma.n, chip.mma.k) == MMA_TILES[name]
        assert chip.launch_overhead_s > 0 and chip.device_names
    if chip.matrix.kind == "systolic":
        assert not chip.systolic.source.startswith("no [")


def test_step_cycles_pads_to_the_chip_files_mma_tile():
    h100 = load_chip("h100-sxm")
    per_clock = 989.4e12 / (132 * 1.83e9)  # dense bf16 FLOP per clock per SM
    # 65 x 16 x 9 on m64 n8 k16 tiles: m -> 128, n -> 16, k -> 16
    assert step_cycles(h100, "bf16", 65, 16, 9) == pytest.approx(2 * 128 * 16 * 16 / per_clock, rel=1e-12)
    mi300x = load_chip("mi300x")
    per_clock = 1307.4e12 / (304 * 2.1e9)
    # 33 x 9 x 33 on 32x32x8 MFMA tiles: m -> 64, k -> 16, n -> 64
    assert step_cycles(mi300x, "bf16", 33, 9, 33) == pytest.approx(2 * 64 * 16 * 64 / per_clock, rel=1e-12)
    unpadded = dataclasses.replace(h100, mma=MmaTile(1, 1, 1, "test"))
    assert step_cycles(unpadded, "bf16", 65, 16, 9) == pytest.approx(2 * 65 * 16 * 9 / (989.4e12 / (132 * 1.83e9)))


def test_trainium2_blocks_obey_the_partition_rule_and_fit_psum():
    chip = load_chip("trainium2")
    m, k, n = 1000, 3000, 700
    blocks = candidate_blocks(m, k, n, chip, "bf16", "bf16")
    assert blocks
    for bm, bn, bk, _ in blocks:
        assert bm % 128 == 0 or bm == m, (bm, bn, bk)  # partition dims: whole 128-partition tiles
        assert bk % 128 == 0 or bk == k, (bm, bn, bk)
        assert bn % 128 == 0 or bn == n, (bm, bn, bk)
        assert bm * bn * 4 <= 2 * 1024 * 1024, (bm, bn, bk)  # the f32 output block fits PSUM's 2 MiB


def test_trainium2_fp8_4096_cubed_is_compute_bound_worked_by_hand():
    """Priced with the 8x8 rule and every partial sum through SBUF, this was SBUF-bound at MFU 0.38."""
    m = k = n = 4096
    plan = plan_matmul(m, k, n, load_chip("trainium2"), "fp8")
    bm, bn, bk = plan.blocks["bm"], plan.blocks["bn"], plan.blocks["bk"]
    assert bm % 128 == bn % 128 == bk % 128 == 0 and bm * bn * 4 <= 2 * 1024 * 1024
    clock, cores, rows, cols = 2.4e9, 8, 128, 128  # presets/trainium2.toml
    peak, hbm_bw, sbuf_bw = 1258.3e12, 2.9e12, 9.83e12
    speedup = peak / (cores * clock) / (2 * rows * cols)  # fp8 runs at twice the array's 2*R*C FLOP per clock
    gm, gn, gk = math.ceil(m / bm), math.ceil(n / bn), math.ceil(k / bk)
    steps = gm * gn * gk
    # weight-stationary: ceil(bk/R) * ceil(bn/C) folds per step; the stationary tiles double-buffer ([systolic]
    # in the chip file), also across steps, so a fold starts every max(bm, R) cycles
    folds = math.ceil(bk / rows) * math.ceil(bn / cols)
    per_step = folds * max(bm, rows) / speedup
    compute = math.ceil(gm * gn / cores) * gk * per_step
    # HBM (fp8, 1 byte): A once per j-block when K is split, B once per i-block, C written once
    hbm = m * k * (gn if gk > 1 else 1) + k * n * (gm if gk > 1 or gn > 1 else 1) + m * n
    # SBUF: the copies land there; each step the array reads A once per column fold, B once, and writes
    # the final f32 outputs. The partial sums of the other k folds accumulate in PSUM.
    sbuf = hbm + steps * (bm * bk * math.ceil(bn / cols) + bk * bn + bm * bn * 4)
    assert plan.compute_cycles == pytest.approx(compute, rel=1e-9)
    assert plan.bytes_per_level == pytest.approx({"hbm": hbm, "sbuf": sbuf}, rel=1e-12)
    hbm_cycles, sbuf_cycles = hbm / hbm_bw * clock, sbuf / sbuf_bw * clock
    assert compute > hbm_cycles and compute > sbuf_cycles and plan.bound == "compute"
    prologue = (bm * bk + bk * bn) / hbm_bw * clock  # the first A and B blocks, not overlapped
    epilogue = (m - (gm - 1) * bm) * (n - (gn - 1) * bn) / hbm_bw * clock  # the last C block
    time_s = (prologue + compute + epilogue) / clock
    assert plan.mfu == pytest.approx(2 * m * n * k / time_s / peak, rel=1e-9)
    assert plan.mfu > 0.7
    # The partial sums (every k fold but the last, f32) through SBUF would have made SBUF the bound:
    partials = steps * bm * bn * 4 * (math.ceil(bk / rows) - 1)
    assert (sbuf + partials) / sbuf_bw * clock > compute


@pytest.mark.parametrize("kind, preset", [
    ("NVIDIA H100 80GB HBM3", "h100-sxm"), ("NVIDIA H200", "h200"), ("NVIDIA B200", "b200"),
    ("NVIDIA A100-SXM4-80GB", "a100-80gb"), ("AMD Instinct MI300X", "mi300x"), ("TPU v5 lite", "tpu-v5e"),
    ("TPU v5e", "tpu-v5e"), ("TPU v5", "tpu-v5p"), ("TPU v5p", "tpu-v5p"), ("TPU v6 lite", "tpu-v6e"),
    ("Intel Data Center GPU Max 1550", None),
])
def test_validate_picks_the_preset_from_the_device_names(kind, preset):
    assert preset_for_device(kind) == preset
