"""`impact run` end to end on a small simulated world: private/ and release/, manifests,
disclosure log, problems summary, determinism; the CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from impact.cli import app

CONFIG = """
[run]
seed = 5
scale = "small"
n_boot = 49
primary_boot = 49

[bayes]
enabled = false

[followup]
n_reps = 2
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
        (out / "console.txt").write_text(result.output)
        outs.append(out)
    return outs[0], outs[1]


def test_run_writes_every_step(two_runs: tuple[Path, Path]) -> None:
    out, _ = two_runs
    for rel in ("private/registers/persons.parquet", "private/registers/truth.parquet",
                "private/calibration.csv", "private/panel.parquet", "private/attrition.csv",
                "private/figures/report/figure_7_1.png", "private/figures/report/figure_7_12.png",
                "private/figures/report/report_trends.csv", "private/tables/did_aggregates.csv",
                "private/tables/did_twfe.csv", "private/tables/did_att_gt.csv",
                "private/followup/design.md", "private/problems.csv", "private/manifest.json",
                "release/tables/headline.csv", "release/tables/headline.tex",
                "release/tables/report_trends_shares.csv", "release/figures/figure_7_1.png",
                "release/figures/figure_7_12.png", "release/followup/design.md",
                "release/followup/followup_comparison.csv", "release/followup/power_curve.png",
                "release/disclosure_log.csv", "release/disclosure_report.json",
                "release/manifest.json", "tables/headline.csv",
                "release/tables/did_subgroups.csv", "release/tables/tenant_composition_shares.csv",
                "release/tables/tenant_composition_income.csv",
                "release/tables/tenant_channel_contrasts.csv",
                "release/figures/did_subgroups_market_type_share_employed.png",
                "release/figures/tenants_by_channel_share_employed.png",
                "release/followup/followup_by_subgroup.csv"):
        assert (out / rel).is_file(), rel
    for folder in ("private", "release"):
        man = json.loads((out / folder / "manifest.json").read_text())
        assert man["config"]["run"]["seed"] == 5 and man["config"]["run"]["scale"] == "small"
        assert man["seed"] == 5
        assert set(man["inputs_sha256"]) == {f"simulated:{t}" for t in (
            "persons", "households", "departments", "lettings", "tool_adoption")}
        assert man["versions"]["impact"] and len(man["data_spec_sha256"]) == 64
        assert set(man["git"]) == {"commit", "dirty"}
        # the manifest hashes exactly the files of its folder
        files = {p.relative_to(out / folder).as_posix() for p in (out / folder).rglob("*")
                 if p.is_file() and p.name != "manifest.json"
                 and p.relative_to(out / folder).parts[0] != ".steps"}  # the step cache
        assert set(man["files_sha256"]) == files
    assert "panel.parquet" in json.loads((out / "private/manifest.json").read_text())[
        "files_sha256"]
    agg = pd.read_csv(out / "private" / "tables" / "did_aggregates.csv")
    simple = agg[agg["aggregation"] == "simple"]
    assert len(simple) == 16 and simple["truth"].notna().all()  # 2 tools x 4 outcomes x 2 specs
    assert set(simple["covariates"]) == {"none", "waiting_list_market+supported_department"}
    assert set(agg["cluster"]) == {"plan_id"}


def test_release_holds_only_checked_aggregates(two_runs: tuple[Path, Path]) -> None:
    out, _ = two_runs
    release = out / "release"
    names = {p.name for p in release.rglob("*")}
    assert not {"panel.parquet", "persons.parquet", "truth.parquet", "did_att_gt.csv",
                "attrition.csv"} & names
    report = json.loads((release / "disclosure_report.json").read_text())
    results = report["results"]
    assert report["rules"]["min_n"] == 5
    # every released file is listed in the report, and every listed output has a status
    listed = {f["name"] for r in results.values() for f in r["files"]}
    on_disk = {p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file()}
    assert on_disk - listed == {"disclosure_log.csv", "disclosure_report.json", "manifest.json"}
    assert {r["status"] for r in results.values()} <= {"pass", "review", "fail"}
    assert {"headline", "primary_event_study", "report_trends_shares", "report_trends_income",
            "followup_strata", "followup_design_md"} <= set(results)
    # no identifier columns in any released CSV; no released share from fewer than min_n persons
    from impact.report.disclosure import check_columns

    for path in release.rglob("*.csv"):
        if path.name == "disclosure_log.csv":
            continue
        frame = pd.read_csv(path, comment="#")
        assert check_columns(frame) == [], path
    shares = pd.read_csv(release / "tables" / "report_trends_shares.csv", comment="#")
    shown = shares[shares["value"].notna()]
    assert (shown["n_persons"] >= 5).all()
    # the contrasts are released through the model rules, with their results' support
    assert {"did_att_gt_aggregates", "did_twfe", "did_dose_response"} <= set(results)
    log = pd.read_csv(release / "disclosure_log.csv")
    agg = pd.read_csv(release / "tables" / "did_att_gt_aggregates.csv", comment="#")
    assert not {c for c in agg.columns if c.startswith("support_")} | ({"n_persons"} & set(agg))
    small = log[(log["output"] == "did_att_gt_aggregates") & (log["rule"] == "departments")]
    assert len(small) and agg.loc[small["row"].astype(int).unique(), "estimate"].isna().all()
    assert agg["estimate"].notna().any()
    # the top-level headline is the checked one
    head = pd.read_csv(out / "tables" / "headline.csv")
    checked = pd.read_csv(release / "tables" / "headline.csv", comment="#")
    pd.testing.assert_frame_equal(head, checked)
    assert not {c for c in head.columns if c.startswith("support_")}


