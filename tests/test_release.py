"""The release writer (only checked outputs leave, with the log) and the run manifest."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from impact import config
from impact.errors import ImpactError
from impact.report import release
from impact.report.tables import read_csv

CFG = config.load(None)


def outputs() -> tuple[list, list]:
    shares = release.CellTable(
        name="share_employed_by_group",
        frame=pd.DataFrame({"group": ["both", "flexible_only", "neither"], "year": [2010] * 3,
                            "share_employed": [0.41, 0.55, 0.38], "n_persons": [120, 4, 300]}),
        evidence=pd.DataFrame({"n_persons": [120, 4, 300], "numerator": [49, 2, 114]}),
        kind="share", value_columns=("share_employed",), title="Employment share")
    v = pd.DataFrame([[20, 30, 2, 40], [25, 35, 45, 50], [30, 60, 70, 80]],
                     index=pd.Index(list("abc"), name="market"), columns=list("WXYZ"))
    ext = v.astype(float)
    ext["total"] = ext.sum(axis=1)
    ext.loc["total"] = ext.sum(axis=0)
    movers = release.MarginTable(name="movers", values=v, evidence={"n_persons": ext},
                                 kind="count", title="In-movers")
    model = release.ModelTable(
        name="event_study",
        frame=pd.DataFrame({"term": ["e-1", "e0", "e1"], "estimate": [0.01, 0.02, 0.03],
                            "se": [0.01] * 3, "lower": [-0.01] * 3, "upper": [0.05] * 3,
                            "df_resid": [40, 40, 40], "n_departments_treated": [6, 6, 2],
                            "n_departments_control": [30, 30, 30],
                            "n_persons_treated": [90, 90, 30],
                            "n_persons_control": [500, 500, 500]}))
    leaky = release.CellTable(
        name="leaky", frame=pd.DataFrame({"department_id": [1, 2], "share": [0.5, 0.6]}),
        evidence=pd.DataFrame({"n_persons": [50, 60], "numerator": [25, 36]}), kind="share",
        value_columns=("share",))

    def draw(frame: pd.DataFrame):
        fig, ax = plt.subplots()
        ax.plot(frame["term"].tolist(), frame["estimate"].to_numpy(), marker="o")
        return fig

    figures = [release.ReleaseFigure("event_study_plot", "event_study", draw),
               release.ReleaseFigure("leaky_plot", "leaky", draw)]
    return [shares, movers, model, leaky], figures


def test_only_checked_outputs_are_written(tmp_path):
    tables, figures = outputs()
    res = release.write_released(tables, tmp_path / "release", CFG, figures=figures)
    assert res.status == {"share_employed_by_group": "review", "movers": "review",
                          "event_study": "review", "leaky": "fail", "event_study_plot": "pass",
                          "leaky_plot": "fail"}
    out = tmp_path / "release"
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert "disclosure_log.csv" in written and "disclosure_report.json" in written
    assert not [w for w in written if "leaky" in w]  # identifiers never released
    assert "figures/event_study_plot.png" in written
    # the 4-person row is blanked, value and count
    shares, _ = read_csv(out / "tables" / "share_employed_by_group.csv")
    assert shares.loc[1, ["share_employed", "n_persons"]].isna().all()
    assert shares.loc[[0, 2], "n_persons"].tolist() == [120, 300]
    # no released count below the threshold anywhere
    movers, _ = read_csv(out / "tables" / "movers.csv")
    nums = movers.drop(columns="market").to_numpy(dtype=float)
    assert not ((nums > 0) & (nums < 5)).any() and np.isnan(nums).sum() == 4
    model, _ = read_csv(out / "tables" / "event_study.csv")
    assert model["estimate"].isna().tolist() == [False, False, True]
    assert "n_departments_treated" not in model and "df_resid" not in model
    log = pd.read_csv(out / "disclosure_log.csv")
    assert set(log["output"]) == {"share_employed_by_group", "movers", "event_study", "leaky",
                                  "leaky_plot"}
    assert "looks like an identifier" in log.loc[log["output"] == "leaky", "reason"].iloc[0]
    report = json.loads((out / "disclosure_report.json").read_text())
    assert report["results"]["event_study"]["type"] == "regression"
    assert report["results"]["event_study"]["files"][0]["sdc"]["summary"]["departments"] == 4
    plt.close("all")


def test_figures_are_drawn_from_the_released_table(tmp_path):
    tables, _ = outputs()
    seen = {}

    def draw(frame: pd.DataFrame):
        seen["frame"] = frame
        fig, ax = plt.subplots()
        ax.plot(range(len(frame)), frame["estimate"].to_numpy())
        return fig

    release.write_released(tables, tmp_path / "r", CFG,
                           figures=[release.ReleaseFigure("f", "event_study", draw)])
    y = seen["frame"]["estimate"].to_numpy()
    assert np.isnan(y[2]) and y[:2].tolist() == [0.01, 0.02]
    plt.close("all")


def test_two_runs_give_identical_files(tmp_path):
    tables, figures = outputs()
    a = release.write_released(tables, tmp_path / "a", CFG, figures=figures)
    b = release.write_released(tables, tmp_path / "b", CFG, figures=figures)
    for pa, pb in zip(sorted(a.files), sorted(b.files), strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    plt.close("all")


def test_a_folder_of_an_earlier_run_is_refused_or_replaced(tmp_path):
    (tmp_path / "release").mkdir()
    (tmp_path / "release" / "stale.csv").write_text("x\n")
    with pytest.raises(ImpactError, match="earlier run"):
        release.write_released([], tmp_path / "release", CFG)
    release.write_released([], tmp_path / "release", CFG, replace=True)
    assert not (tmp_path / "release" / "stale.csv").exists()


def test_manifest(tmp_path):
    folder = tmp_path / "release"
    folder.mkdir()
    (folder / "t.csv").write_text("a\n1\n")
    spec = tmp_path / "spec"
    spec.mkdir()
    (spec / "persons.toml").write_text("x = 1\n")
    repo = Path(__file__).resolve().parents[1]
    path = release.write_manifest(folder, config=CFG, inputs={"simulated:persons": "ab"},
                                  data_spec=spec, repo=repo)
    m = json.loads(path.read_text())
    import hashlib
    assert m["files_sha256"] == {"t.csv": hashlib.sha256(b"a\n1\n").hexdigest()}
    assert m["seed"] == 0 and m["config_sha256"] == config.config_hash(CFG)
    assert m["config"]["disclosure"]["min_n"] == 5
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert m["git"]["commit"] == head and isinstance(m["git"]["dirty"], bool)
    assert m["versions"]["impact (source)"]
    first = m["data_spec_sha256"]
    (spec / "persons.toml").write_text("x = 2\n")
    assert release.data_spec_sha256(spec) != first
    # a second manifest of the same folder is identical (the manifest itself is not hashed)
    (spec / "persons.toml").write_text("x = 1\n")
    before = path.read_bytes()
    release.write_manifest(folder, config=CFG, inputs={"simulated:persons": "ab"}, data_spec=spec,
                           repo=repo)
    assert path.read_bytes() == before
    assert release.git_state(tmp_path) == {"commit": None, "dirty": None, "root": str(tmp_path)}


def test_cell_table_from_micro_records_evidence_and_suppresses(tmp_path):
    rows = []
    for g, n in (("a", 12), ("b", 3), ("c", 10)):
        for k in range(n):
            income = 100.0 + k
            if g == "c" and k == 0:
                income = 10_000.0  # one person holds 10000 / (10000 + 9 * 100 + 45) = 91%
            rows.append({"person_id": f"{g}{k}", "department_id": k % 3, "group": g,
                         "employed": int(k % 2 == 0), "income": income})
    micro = pd.DataFrame(rows)
    mean = release.CellTable.from_micro("mean_income", micro, ["group"], statistic="mean",
                                        value="income")
    assert mean.frame.columns.tolist() == ["group", "mean_income", "n_persons"]
    assert mean.frame["mean_income"].iloc[0] == pytest.approx(100 + 5.5)
    share = release.CellTable.from_micro("share_employed", micro, ["group"], statistic="share",
                                         value="employed")
    assert share.evidence["numerator"].tolist() == [6, 2, 5]
    res = release.write_released([mean, share], tmp_path / "r", CFG)
    got, _ = read_csv(tmp_path / "r" / "tables" / "mean_income.csv")
    # b: 3 persons (threshold); c: dominated (nk-rule); a released
    assert got["mean_income"].isna().tolist() == [False, True, True]
    got, _ = read_csv(tmp_path / "r" / "tables" / "share_employed.csv")
    assert got["share_employed"].isna().tolist() == [False, True, False]
    assert got["share_employed"].iloc[0] == pytest.approx(0.5)
    assert res.status == {"mean_income": "review", "share_employed": "review"}
    log = pd.read_csv(tmp_path / "r" / "disclosure_log.csv")
    assert set(zip(log["output"], log["rule"], strict=True)) == {
        ("mean_income", "threshold"), ("mean_income", "nk-rule"), ("share_employed", "threshold"),
        ("share_employed", "share")}
