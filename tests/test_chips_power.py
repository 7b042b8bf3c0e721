"""The optional chip-file sections [power], [scale_up], [sustained] and [fabric]: loaded with their
hand-written values, absent as None, and every bad field rejected in one line naming the file and field."""

from __future__ import annotations

import pytest

from accelsim.chips import load_chip, load_chip_file
from accelsim.chips.spec import Fabric, Power, ScaleUp
from accelsim.errors import AccelsimError

BASE = """
name = "tiny"
vendor = "Test"
architecture = "sram"

[clock]
hz = 2e9
source = "clock sheet"

[matrix]
kind = "vector"
rows = 8
cols = 8
count = 2
source = "matrix sheet"

[matrix.dense_flops]
bf16 = 5e11

[[memory]]
name = "sram"
capacity_bytes = 4e6
bandwidth_bytes_per_s = 2e12
source = "memory sheet"
"""

SECTIONS = """
[power]
watts = 350.0
scope = "system_per_chip"
source = "power sheet"
assumption = "rack power over 8 chips"

[scale_up]
chips = 16
topology = "torus2d"
hop_latency_s = 1.5e-6
link_bandwidth_bytes_per_s = 2e11
source = "scale sheet"

[sustained]
main_bandwidth_bytes_per_s = 1.6e12
clock_hz = 1.9e9
source = "bench paper"

[sustained.dense_flops]
bf16 = 4e11

[fabric]
topology = "mesh"
hop_cycles = 1
source = "fabric paper"
"""

BAD = {  # case: ((old, new), field named in the message)
    "power missing source": (('source = "power sheet"\n', ""), "power.source"),
    "power zero watts": (("watts = 350.0", "watts = 0"), "power.watts"),
    "power negative watts": (("watts = 350.0", "watts = -5.0"), "power.watts"),
    "power unknown scope": (('scope = "system_per_chip"', 'scope = "rack"'), "chip, system_per_chip"),
    "power unknown field": (("watts = 350.0", "watts = 350.0\nvolts = 12.0"), "power.volts"),
    "scale_up missing source": (('source = "scale sheet"\n', ""), "scale_up.source"),
    "scale_up zero chips": (("chips = 16", "chips = 0"), "scale_up.chips"),
    "scale_up fractional chips": (("chips = 16", "chips = 16.5"), "scale_up.chips"),
    "scale_up unknown topology": (('topology = "torus2d"', 'topology = "ring"'),
                                  "switch, torus2d, torus3d, mesh, dragonfly, none"),
    "scale_up negative hop": (("hop_latency_s = 1.5e-6", "hop_latency_s = -1e-6"), "scale_up.hop_latency_s"),
    "scale_up hop over a second": (("hop_latency_s = 1.5e-6", "hop_latency_s = 2.0"), "scale_up.hop_latency_s"),
    "sustained missing source": (('source = "bench paper"\n', ""), "sustained.source"),
    "sustained unknown dtype": (("bf16 = 4e11", "bf17 = 4e11"), "sustained.dense_flops.bf17"),
    "sustained zero flops": (("bf16 = 4e11", "bf16 = 0.0"), "sustained.dense_flops.bf16"),
    "sustained negative bandwidth": (("main_bandwidth_bytes_per_s = 1.6e12", "main_bandwidth_bytes_per_s = -1.0"),
                                     "sustained.main_bandwidth_bytes_per_s"),
    "fabric missing hop": (("hop_cycles = 1\n", ""), "fabric.hop_cycles"),
    "fabric unknown topology": (('topology = "mesh"', 'topology = "hypercube"'), "fabric.topology"),
}


def _write(tmp_path, text: str, stem: str = "tiny"):
    path = tmp_path / f"{stem}.toml"
    path.write_text(text)
    return path


def test_each_section_loads_with_its_written_values(tmp_path):
    chip = load_chip_file(_write(tmp_path, BASE + SECTIONS))
    assert chip.power == Power(350.0, "system_per_chip", "power sheet", "rack power over 8 chips")
    assert chip.scale_up == ScaleUp(16, "torus2d", "scale sheet", "", 1.5e-6, 2e11)
    assert chip.sustained.dense_flops == {"bf16": 4e11}
    assert (chip.sustained.main_bandwidth_bytes_per_s, chip.sustained.clock_hz) == (1.6e12, 1.9e9)
    assert chip.sustained.source == "bench paper"
    assert chip.fabric == Fabric("mesh", 1.0, "fabric paper")
    assert chip.matrix.dense_flops == {"bf16": 5e11}  # the peak stays where it was


def test_a_file_without_the_sections_loads_them_as_none(tmp_path):
    chip = load_chip_file(_write(tmp_path, BASE))
    assert (chip.power, chip.scale_up, chip.sustained, chip.fabric) == (None, None, None, None)


def test_scale_up_defaults_hop_and_bandwidth_to_zero(tmp_path):
    text = BASE + '\n[scale_up]\nchips = 1\ntopology = "none"\nsource = "one wafer"\n'
    assert load_chip_file(_write(tmp_path, text)).scale_up == ScaleUp(1, "none", "one wafer")


