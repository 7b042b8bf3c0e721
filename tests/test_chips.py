"""Chip presets, the chip-file loader's error messages, and the host calibration."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from accelsim.chips import Chip, load_chip, load_chip_file, preset_names
from accelsim.chips.loader import HOST_NAME, PRESET_DIR
from accelsim.errors import AccelsimError

REQUIRED_PRESETS = ("h100-sxm", "h200", "b200", "a100-80gb", "mi300x", "tpu-v5e", "tpu-v5p", "tpu-v6e",
                    "trainium2", "groq-lpu", "cerebras-wse3")
PRESETS = [name for name in preset_names() if name != HOST_NAME]


def _every_source(chip: Chip) -> list[tuple[str, str]]:
    return ([("clock", chip.clock_source), ("matrix", chip.matrix.source)]
            + [(f"memory {m.name}", m.source) for m in chip.memory]
            + [(f"link {link.name}", link.source) for link in chip.links])


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


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_chip_file_names_the_file_and_the_field(tmp_path, case):
    (old, new), field = BAD[case]
    assert old in GOOD
    path = tmp_path / f"{case.replace(' ', '_')}.toml"
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(AccelsimError) as info:
        load_chip_file(path)
    message = str(info.value)
    assert str(path) in message and field in message, message
    assert "\n" not in message


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


def test_toml_writer_round_trips_a_preset():
    from accelsim.chips.calibrate import to_toml

    data = tomllib.loads((PRESET_DIR / "h100-sxm.toml").read_text())
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
    for section, source in _every_source(chip):
        assert source.startswith("measured by accelsim calibrate on "), f"{section}: {source}"
    assert chip.ridge_point("bf16") > 0