def test_console_summarises_problems_and_says_what_may_leave(two_runs: tuple[Path, Path]
                                                               ) -> None:
    out, _ = two_runs
    console = (out / "console.txt").read_text()
    problems = pd.read_csv(out / "private" / "problems.csv")
    summary = pd.read_csv(out / "private" / "problems_summary.csv")
    assert summary["count"].sum() == len(problems)
    # every problem estimate_all reported is in the run's table
    did = pd.read_csv(out / "private" / "tables" / "did_problems.csv")
    assert (problems["step"] == "estimates").sum() >= len(did)
    if len(problems):
        assert f"Problems: {len(problems)} " in console
    else:
        assert "Problems: none." in console
    assert "release/ may leave the research server" in console.replace("\n", " ")
    assert "private/ holds microdata" in console


def test_run_refuses_a_foreign_folder_and_replaces_an_earlier_run(tmp_path: Path) -> None:
    from impact import config, pipeline
    from impact.errors import ImpactError

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    cfg = tmp_path / "bad.toml"
    cfg.write_text(CONFIG)
    result = CliRunner().invoke(app, ["run", "--config", str(cfg), "--out", str(foreign)])
    assert result.exit_code == 2
    assert "not an earlier impact run" in result.output
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / pipeline.RUN_MARKER).write_text("")
    (earlier / "stale.csv").write_text("x")
    pipeline.check_output_folder(earlier)  # accepted: replaced whole by the run
    pipeline._fresh_output_folder(earlier)
    assert sorted(p.name for p in earlier.iterdir()) == [pipeline.RUN_MARKER]
    with pytest.raises(ImpactError, match="not an earlier impact run"):
        pipeline.run_study(out=foreign, config=config.load(cfg))


def test_headline_is_the_primary_specification_with_its_truth(two_runs: tuple[Path, Path]) -> None:
    out, _ = two_runs
    head = pd.read_csv(out / "tables" / "headline.csv")
    # ARCHITECTURE's columns, in its order, and the diagnostics of issue 12
    issue = ["tool", "outcome", "estimand", "estimate", "se", "lower", "upper", "n_departments",
             "cluster", "pretest_p_value", "verdict"]
    assert [c for c in head.columns if c in issue] == issue
    assert {"truth", "subgroup", "pretrend_slope_80", "honest_breakdown_mbar",
            "mde_80"} <= set(head.columns)
    assert len(head) == 8 and set(head["cluster"]) == {"plan_id"}
    assert set(head["subgroup"]) == {"all"}
    sub = pd.read_csv(out / "private" / "tables" / "did_subgroups.csv")
    assert {"all", "waiting_list", "vacancies"} <= set(sub["subgroup"])
    assert sub["equal_effects_p_value"].between(0, 1).all()
    assert (out / "private" / "tables" / "tenant_channel_contrasts.csv").is_file()
    assert set(head["verdict"]) <= {"credible", "pre-trends rejected", "too few clusters",
                                    "not estimable"}
    # The truth column is the truth of the headline's own estimand: the mean tool-specific effect
    # over the department-years behind the estimate (recomputed here from the registers).
    truth = pd.read_parquet(out / "private" / "registers" / "truth.parquet")
    prim = pd.read_csv(out / "private" / "tables" / "did_primary.csv")
    assert prim.loc[prim["term"] == "att", "truth"].notna().all()
    fu = head[(head["tool"] == "flexible_letting") & (head["outcome"] == "share_employed")].iloc[0]
    from impact.estimates import prepare, primary

    res = primary(prepare(pd.read_parquet(out / "private" / "panel.parquet")), "share_employed", n_boot=0,
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
    for folder in ("private", "release"):
        ma = json.loads((a / folder / "manifest.json").read_text())
        mb = json.loads((b / folder / "manifest.json").read_text())
        assert ma["files_sha256"] == mb["files_sha256"], folder
        assert (a / folder / "manifest.json").read_bytes() == (
            b / folder / "manifest.json").read_bytes()
    assert (a / "tables/headline.csv").read_bytes() == (b / "tables/headline.csv").read_bytes()


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
    ('[run]\nscale = "big"\n', "[run].scale: 'big' is not allowed; allowed: small, report, "
                                "national"),
    ('[run]\nn_boot = "49"\n', "[run].n_boot must be an integer"),
    ('[run]\nprimary_boot = -1\n', "[run].primary_boot must be >= 0"),
    ('[run]\nworld = "mars"\n', "[run].world: 'mars' is not allowed; allowed: factual, placebo"),
    ("[bayes]\ndraws = 0\n", "[bayes].draws must be >= 1"),
    ("[bayesian]\ndraws = 10\n", "unknown table(s) [bayesian]"),
    ("[followup]\nn_reps = 1.5\n", "[followup].n_reps must be an integer"),
    ('[did.primary]\nplacebo_shifts = "2"\n', "[did.primary].placebo_shifts must be a list of "
                                               "integers"),
    ('[did.bacon]\noutcome = ["share_employed"]\n', "unknown key [did.bacon].outcome"),
    ("[run\n", "not valid TOML"),
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
    assert "unknown key [run].sed" in result.output
    assert not (tmp_path / "o").exists()


def test_simulate_scale_agrees_with_the_config(tmp_path: Path) -> None:
    from impact.config import SCALES

    result = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path / "s"), "--scale", "big"])
    assert result.exit_code == 2
    assert f"--scale must be {', '.join(SCALES[:-1])} or {SCALES[-1]}, not 'big'" in result.output
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("latexmk") is None and os.environ.get("CI") != "true",
                    reason="latexmk not installed on this machine (.ci/run installs it, and under "
                           "CI=true this test runs and fails without it)")
