"""`impact run` end to end on a small simulated world: outputs, provenance, determinism; the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from impact.cli import app

CONFIG = """
[run]
seed = 5
scale = "small"
n_boot = 49
bayes = false
"""


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("run")
    cfg = root / "run.toml"
    cfg.write_text(CONFIG)
    outs = []
    for name in ("a", "b"):
        out = root / name
        result = CliRunner().invoke(app, ["run", "--config", str(cfg), "--out", str(out)])
        assert result.exit_code == 0, result.output
        outs.append(out)
    return outs[0], outs[1]


def test_run_writes_every_step(two_runs: tuple[Path, Path]) -> None:
    out, _ = two_runs
    for rel in ("registers/persons.parquet", "registers/truth.parquet", "calibration.csv",
                "panel.parquet", "attrition.csv", "figures/report/figure_7_1.png",
                "figures/report/figure_7_12.png", "figures/report/report_trends.csv",
                "tables/did_aggregates.csv", "tables/did_twfe.csv", "provenance.json"):
        assert (out / rel).is_file(), rel
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["config"]["seed"] == 5 and prov["config"]["scale"] == "small"
    assert set(prov["inputs_sha256"]) == {f"simulated:{t}" for t in (
        "persons", "households", "departments", "lettings", "tool_adoption")}
    assert prov["versions"]["impact"]
    assert "panel.parquet" in prov["outputs_sha256"]
    agg = pd.read_csv(out / "tables" / "did_aggregates.csv")
    simple = agg[agg["aggregation"] == "simple"]
    assert len(simple) == 16 and simple["truth"].notna().all()  # 2 tools x 4 outcomes x 2 specs
    assert set(simple["covariates"]) == {"none", "market+supported"}
    assert set(agg["cluster"]) == {"plan_id"}


def test_headline_is_the_primary_specification_with_its_truth(two_runs: tuple[Path, Path]) -> None:
    out, _ = two_runs
    head = pd.read_csv(out / "tables" / "headline.csv")
    assert list(head.columns[:11]) == ["tool", "outcome", "estimand", "estimate", "se", "lower",
                                       "upper", "n_departments", "n_department_years",
                                       "n_treated_clusters", "cluster"]
    assert {"pretest_p_value", "verdict", "truth"} <= set(head.columns)
    assert len(head) == 8 and set(head["cluster"]) == {"plan_id"}
    assert set(head["verdict"]) <= {"credible", "pre-trends rejected", "too few clusters",
                                    "not estimable"}
    # The truth column is the truth of the headline's own estimand: the mean tool-specific effect
    # over the department-years behind the estimate (recomputed here from the registers).
    truth = pd.read_parquet(out / "registers" / "truth.parquet")
    prim = pd.read_csv(out / "tables" / "did_primary.csv")
    assert prim.loc[prim["term"] == "att", "truth"].notna().all()
    fu = head[(head["tool"] == "flexible_letting") & (head["outcome"] == "share_employed")].iloc[0]
    from impact.estimates import prepare, primary

    res = primary(prepare(pd.read_parquet(out / "panel.parquet")), "share_employed", n_boot=0,
                  seed=0)
    rows = res.rows[res.rows["tool"] == "flexible_letting"]
    assert len(rows) == fu["n_department_years"]
    m = rows.merge(truth, on=["department_id", "year"], how="left")
    assert m["share_employed_effect_flexible_letting"].mean() == pytest.approx(fu["truth"],
                                                                               abs=1e-12)
    assert (m["year"] > m["cohort"]).all()  # the first year in force cannot move the stock
    lo, hi = fu["lower"], fu["upper"]
    assert lo < fu["estimate"] < hi


def test_same_seed_gives_byte_identical_outputs(two_runs: tuple[Path, Path]) -> None:
    a, b = two_runs
    pa = json.loads((a / "provenance.json").read_text())
    pb = json.loads((b / "provenance.json").read_text())
    assert pa["outputs_sha256"] == pb["outputs_sha256"]
    assert (a / "provenance.json").read_bytes() == (b / "provenance.json").read_bytes()


def test_simulate_command_writes_tables_and_calibration(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path), "--seed", "2",
                                      "--calibration", "--scale", "report"])
    assert result.exit_code == 0, result.output
    assert "qualifying education" in result.output.lower()
    for table in ("persons", "households", "departments", "lettings", "tool_adoption", "truth"):
        assert (tmp_path / f"{table}.parquet").is_file()
    valid = CliRunner().invoke(app, ["validate", str(tmp_path)])
    assert valid.exit_code == 0, valid.output


def test_panel_command(tmp_path: Path) -> None:
    from impact import io, simulate

    io.write_registers(simulate.registers(seed=1, scale="small"), tmp_path / "reg")
    out = tmp_path / "panel.parquet"
    result = CliRunner().invoke(app, ["panel", "--data", str(tmp_path / "reg"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert {"share_employed", "in_share_employed", "intensity_flexible_letting",
            "cohort_flexible_letting", "report_group"} <= set(frame.columns)


@pytest.mark.parametrize(("body", "message"), [
    ('[run]\nscale = "big"\n', "scale must be small, report or national"),
    ('[run]\nn_boot = "49"\n', "n_boot must be a non-negative integer"),
    ('[run]\nworld = "mars"\n', "world must be factual or placebo"),
    ("[bayes]\ndraws = 10\n", "unknown table(s) bayes"),
    ("[run\n", "cannot read the configuration"),
])
def test_bad_config_value_exits_2_and_writes_nothing(tmp_path: Path, body: str,
                                                     message: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(body)
    result = CliRunner().invoke(app, ["run", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_unknown_config_key_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[run]\nsed = 1\n")
    result = CliRunner().invoke(app, ["run", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "unknown [run] setting(s): sed" in result.output
    assert not (tmp_path / "o").exists()
