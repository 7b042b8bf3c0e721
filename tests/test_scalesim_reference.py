"""accelsim's SCALE-Sim convention (``scalesim_cycles``) against the real SCALE-Sim 3.0.0.

Each case runs SCALE-Sim's own top level (``scalesim.scale_sim.scalesim``) on a one-layer GEMM
topology ``M, N, K`` = (m, n, k), i.e. an (m, k) ifmap times a (k, n) filter, with SRAMs far larger
than the operands and SCALE-Sim's estimated-bandwidth mode (``InterfaceBandwidth = CALC``), so it
reports no memory stalls, and reads its COMPUTE_REPORT.csv and DETAILED_ACCESS_REPORT.csv.
"""

from __future__ import annotations

import builtins
import csv
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scalesim.memory import double_buffered_scratchpad_mem
from scalesim.scale_sim import scalesim

from accelsim.cost.systolic import DATAFLOWS, array_operand_bytes, fold_count, scalesim_cycles, stream_length

OS = "output_stationary"
SCALESIM_DATAFLOW = {"output_stationary": "os", "weight_stationary": "ws", "input_stationary": "is"}

CONFIG = """\
[general]
run_name = run

[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
ifmapsramszkB = 4096
filtersramszkB = 4096
ofmapsramszkB = 4096
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Dataflow = {dataflow}
ReadRequestBuffer = 1024
WriteRequestBuffer = 1024

[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false

[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False
"""


def _max(*args, **kwargs):
    # SCALE-Sim 3.0.0 takes int(max(...)) of one-element 1-D arrays (service_memory_requests in
    # scalesim/memory/double_buffered_scratchpad_mem.py), which NumPy >= 2.4 rejects: unwrap them.
    result = builtins.max(*args, **kwargs)
    return result.item() if isinstance(result, np.ndarray) and result.size == 1 else result


def run_scalesim(workdir: Path, dataflow: str, m: int, k: int, n: int, rows: int,
                 cols: int) -> dict[str, int]:
    """One SCALE-Sim run; its report columns by name, plus its demand matrices' length."""
    config, topology, layout = workdir / "scale.cfg", workdir / "gemm.csv", workdir / "layout.csv"
    config.write_text(CONFIG.format(rows=rows, cols=cols, dataflow=SCALESIM_DATAFLOW[dataflow]))
    topology.write_text(f"Layer, M, N, K,\ngemm, {m}, {n}, {k},\n")
    layout.write_text("Layer,\n")       # no custom layout; SCALE-Sim still opens the file
    sim = scalesim(save_disk_space=True, verbose=False, config=str(config), topology=str(topology),
                   layout=str(layout), input_type_gemm=True)
    with mock.patch.object(double_buffered_scratchpad_mem, "max", _max, create=True):
        sim.run_scale(top_path=str(workdir))
    report = {}
    for name in ("COMPUTE_REPORT.csv", "DETAILED_ACCESS_REPORT.csv"):
        with open(workdir / "run" / name, newline="") as f:
            header, values = (row for row in csv.reader(f))
        report |= {key.strip(): int(float(value)) for key, value in zip(header, values) if key.strip()}
    ofmap_demand = sim.runner.single_layer_sim_object_list[0].compute_system.get_ofmap_demand_mat()
    report["demand rows"] = ofmap_demand.shape[0]
    return report


def _check(workdir: Path, m: int, k: int, n: int, rows: int, cols: int) -> None:
    for dataflow in DATAFLOWS:
        case = workdir / dataflow
        case.mkdir()
        measured = run_scalesim(case, dataflow, m, k, n, rows, cols)
        assert measured["Stall Cycles"] == 0
        ours = scalesim_cycles(dataflow, m, k, n, rows, cols)
        assert abs(ours - measured["Total Cycles"]) <= 1, (dataflow, ours, measured)
        # ... and in fact exactly; the schedule itself is one row longer (see the model's docstring)
        assert ours == measured["Total Cycles"] == measured["demand rows"] - 1, (dataflow, ours, measured)
        # SRAM traffic: the real elements of ours; OS ofmap writes count R + C more per fold
        edge = array_operand_bytes(dataflow, m, k, n, rows, cols, in_bytes=1, acc_bytes=1)
        extra = fold_count(dataflow, m, k, n, rows, cols) * (rows + cols) if dataflow == OS else 0
        assert measured["SRAM IFMAP Reads"] == edge["a"], dataflow
        assert measured["SRAM Filter Reads"] == edge["b"], dataflow
        assert measured["SRAM OFMAP Writes"] == edge["out_partial"] + edge["out_final"] + extra, dataflow


@settings(derandomize=True, deadline=None, max_examples=30)
@given(rows=st.integers(1, 16), cols=st.integers(1, 16),
       m=st.integers(1, 40), k=st.integers(1, 40), n=st.integers(1, 40))
def test_scalesim_cycles_match_scalesim(tmp_path_factory, rows, cols, m, k, n):
    assume(rows * cols * m * k * n > 1)     # SCALE-Sim reports 0 cycles here and divides by them
    # keep each run to a few thousand demand rows (SCALE-Sim serves them one by one in Python)
    assume(all(fold_count(df, m, k, n, rows, cols) * (2 * rows + cols + stream_length(df, m, k, n)) <= 6000
               for df in DATAFLOWS))
    _check(tmp_path_factory.mktemp("scalesim"), m, k, n, rows, cols)


@pytest.mark.parametrize("rows, cols, m, k, n", [
    (4, 4, 4, 4, 4),        # one full fold each
    (4, 4, 5, 5, 5),        # one real row/column over: edge folds of one
    (8, 4, 7, 9, 3),        # non-square array, nothing divides
    (4, 8, 9, 7, 17),
    (16, 16, 1, 1, 1),      # one MAC pays the full array
    (1, 8, 3, 2, 9),        # a single row of PEs
    (8, 1, 9, 3, 2),        # a single column of PEs
    (1, 1, 2, 3, 1),        # one PE (not 1 x 1 x 1: SCALE-Sim reports 0 cycles and divides by it)
])
def test_scalesim_cycles_match_scalesim_edges(tmp_path, rows, cols, m, k, n):
    _check(tmp_path, m, k, n, rows, cols)