def test_paper_compiles_from_the_release(two_runs: tuple[Path, Path]) -> None:
    out, _ = two_runs
    numbers = (out / "release" / "paper" / "numbers.tex").read_text()
    head = pd.read_csv(out / "tables" / "headline.csv")
    row = head[(head["tool"] == "flexible_letting") & (head["outcome"] == "share_employed")]
    est = float(row["estimate"].iloc[0])
    shown = f"{est:.3f}".replace("-", "$-$")
    assert f"\\newcommand{{\\FlexibleLettingShareEmployedEstimate}}{{{shown}}}" in numbers
    result = CliRunner().invoke(app, ["paper", "--results", str(out)])
    assert result.exit_code == 0, result.output
    pdf = out / "paper" / "main.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    log = (out / "paper" / "main.log").read_text(errors="replace")
    assert "Undefined control sequence" not in log and "LaTeX Warning: Reference" not in log


@pytest.mark.parametrize("name", ["default.toml", "small.toml"])
def test_shipped_configs_load(name: str) -> None:
    from impact import config

    cfg = config.load(Path(__file__).parents[1] / "analyses" / "config" / name)
    assert cfg.scale in config.SCALES and cfg.world == "factual"
    if name == "default.toml":  # every key written out with its default
        assert config.to_dict(cfg) == config.to_dict(config.load(None))
    else:
        assert (cfg.scale, cfg.bayes, cfg.followup.n_reps) == ("small", False, 10)


# ------------------------------------------------------------------ the step cache (#13 item 1)

def _digest(folder: Path) -> dict[str, str]:
    """Every file of a run folder but the step cache and the fixture's console copy."""
    import hashlib

    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".steps" not in p.parts
            and p.name != "console.txt"}


def _copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _ran_and_reused(output: str) -> tuple[set[str], set[str]]:
    """Step names that ran and that were reused, from the progress lines."""
    from impact import config
    from impact.workflow import pipeline

    labels = {s.label: s.name for s in pipeline._steps(simulated=True, config=config.load(None))}
    ran = {name for label, name in labels.items() if f"] {label} ..." in output}
    reused = {name for label, name in labels.items() if f"] {label}: reused" in output}
    return ran, reused


