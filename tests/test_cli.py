"""The command line: tables and JSON for each command, and one-line errors (exit 2) for bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from accelsim.chips.loader import PRESET_DIR, preset_names
from accelsim.cli import main

PRESETS = [n for n in preset_names() if n != "host"]


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_chips_table_lists_every_preset_with_sources(capsys):
    code, out, _ = run(["chips"], capsys)
    assert code == 0
    for name in PRESETS:
        assert name in out
    assert "Sources" in out and "ridge FLOP/B" in out


def test_one_chip_as_json(capsys):
    code, out, _ = run(["chips", "h100-sxm", "--json"], capsys)
    chip = json.loads(out)
    assert code == 0 and chip["name"] == "h100-sxm"
    assert chip["matrix"]["dense_flops"]["bf16"] == 989.4e12 and chip["matrix"]["sparse_flops"]["bf16"] == 1978.9e12
    assert chip["memory"][0]["bandwidth_bytes_per_s"] == 3.35e12
    assert chip["ridge_point_bf16"] == pytest.approx(989.4e12 / 3.35e12)


def test_matmul_json_has_per_level_bytes_cycles_time_and_bound(capsys):
    code, out, _ = run(["matmul", "4096", "4096", "4096", "--chip", "h100-sxm", "--chip", "tpu-v5e",
                        "--chip", "groq-lpu", "--json"], capsys)
    plans = json.loads(out)
    assert code == 0 and [p["chip"] for p in plans] == ["h100-sxm", "tpu-v5e", "groq-lpu"]
    for plan in plans:
        assert plan["flops"] == 2 * 4096**3
        assert all(v > 0 for v in plan["bytes_per_level"].values())
        assert plan["total_cycles"] > 0 and plan["time_s"] > 0 and plan["bound"]
    assert list(plans[2]["bytes_per_level"]) == ["sram"]  # no HBM on an SRAM-only chip


def test_decode_done_when(capsys):
    code, out, _ = run(["decode", "--batch", "1", "--heads", "64", "--kv-heads", "8", "--context", "32768",
                        "--head-dim", "128", "--chip", "h100-sxm", "--chip", "groq-lpu", "--json"], capsys)
    plans = json.loads(out)
    assert code == 0
    for plan in plans:
        assert plan["kv_cache_bytes_per_layer_step"] == 2 * 32768 * 8 * 128 * 2
        assert plan["time_per_layer_step_s"] > 0 and plan["bound"]


def test_user_chip_file(tmp_path, capsys):
    path = tmp_path / "mychip.toml"
    shutil.copy(PRESET_DIR / "tpu-v5e.toml", path)
    path.write_text(path.read_text().replace('name = "tpu-v5e"', 'name = "my-chip"'))
    code, out, _ = run(["matmul", "512", "512", "512", "--chip", str(path)], capsys)
    assert code == 0 and "my-chip" in out


@pytest.mark.parametrize("edit, field", [
    (lambda s: s.replace("bandwidth_bytes_per_s = 819e9", "bandwidth_bytes_per_s = -819e9"), "memory[0].bandwidth_bytes_per_s"),
    (lambda s: s.replace('vendor = "Google"', 'vendor = "Google"\nfrobnication = 3'), "frobnication"),
    (lambda s: s.replace('vendor = "Google"\n', ""), "vendor"),
])
def test_bad_chip_file_is_one_line_naming_file_and_field(tmp_path, capsys, edit, field):
    text = (PRESET_DIR / "tpu-v5e.toml").read_text()
    changed = edit(text)
    assert changed != text, "the edit must apply to the preset"
    path = tmp_path / "bad.toml"
    path.write_text(changed)
    code, out, err = run(["matmul", "64", "64", "64", "--chip", str(path)], capsys)
    assert code == 2 and out == ""
    assert str(path) in err and field in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["matmul", "0", "4", "4", "--chip", "h100-sxm"], "argument M: must be a positive integer (got 0)"),
    (["matmul", "4", "4", "4", "--dtype", "fp7", "--chip", "h100-sxm"], "unknown dtype 'fp7'"),
    (["matmul", "4", "4", "4", "--chip", "h100"], "h100-sxm"),
    (["attention", "--heads", "6", "--kv-heads", "4", "--q-len", "8", "--chip", "h100-sxm"], "must divide"),
    (["decode", "--heads", "8", "--context", "100", "--cache-len", "50", "--chip", "h100-sxm"], "longer than the cache"),
    (["decode", "--heads", "8", "--context", "100", "--page-size", "128", "--chip", "h100-sxm"], "page size"),
])
def test_bad_arguments_are_one_line(argv, message, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1
