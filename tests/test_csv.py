"""--csv: every command that prints a table prints it as CSV (a header row, then rows of the same width)."""

from __future__ import annotations

import csv
import io

import pytest

from accelsim.cli import main


@pytest.mark.parametrize("argv, first_header", [
    (["chips", "h100-sxm"], "chip"),
    (["matmul", "256", "512", "128", "--chip", "h100-sxm", "--chip", "tpu-v5e"], "chip"),
    (["attention", "--heads", "8", "--kv-heads", "2", "--q-len", "256", "--head-dim", "64", "--causal",
      "--chip", "h100-sxm"], "chip"),
    (["decode", "--heads", "8", "--kv-heads", "2", "--context", "512", "--head-dim", "64", "--chip", "h100-sxm"], "chip"),
    (["estimate", "--model", "smollm2-135m", "--prompt-len", "32", "--gen-len", "4", "--chip", "h100-sxm"], "chip"),
])
def test_tables_print_as_csv(argv, first_header, capsys):
    assert main(argv + ["--csv"]) == 0
    blocks = [b for b in capsys.readouterr().out.strip().split("\n\n") if b.strip()]
    for block in blocks:
        rows = list(csv.reader(io.StringIO(block)))
        assert len(rows) >= 2 and len({len(r) for r in rows}) == 1, block
    assert list(csv.reader(io.StringIO(blocks[0])))[0][0] == first_header
