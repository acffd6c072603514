"""The step cache of `impact run` (impact.workflow.steps): keys, the restricted configuration a
step sees, storing and restoring a step's files and state; the numbered scripts' steps."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import pandas as pd
import pytest

from impact.workflow import config as study_config
from impact.workflow import pipeline
from impact.workflow.scripts import SCRIPTS
from impact.workflow.steps import (
    CACHE_DIR,
    Step,
    StepCache,
    UndeclaredConfigKey,
    apply_delta,
    config_values,
    restricted,
    state_delta,
    state_marks,
    step_key,
)

ROOT = Path(__file__).resolve().parents[1]
CFG = study_config.StudyConfig()


def other(**tables: dict) -> study_config.StudyConfig:
    return study_config.from_dict(tables)


def test_a_step_sees_only_the_keys_it_declares() -> None:
    view = restricted(CFG, ("run.seed", "bayes", "did.att_gt.method"), "toy")
    assert view.seed == 0 and view.run.seed == 0  # a shortcut reads the key it stands for
    assert view.bayes_model.draws == 1000 and view.bayes is True  # a whole table
    assert view.did.att_gt.method == "dr"
    for use in (lambda: view.n_boot + 1, lambda: view.run.scale == "small",
                lambda: view.did.att_gt.control == "x", lambda: view.did.bacon.outcomes,
                lambda: list(view.study.tools), lambda: view.followup.enabled,
                lambda: f"{view.run.primary_boot}", lambda: view.data_root):
        with pytest.raises(UndeclaredConfigKey, match="step 'toy' used the configuration key"):
            use()
    with pytest.raises(UndeclaredConfigKey, match=r"'run\.n_boot'"):
        bool(view.run.n_boot)


def test_key_changes_with_exactly_what_the_step_reads() -> None:
    step = Step("toy", "toy", lambda *a: None, after=("up",), config=("run.n_boot", "followup"))
    base = dict(upstream={"up": "u1"}, inputs="i1", code="c1")
    k = step_key(step, CFG, **base)
    assert k == step_key(step, study_config.load(None), **base)  # deterministic
    assert k == step_key(step, other(run={"seed": 9}, bayes={"draws": 5}), **base)  # not read
    for changed, kw in ((other(run={"n_boot": 1}), base),
                        (other(followup={"n_reps": 3}), base),
                        (CFG, {**base, "upstream": {"up": "u2"}}),
                        (CFG, {**base, "inputs": "i2"}),
                        (CFG, {**base, "code": "c2"})):
        assert step_key(step, changed, **kw) != k
    assert config_values(CFG, ["run.n_boot", "followup"]) == {
        "followup": study_config.to_dict(CFG)["followup"], "run.n_boot": 999}
    with pytest.raises(KeyError):
        config_values(CFG, ["run.nboot"])


def test_every_pipeline_step_declares_real_keys_and_known_upstream_steps() -> None:
    steps = pipeline._steps(simulated=True, config=CFG)
    assert [s.name for s in steps] == list(pipeline.STEP_NAMES)
    for s in steps:
        config_values(CFG, s.config)  # every declared key exists
        assert set(s.after) <= set(pipeline.STEP_NAMES[:pipeline.STEP_NAMES.index(s.name)])
    off = pipeline._steps(simulated=False, config=other(bayes={"enabled": False},
                                                         followup={"enabled": False}))
    assert [s.name for s in off] == ["panel", "describe", "did", "intensity", "diagnostics"]
    # the estimation steps read no key they do not declare: the placebo shift is the
    # diagnostics' alone, the dose response's options the intensity step's alone
    by = {s.name: s for s in steps}
    assert "did.primary.placebo_shifts" not in by["did"].config
    assert "did.primary" in by["diagnostics"].config
    assert "did.dose_response" not in by["did"].config


def write(out: Path, rel: str, text: str) -> None:
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def digest(out: Path) -> dict[str, str]:
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and CACHE_DIR.name not in p.parts}


def test_store_and_restore_give_back_the_files_and_the_state(tmp_path: Path) -> None:
    out = tmp_path / "run"
    write(out, pipeline.RUN_MARKER, "")
    write(out, "private/panel.csv", "old")  # written before the step: not its output
    cache = StepCache(out)
    state = {"problems": [{"a": 1}], "panel": None}
    before, marks = cache.snapshot(), state_marks(state)
    write(out, "private/tables/x.csv", "1,2\n")
    write(out, "release/fig.png", "png")
    state["problems"].append({"b": 2})
    state["panel"] = pd.DataFrame({"y": [1.5, float("nan")]})
    state["figures"] = [lambda frame, k=3: k]  # a closure, as the release figures are
    assert cache.store("toy", "k1", before, state_delta(marks, state))
    entry = cache.folder / "toy" / "files"
    assert sorted(p.relative_to(entry).as_posix() for p in entry.rglob("*") if p.is_file()) == [
        "private/tables/x.csv", "release/fig.png"]
    assert cache.has("toy", "k1") and not cache.has("toy", "k2") and cache.key("toy") == "k1"
    written = digest(out)
    pipeline._fresh_output_folder(out, keep_cache=True)  # what a new run does first
    assert digest(out) == {pipeline.RUN_MARKER: digest(out)[pipeline.RUN_MARKER]}
    fresh = {"problems": [{"a": 1}], "panel": None}
    apply_delta(fresh, cache.restore("toy"))
    assert fresh["problems"] == [{"a": 1}, {"b": 2}]
    pd.testing.assert_frame_equal(fresh["panel"], state["panel"])
    assert fresh["figures"][0](None) == 3
    restored = digest(out)
    assert {k: v for k, v in written.items() if k != "private/panel.csv" and
            k != pipeline.RUN_MARKER} == {k: v for k, v in restored.items()
                                          if k != pipeline.RUN_MARKER}
    if hasattr(os, "link"):  # a hard link, not a copy, where the file system allows
        assert (out / "release/fig.png").stat().st_nlink >= 2
    pipeline._fresh_output_folder(out)  # --fresh: the cache goes too
    assert not (out / CACHE_DIR).exists()


def test_an_unpicklable_state_is_not_cached(tmp_path: Path) -> None:
    import threading

    cache = StepCache(tmp_path)
    state: dict = {}
    before, marks = cache.snapshot(), state_marks(state)
    state["lock"] = threading.Lock()
    assert not cache.store("toy", "k", before, state_delta(marks, state))
    assert cache.key("toy") is None


def test_keep_only_removes_unknown_entries(tmp_path: Path) -> None:
    cache = StepCache(tmp_path)
    for name in ("panel", "gone", "panel.tmp"):
        (cache.folder / name).mkdir(parents=True)
    cache.keep_only(["panel"])
    assert [p.name for p in cache.folder.iterdir()] == ["panel"]


def test_bad_step_names_exit_2_and_write_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from impact.workflow.cli import app

    cfg = tmp_path / "c.toml"
    cfg.write_text('[run]\nscale = "small"\n[bayes]\nenabled = false\n')
    for step, says in (("dids", "--step dids: no such step; steps: registers, panel"),
                       ("bayes", "switched off ([bayes].enabled = false)")):
        result = CliRunner().invoke(app, ["run", "--config", str(cfg), "--out",
                                          str(tmp_path / "o"), "--step", step])
        assert result.exit_code == 2, result.output
        assert says in result.output and "Traceback" not in result.output
        assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_numbered_scripts_are_impact_run_with_their_steps(script: str) -> None:
    path = ROOT / "analyses" / f"{script}.py"
    assert path.is_file()
    assert f'main("{script}")' in path.read_text()
    spec = importlib.util.spec_from_file_location(f"analyses_{script}", path)
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # imports cleanly
    assert set(SCRIPTS[script]) <= {*pipeline.STEP_NAMES, "tables"}
    assert sorted(SCRIPTS) == [p.stem for p in sorted((ROOT / "analyses").glob("0*.py"))]


@pytest.mark.slow
def test_the_bayes_step_runs_on_what_it_declares(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The one step the fast pipeline tests leave out (``[bayes]`` is off there): it reads only
    its declared keys, and its implied ATT uses the primary specification's onset lag."""
    import functools
    from types import SimpleNamespace

    import impact.bayes
    from tests import _small_world as world

    # one sampling attempt: tiny chains fail the convergence gate, and refits only cost time
    monkeypatch.setattr(impact.bayes, "hierarchical",
                        functools.partial(impact.bayes.hierarchical, max_attempts=1))

    cfg = other(run={"seed": 1}, bayes={"draws": 30, "tune": 30, "chains": 2, "sampler": "pymc"},
                did={"primary": {"onset_lag": 2}})
    step = {s.name: s for s in pipeline._steps(simulated=True, config=cfg)}["bayes"]
    frame = world.panel()
    state: dict = {"panel": SimpleNamespace(frame=frame), "problems": [], "release": [],
                   "figures": []}
    step.run(world.registers(), tmp_path, restricted(cfg, step.config, "bayes"), state)
    folder = tmp_path / "private" / "bayes"
    assert (folder / "posterior.nc").is_file() and (folder / "diagnostics.csv").is_file()
    implied = pd.read_csv(folder / "implied_att_exposure_flexible_letting_share_employed.csv")
    data = frame[frame["n_labour_force_18_64"] > 0]
    cohort = data["cohort_flexible_letting"]
    assert implied["n_department_years"].iloc[0] == int(
        ((cohort > 0) & (data["year"] >= cohort + 2)).sum())
