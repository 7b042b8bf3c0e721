"""The sustained view of a chip: [sustained] figures replace exactly the peaks they name, nothing else."""

from accelsim.chips import load_chip
from accelsim.chips.sustained import sustained_figures, sustained_view
from accelsim.models.estimate import estimate


def test_h100_sustained_view_replaces_the_figures_it_names_only():
    peak = load_chip("h100-sxm")
    view = sustained_view(peak)
    assert view.peak_flops("bf16") == 798e12            # the file's microbenchmark, not the 989.4 TFLOP/s peak
    assert view.peak_flops("fp8") == 1402.6e12          # the MAMF table's, not the 1,979 TFLOP/s peak
    assert view.main_memory.bandwidth_bytes_per_s == 3.0e12
    assert view.peak_flops("fp16") == peak.peak_flops("fp16")  # not given: stays at peak
    assert view.memory[1:] == peak.memory[1:] and view.clock_hz == peak.clock_hz
    assert sustained_figures(peak) == ["bf16 FLOP/s", "fp8 FLOP/s", "hbm bandwidth"]
    b200 = load_chip("b200")  # files bf16 and fp8 only: fp4 and bandwidth stay at their peaks
    assert sustained_view(b200).peak_flops("fp8") == 3432.5e12
    assert sustained_view(b200).peak_flops("fp4") == b200.peak_flops("fp4")
    assert sustained_view(b200).main_memory.bandwidth_bytes_per_s == b200.main_memory.bandwidth_bytes_per_s


def test_chip_without_sustained_is_unchanged():
    chip = load_chip("tpu-v5e")
    assert chip.sustained is None and sustained_view(chip) is chip and sustained_figures(chip) == []


def test_estimate_at_sustained_is_slower_by_the_bandwidth_ratio_when_memory_bound():
    kwargs = dict(model="smollm2-135m", chip="h100-sxm", batch=1, prompt_len=16, gen_len=4)
    peak, held = estimate(**kwargs), estimate(**kwargs, sustained=True)
    assert peak["figures"] == "peak" and held["figures"] == {"h100-sxm": ["bf16 FLOP/s", "fp8 FLOP/s", "hbm bandwidth"]}
    tpot_peak, tpot_held = peak["chips"][0]["tpot_s"], held["chips"][0]["tpot_s"]
    # every op is slower by at most the larger of the two ratios (bandwidth 3.35 / 3.0, bf16 989.4 / 798)
    assert tpot_peak < tpot_held <= tpot_peak * max(3.35e12 / 3.0e12, 989.4e12 / 798e12) * (1 + 1e-9)