def test_a_sustained_section_with_no_figure_is_rejected(tmp_path):
    path = _write(tmp_path, BASE + '\n[sustained]\nsource = "bench"\n')
    with pytest.raises(AccelsimError, match="'sustained' gives no figure"):
        load_chip_file(path)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_section_field_names_the_file_and_the_field(tmp_path, case):
    (old, new), field = BAD[case]
    assert old in SECTIONS
    path = _write(tmp_path, BASE + SECTIONS.replace(old, new, 1), case.replace(" ", "_"))
    with pytest.raises(AccelsimError) as info:
        load_chip_file(path)
    message = str(info.value)
    assert str(path) in message and field in message, message
    assert "\n" not in message


# ------------------------------------------------------------------------------------- the shipped presets

PRESETS = ("h100-sxm", "h200", "b200", "a100-80gb", "mi300x", "tpu-v5e", "tpu-v5p", "tpu-v6e", "trainium2",
           "groq-lpu", "cerebras-wse3", "gb200-nvl72")
# Figures read off each chip's datasheet or paper (see the preset's sources): (chips, topology) per domain.
SCALE_UP = {"h100-sxm": (8, "switch"), "h200": (8, "switch"), "b200": (8, "switch"), "a100-80gb": (8, "switch"),
            "mi300x": (8, "mesh"), "tpu-v5e": (256, "torus2d"), "tpu-v5p": (6144, "torus3d"),
            "tpu-v6e": (256, "torus2d"), "trainium2": (16, "torus2d"), "groq-lpu": (10440, "dragonfly"),
            "cerebras-wse3": (1, "none"), "gb200-nvl72": (72, "switch")}
POWER = {"h100-sxm": (700.0, "chip"), "h200": (700.0, "chip"), "b200": (1000.0, "chip"),
         "a100-80gb": (400.0, "chip"), "mi300x": (750.0, "chip"), "groq-lpu": (300.0, "chip"),
         "cerebras-wse3": (23000.0, "system_per_chip"), "gb200-nvl72": (1200.0, "chip")}  # Google and AWS publish no per-chip power


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_files_its_scale_up_domain_and_power(name):
    chip = load_chip(name)
    assert (chip.scale_up.chips, chip.scale_up.topology) == SCALE_UP[name]
    assert chip.scale_up.source.strip()
    if name in POWER:
        assert (chip.power.watts, chip.power.scope) == POWER[name]
    else:
        assert chip.power is None, f"{name}: a power figure nobody published"


@pytest.mark.parametrize("name", PRESETS)
def test_every_link_latency_is_filled_and_says_where_it_comes_from(name):
    for link in load_chip(name).links:
        assert 0 < link.latency_s <= 1e-5, f"{name}: {link.name} latency {link.latency_s}"
        assert "latency" in (link.source + link.assumption).lower(), f"{name}: {link.name} latency unexplained"


def test_sustained_figures_stay_below_the_peaks():
    filed = [load_chip(name) for name in PRESETS if load_chip(name).sustained is not None]
    assert "h100-sxm" in [chip.name for chip in filed]  # the issue [7] microbenchmark
    for chip in filed:
        for dtype, achieved in chip.sustained.dense_flops.items():
            assert achieved <= chip.peak_flops(dtype), f"{chip.name}: sustained {dtype} above peak"
        assert chip.sustained.main_bandwidth_bytes_per_s <= chip.main_memory.bandwidth_bytes_per_s


def test_the_h100_files_the_issue_microbenchmark_beside_unchanged_peaks():
    chip = load_chip("h100-sxm")
    assert chip.sustained.dense_flops == {"bf16": 798e12, "fp8": 1402.6e12}
    assert chip.sustained.main_bandwidth_bytes_per_s == 3.0e12
    assert chip.peak_flops("bf16") == 989.4e12 and chip.main_memory.bandwidth_bytes_per_s == 3.35e12
    # 798 / 989.4 = 80.7 % of peak; 3.0 / 3.35 = 89.6 % of the datasheet bandwidth, both worked by hand
    assert chip.sustained.dense_flops["bf16"] / chip.peak_flops("bf16") == pytest.approx(0.8065, abs=1e-4)
    # the fp8 MAMF figure, 1402.6 of 1979 TFLOP/s: 70.9 % (the table's own percentage)
    assert chip.sustained.dense_flops["fp8"] / chip.peak_flops("fp8") == pytest.approx(0.709, abs=1e-3)


def test_sustained_files_name_their_microbenchmarks():
    for name, cited in (("a100-80gb", "ml-engineering"), ("mi300x", "AI-benchmarking-guide"), ("h200", "ND_H200_v5")):
        chip = load_chip(name)
        assert chip.sustained is not None and cited in chip.sustained.source, name
        assert chip.sustained.main_bandwidth_bytes_per_s < chip.main_memory.bandwidth_bytes_per_s


def test_groq_stages_weights_and_cerebras_is_one_wafer_on_a_mesh():
    groq = load_chip("groq-lpu")
    assert groq.systolic.stationary_double_buffered and "ISCA 2020" in groq.systolic.source
    wafer = load_chip("cerebras-wse3")
    assert wafer.fabric == Fabric("mesh", 1.0, wafer.fabric.source, wafer.fabric.assumption)
    assert wafer.fabric.assumption  # no published per-hop cycle count: labelled as assumed