def test_rerun_with_nothing_changed_reuses_every_step_and_writes_the_same_bytes(
        two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    from impact.workflow import pipeline

    run = _copy_run(two_runs[0], tmp_path / "again")
    before = _digest(run)
    cfg = tmp_path / "run.toml"
    cfg.write_text(CONFIG)
    result = CliRunner().invoke(app, ["run", "--config", str(cfg), "--out", str(run)])
    assert result.exit_code == 0, result.output
    ran, reused = _ran_and_reused(result.output)
    assert ran == set() and reused == set(pipeline.STEP_NAMES) - {"bayes"}  # bayes is off
    assert "Registers: unchanged since the run that wrote this folder (not read)" in result.output
    assert _digest(run) == before  # byte-identical, manifests included


def test_changing_one_value_reruns_exactly_the_steps_that_read_it(
        two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    run = _copy_run(two_runs[1], tmp_path / "changed")
    before = _digest(run)
    cfg = tmp_path / "run.toml"
    cfg.write_text(CONFIG.replace("n_reps = 2", "n_reps = 3")
                   + "\n[did.primary]\nplacebo_shifts = [3]\n")
    result = CliRunner().invoke(app, ["run", "--config", str(cfg), "--out", str(run)])
    assert result.exit_code == 0, result.output
    ran, reused = _ran_and_reused(result.output)
    assert ran == {"diagnostics", "followup"}
    assert reused == {"registers", "panel", "describe", "did", "intensity"}
    after = _digest(run)
    changed = {k for k in after if before.get(k) != after[k]}
    assert {"private/tables/did_placebo.csv", "private/followup/simulated.csv",
            "private/manifest.json", "release/manifest.json"} <= changed
    # what the reused steps wrote is untouched
    for rel in after:
        if rel.startswith(("private/registers/", "private/figures/", "private/panel")) or rel in (
                "private/tables/did_aggregates.csv", "private/tables/headline.csv",
                "private/tables/did_dose_response.csv", "release/tables/headline.csv"):
            assert rel not in changed, rel
    man = json.loads((run / "private" / "manifest.json").read_text())
    assert man["config"]["did"]["primary"]["placebo_shifts"] == [3]


def test_one_step_runs_what_it_needs_and_keeps_what_is_current(
        two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    """A numbered script is `impact run --step`: here everything is current, so nothing runs, the
    private/ outputs stay byte for byte and no release/ is written (that is 08_tables' job)."""
    import subprocess
    import sys

    run = _copy_run(two_runs[0], tmp_path / "script")
    before = _digest(run)
    cfg = tmp_path / "run.toml"
    cfg.write_text(CONFIG)
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(root / "analyses" / "02_describe.py"), "--config", str(cfg),
         "--out", str(run)], capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    ran, reused = _ran_and_reused(done.stderr)
    assert ran == set() and "describe" in reused
    assert "No release/ written" in done.stderr
    after = _digest(run)
    assert not (run / "release").exists() and not (run / "tables").exists()
    def private(d: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in d.items() if k.startswith("private/")}

    assert private(after) == private(before)
    assert set(after) - set(private(after)) == {".impact-run"}


def test_appendix_tables_are_released_and_equal_the_private_ones(two_runs: tuple[Path, Path]
                                                                 ) -> None:
    from impact.report.tables import read_csv

    out, _ = two_runs
    tables = out / "release" / "tables"
    for name in ("appendix_group_descriptives", "appendix_mover_composition",
                 "appendix_attrition", "appendix_headline", "appendix_att_gt", "appendix_twfe",
                 "appendix_dose_response"):
        for ext in ("csv", "md", "html", "tex"):
            assert (tables / f"{name}.{ext}").is_file(), (name, ext)
    assert not (tables / "appendix_bayes.csv").exists()  # [bayes] enabled = false
    assert (out / "release" / "figures" / "dose_response_event_study.png").is_file()
    # the attrition ledger: every released count is the private one
    released, _ = read_csv(tables / "appendix_attrition.csv")
    private = pd.read_csv(out / "private" / "attrition.csv")
    assert released["filter"].tolist() == private["filter"].tolist()
    for col in ("rows_in", "rows_removed", "rows_out"):
        shown = released[col].notna()
        assert shown.any()
        assert (released.loc[shown, col] == private.loc[shown, col]).all(), col
    numbers = (out / "release" / "paper" / "numbers.tex").read_text().splitlines()
    if released["rows_in"].notna().iloc[0]:
        n = f"{int(private['rows_in'].iloc[0]):,}".replace(",", "{,}")
        assert f"\\newcommand{{\\PersonYearsAll}}{{{n}}}" in numbers
    # the groups' residents in the last year are the panel's
    groups, _ = read_csv(tables / "appendix_group_descriptives.csv")
    panel = pd.read_parquet(out / "private" / "panel.parquet")
    last = int(panel["year"].max())
    total = groups[(groups["year"] == last) & (groups["report_group"] == "All four groups")]
    assert total["n_residents"].iloc[0] == panel.loc[
        panel["report_group"].notna() & (panel["year"] == last), "n_residents"].sum()
    # the effect tables are views of released tables: the headline's estimates unchanged
    head, _ = read_csv(tables / "appendix_headline.csv")
    checked = pd.read_csv(out / "tables" / "headline.csv")
    np.testing.assert_array_equal(head["estimate"].to_numpy(), checked["estimate"].to_numpy())
    report = json.loads((out / "release" / "disclosure_report.json").read_text())["results"]
    assert report["appendix_headline"]["comments"] == ["a view of the released table headline"]
