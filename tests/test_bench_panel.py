"""The panel benchmark compares like with like: its hand-written DuckDB queries give the panel's
numbers (stock, movers, lettings intensity, exposure and linked in-movers) on its own register."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_panel.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_panel", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_queries_equal_the_panel(tmp_path: Path) -> None:
    bench = _bench()
    bench.generate(tmp_path, 20_000)
    lettings = pd.read_parquet(tmp_path / "lettings.parquet")
    assert set(lettings["channel"]) == set(bench.CHANNELS)  # every channel occurs
    assert lettings["person_id"].notna().mean() > 0.8
    bench.check(tmp_path)  # raises AssertionError naming a column that differs
