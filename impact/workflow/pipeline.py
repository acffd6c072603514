"""The whole study as one function: registers -> validation -> panel -> descriptions -> estimates.

`impact run` is a thin wrapper around :func:`run_study`. The study's choices come from a
:class:`impact.config.StudyConfig` (``analyses/config/*.toml``). A run folder holds

``private/``
    what must stay on the research server: registers, truth, calibration, the panel, attrition,
    every unchecked table and figure of the estimators, the Bayesian posterior, the problems table;
``release/``
    only outputs that passed disclosure control (:mod:`impact.report.release`): tables, figures
    drawn from checked tables, the follow-up design, ``disclosure_log.csv`` and
    ``disclosure_report.json``;
``tables/headline.csv``
    a plain-CSV copy of the checked ``release/tables/headline.csv`` (a path users rely on);

and ``private/`` and ``release/`` each carry a ``manifest.json`` (file and input hashes, config,
seed, versions, git commit and dirty flag, data_spec hash). Nothing is written when the
configuration or the input data fail validation. A folder holding other files is refused; the
folder of an earlier ``impact run`` (marked by :data:`RUN_MARKER`) is replaced whole.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from impact import io, spec
from impact.errors import EstimationError, ImpactError
from impact.registers import Registers
from impact.workflow.config import StudyConfig, config_hash, load

#: File that marks a folder written by ``impact run`` (so a later run may replace it).
RUN_MARKER = ".impact-run"
#: Attrition filters that drop rows because of a data problem (the others define the measures).
DATA_PROBLEM_FILTERS = ("unknown department", "missing household income", "outside panel years")
PROBLEM_COLUMNS = ["step", "tool", "outcome", "estimator", "kind", "message"]


def load_config(path: str | Path | None) -> StudyConfig:
    """The study configuration of a run: :func:`impact.config.load` (defaults when None)."""
    return load(path)


class Progress:
    """Numbered, timed progress lines on standard error."""

    def __init__(self, total: int, *, stream: Any = None) -> None:
        self.total, self.n = total, 0
        self.stream = stream or sys.stderr

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        """Announce a step, then report its duration."""
        self.n += 1
        print(f"[{self.n}/{self.total}] {label} ...", file=self.stream, flush=True)
        start = time.perf_counter()
        yield
        print(f"      done in {time.perf_counter() - start:.1f} s", file=self.stream, flush=True)


def load_inputs(data: Path | None, config: StudyConfig, progress: Progress
                ) -> tuple[Registers, dict[str, str]]:
    """Read and validate register files, or simulate them. Returns registers and input hashes."""
    if data is not None:
        with progress.step(f"Reading registers from {data}"):
            registers = io.read_registers(data)
            hashes = {}
            for table in registers.tables():
                path = io.table_path(Path(data), table)
                hashes[str(path.name)] = io.file_sha256(path)  # type: ignore[union-attr]
    else:
        from impact import simulate

        with progress.step(f"Simulating registers (seed {config.seed}, scale {config.scale}, "
                           f"world {config.world})"):
            registers = simulate.registers(seed=config.seed, scale=config.scale,
                                           effect_scale=config.effect_scale)
            if config.world == "placebo":
                registers = simulate.placebo(registers)
            hashes = {f"simulated:{t}": io.frame_sha256(f) for t, f in registers.tables().items()}
    with progress.step("Validating registers against data_spec/"):
        spec.validate(registers)
    return registers, hashes


Step = Callable[[Registers, Path, StudyConfig, dict[str, Any]], None]


def check_output_folder(out: Path) -> None:
    """Refuse a folder that holds files other than an earlier ``impact run``'s (nothing written).

    Raises
    ------
    ImpactError
        ``out`` exists, is not empty and holds no :data:`RUN_MARKER`.
    """
    if out.exists() and not out.is_dir():
        raise ImpactError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / RUN_MARKER).is_file():
        raise ImpactError(f"--out {out} holds files that are not an earlier impact run's; choose "
                          "an empty or new folder (an earlier impact run folder is replaced whole)")


def _fresh_output_folder(out: Path) -> None:
    """Empty (an earlier run's) or create ``out`` and mark it as an impact run folder."""
    check_output_folder(out)
    if out.is_dir():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / RUN_MARKER).write_text("written by impact run; the next run into this folder "
                                  "replaces it whole\n")


def run_study(*, data: str | Path | None = None, out: str | Path = "results",
              config: StudyConfig | None = None, progress: Progress | None = None) -> Path:
    """Run every step of the study and write ``private/``, ``release/`` and the manifests.

    Parameters
    ----------
    data
        Folder of register tables; ``None`` = ``[data].root`` of the config, or the simulator.
    out
        Output folder: new, empty or an earlier impact run's (replaced whole). Written only after
        the inputs passed validation.
    config
        The study configuration; default :class:`impact.config.StudyConfig`.

    Returns
    -------
    Path
        The output folder.

    Raises
    ------
    DataSpecError
        If the registers break the data contract (nothing is written then).
    ImpactError
        If ``out`` holds files that are not an earlier run's (nothing is written).
    """
    config = config or StudyConfig()
    data_path = Path(data) if data is not None else config.data_root
    out = Path(out)
    check_output_folder(out)
    steps = _steps(simulated=data_path is None, config=config)
    progress = progress or Progress(total=2 + len(steps) + 1)
    registers, hashes = load_inputs(data_path, config, progress)
    _fresh_output_folder(out)
    (out / "private").mkdir()
    state: dict[str, Any] = {"simulated": data_path is None, "release": [], "figures": [],
                             "problems": [], "closing": []}
    for label, fn in steps:
        with progress.step(label):
            fn(registers, out, config, state)
    with progress.step("Disclosure checks: release/; manifests of release/ and private/"):
        released = _release(out, config, state)
        problems = _problems(out, state)
        from impact.report.release import write_manifest

        for folder in ("private", "release"):
            write_manifest(out / folder, config=config, inputs=hashes)
    stream = progress.stream
    for line in state["closing"]:
        print(line, file=stream)
    _print_problems(problems, stream)
    withheld = released.withheld
    reviewed = sorted(k for k, v in released.status.items() if v == "review")
    print("", file=stream)
    print(f"Disclosure control: {len(released.status) - len(withheld)} outputs released "
          f"({len(reviewed)} with suppressed cells), {len(withheld)} withheld"
          + (f": {', '.join(withheld)}" if withheld else "") + f" (see {out / 'release'}/"
          "disclosure_log.csv).", file=stream)
    print(f"Only {out / 'release'}/ may leave the research server (after the output checker's "
          f"review); {out / 'private'}/ holds microdata and unchecked outputs and stays on it.",
          file=stream)
    return out


def _write_registers(registers: Registers, out: Path, config: StudyConfig, state: dict[str, Any]
                     ) -> None:
    io.write_registers(registers, out / "private" / "registers")
    from impact import simulate

    table = simulate.calibration(registers)
    table.to_csv(out / "private" / "calibration.csv", index=False)
    print(simulate.format_calibration(table), file=sys.stderr)


def _build_panel(registers: Registers, out: Path, config: StudyConfig, state: dict[str, Any]
                 ) -> None:
    from impact import panel

    result = panel.build(registers, validate=False)
    state["panel"] = result
    result.frame.to_parquet(out / "private" / "panel.parquet", index=False)
    result.attrition.to_csv(out / "private" / "attrition.csv", index=False)
    print(result.attrition.to_string(index=False), file=sys.stderr)
    att = result.attrition
    lost = att[att["filter"].isin(DATA_PROBLEM_FILTERS) & (att["rows_removed"] > 0)]
    for row in lost.itertuples(index=False):
        state["problems"].append({"step": "panel", "tool": "", "outcome": "", "estimator": "",
                                  "kind": "dropped rows",
                                  "message": f"{row.step}: {row.rows_removed} rows dropped "
                                             f"({row.filter}: {row.note})"})
    from impact.workflow import appendix

    state["release"].append(appendix.attrition_table(att, n_years=int(result.frame["year"]
                                                                     .nunique())))


def _describe(registers: Registers, out: Path, config: StudyConfig, state: dict[str, Any]
              ) -> None:
    from impact import describe
    from impact.workflow import outputs

    frame = state["panel"].frame
    folder = out / "private" / "figures" / "report"
    describe.write_figures(describe.trends(frame), folder)
    describe.group_sizes(frame).to_csv(folder / "group_sizes.csv", index=False)
    tables, figures = outputs.report_trend_tables(frame)
    state["release"] += [*tables, outputs.group_sizes_table(frame)]
    from impact.workflow import appendix

    state["release"] += [appendix.group_descriptives_table(frame),
                         appendix.mover_composition_table(frame)]
    state["figures"] += figures


def _estimate(registers: Registers, out: Path, config: StudyConfig, state: dict[str, Any]
              ) -> None:
    from impact.workflow import outputs
    from impact.workflow.estimates import estimate_all

    frame = state["panel"].frame
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = estimate_all(frame, truth=registers.truth, n_boot=config.n_boot, seed=config.seed,
                           tools=config.study.tools, outcomes=config.study.outcomes,
                           primary_boot=config.primary_boot)
    # warnings estimate_all did not record itself (e.g. from aggregations and plots)
    state["problems"] += [{"step": "estimates", "tool": "", "outcome": "",
                           "estimator": "(not attributed)", "kind": "warning",
                           "message": str(w.message)} for w in caught]
    tables = out / "private" / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    est.headline.to_csv(tables / "headline.csv", index=False)
    for name in ("primary", "placebo", "aggregates", "att_gt", "twfe", "dose_response", "bacon",
                 "problems"):
        getattr(est, name).to_csv(tables / f"did_{name}.csv", index=False)
    figures = out / "private" / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for name, fig in est.figures.items():
        fig.savefig(figures / f"{name}.png", dpi=110, metadata={"Software": None})  # type: ignore[attr-defined]
    state["problems"] += [{"step": "estimates", **r} for r in est.problems.to_dict("records")]
    _subgroups_and_channels(registers, frame, tables, config, state)
    state["release"].append(outputs.headline_table(est.headline, frame, alpha=config.study.alpha))
    state["release"] += outputs.contrast_tables(est)
    if len(est.primary):
        state["release"].append(outputs.event_study_table(est.primary, frame))
        if "share_employed" in config.study.outcomes:
            state["figures"] += outputs.event_study_figures(config.study.tools)
    simple = est.aggregates[est.aggregates["aggregation"] == "simple"]
    cols = [c for c in ("tool", "outcome", "covariates", "estimate", "se", "truth",
                        "pretest_p_value")
            if c in simple]
    print("contrast (att_gt, ignores the other tool):", file=sys.stderr)
    print(simple[cols].to_string(index=False), file=sys.stderr)
    head_cols = [c for c in ("tool", "outcome", "estimate", "se", "lower", "upper", "truth",
                             "pretest_p_value", "verdict") if c in est.headline]
    closing = ["", "Headline (primary specification: imputation DiD, both tools, plan clusters; "
               "tables/headline.csv):", est.headline[head_cols].to_string(index=False)]
    for row in est.headline.itertuples(index=False):
        if row.verdict != "credible":
            closing.append(f"WARNING: {row.tool} x {row.outcome}: {row.verdict} "
                           f"(pre-test p = {row.pretest_p_value:.3g})")
    state["closing"] += closing


def _subgroups_and_channels(registers: Registers, frame: Any, tables: Path, config: StudyConfig,
                            state: dict[str, Any]) -> None:
    """Effects by housing market and vulnerability (the primary specification within each
    subgroup, a Wald test of equal effects) and who is housed through each letting channel.

    Written to ``private/tables/`` (``did_subgroups.csv``, ``tenant_composition.csv``,
    ``tenant_channel_contrasts.csv``, ``tenant_linkage.csv``); not yet released.
    """
    from impact import channels, subgroups
    from impact.workflow.estimates import prepare

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            by = subgroups.headline(prepare(frame), n_boot=config.primary_boot, seed=config.seed,
                                    truth=registers.truth, outcomes=tuple(config.study.outcomes),
                                    tools=tuple(config.study.tools))
        by.to_csv(tables / "did_subgroups.csv", index=False)
        state["problems"] += [{"step": "subgroups", "tool": "", "outcome": "",
                               "estimator": "imputation", "kind": "warning",
                               "message": str(w.message)} for w in caught]
    except ImpactError as err:
        state["problems"].append({"step": "subgroups", "tool": "", "outcome": "",
                                  "estimator": "imputation", "kind": "error",
                                  "message": str(err)})
    try:
        comp = channels.tenant_composition(registers)
        comp.composition.to_csv(tables / "tenant_composition.csv", index=False)
        comp.contrasts.to_csv(tables / "tenant_channel_contrasts.csv", index=False)
        comp.linkage.to_csv(tables / "tenant_linkage.csv", index=False)
    except ImpactError as err:
        state["problems"].append({"step": "channels", "tool": "", "outcome": "",
                                  "estimator": "tenant_composition", "kind": "error",
                                  "message": str(err)})


def _bayes(registers: Registers, out: Path, config: StudyConfig, state: dict[str, Any]) -> None:
    """Hierarchical model of the effect of a tool's exposure on an outcome (``[bayes]``).

    The default treatment is ``exposure_flexible_letting``: lettings through flexible letting up
    to t-1 per dwelling (what can have moved the 1-January stock of t), not same-year intensity.
    For an ``exposure_<tool>`` treatment, the pooled effect per unit of exposure times the mean
    exposure over the department-years of the primary estimate gives an implied ATT, set beside
    the tool-specific truth of those department-years. Everything goes to ``private/bayes/``;
    the effect table (``tidy()`` with its support counts) is also offered for release
    (``release/tables/bayes_effects``, checked like every model output).
    """
    import json

    from impact import bayes
    from impact.simulate.truth import effect_column
    from impact.workflow import outputs
    from impact.workflow.estimates import persons_of

    b = config.bayes_model
    frame = state["panel"].frame
    base = "n_labour_force_18_64" if b.outcome in ("share_employed", "share_qualifying_edu") \
        else None
    data = frame[frame[base] > 0].copy() if base else frame[frame[b.outcome].notna()].copy()
    dropped = len(frame) - len(data)
    if dropped:
        state["problems"].append({"step": "bayes", "tool": "", "outcome": b.outcome,
                                  "estimator": "hierarchical", "kind": "dropped rows",
                                  "message": f"{dropped} department-years without {b.outcome} "
                                             "left out"})
    treatment = b.treatment
    if treatment.startswith("exposure_"):
        # The model takes a treatment in [0, 1]: a department that let more than all its
        # dwellings through the tool (a dwelling let twice) counts as fully exposed.
        over = int((data[treatment] > 1).sum())
        if over:
            state["problems"].append({"step": "bayes", "tool": "", "outcome": b.outcome,
                                      "estimator": "hierarchical", "kind": "capped",
                                      "message": f"{over} department-years with {treatment} "
                                                 "above 1 capped at 1"})
        data[treatment] = data[treatment].clip(upper=1.0)
    data[treatment] = data[treatment].fillna(0.0)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = bayes.hierarchical(
                data, b.outcome, treatment, likelihood=b.likelihood, trials=b.trials or None,
                draws=b.draws, tune=b.tune, chains=b.chains, seed=config.seed,
                threshold=b.threshold, target_accept=b.target_accept, sampler=b.sampler,
                persons=persons_of(data, b.outcome))
    except EstimationError as err:  # listed with the run's problems, never silently skipped
        state["problems"].append({"step": "bayes", "tool": "", "outcome": b.outcome,
                                  "estimator": "hierarchical", "kind": "error",
                                  "message": str(err)})
        print(f"      bayes: not fitted: {err}", file=sys.stderr)
        return
    state["problems"] += [{"step": "bayes", "tool": "", "outcome": b.outcome,
                           "estimator": "hierarchical", "kind": "warning",
                           "message": str(w.message)} for w in caught]
    if not result.converged:
        state["problems"].append({"step": "bayes", "tool": "", "outcome": b.outcome,
                                  "estimator": "hierarchical", "kind": "non-convergence",
                                  "message": "; ".join(
                                      f"{k} {v:.3g}" for k, v in result.diagnostics[
                                          ["r_hat", "ess_bulk", "ess_tail", "divergences"]
                                      ].iloc[0].items())})
    folder = out / "private" / "bayes"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{treatment}_{b.outcome}"
    result.effects.assign(left_out_department_years=dropped).to_csv(
        folder / f"effects_{stem}.csv", index=False)
    result.diagnostics.to_csv(folder / "diagnostics.csv", index=False)
    result.save(folder / "posterior.nc")
    (folder / "posterior_config.json").write_text(json.dumps(
        {"study_config_sha256": config_hash(config), "bayes": dataclasses.asdict(b)}, indent=2,
        sort_keys=True, default=str) + "\n")
    fig = result.plot()
    fig.savefig(folder / f"forest_{stem}.png", dpi=110, metadata={"Software": None})
    state["release"].append(outputs.bayes_effects_table(result.tidy()))
    pooled = result.effects[result.effects["group"] == "pooled"]
    if treatment.startswith("exposure_"):
        tool = treatment.removeprefix("exposure_")
        cohort = data[f"cohort_{tool}"]
        rows = data[(cohort > 0) & (data["year"] >= cohort + 1)]
        mean_exposure = float(rows[treatment].mean())
        implied = {"treatment": treatment, "n_department_years": len(rows),
                   "mean_exposure": mean_exposure}
        for col in ("mean", "lower_90", "upper_90", "lower_95", "upper_95"):
            implied[f"implied_att_{col}"] = float(pooled[col].iloc[0]) * mean_exposure
        if registers.truth is not None:
            col = effect_column(b.outcome, tool)
            m = rows[["department_id", "year"]].merge(
                registers.truth[["department_id", "year", col]], on=["department_id", "year"],
                how="left")
            implied["truth"] = float(m[col].mean())
        pd.DataFrame([implied]).to_csv(folder / f"implied_att_{stem}.csv", index=False)
    print(pooled.to_string(index=False), file=sys.stderr)
    print(result.diagnostics.to_string(index=False), file=sys.stderr)


def _followup(registers: Registers, out: Path, config: StudyConfig, state: dict[str, Any]
              ) -> None:
    """The follow-up study design (``[followup]``): unchecked in ``private/followup/``; its
    tables and documents go through the checks into ``release/followup/``."""
    from impact import followup
    from impact.workflow import outputs

    f = config.followup
    frame = state["panel"].frame
    d = followup.design(frame, outcome=f.outcome, tool=f.tool,
                        effect_of_interest=f.effect_of_interest, alpha=config.study.alpha,
                        n_reps=f.n_reps, seed=config.seed)
    d.write(out / "private" / "followup")
    state["followup"] = d
    state["release"] += outputs.followup_tables(d, frame)


def _release(out: Path, config: StudyConfig, state: dict[str, Any]) -> Any:
    """Check and write ``release/``; copy the checked headline to ``tables/headline.csv``."""
    from impact.report.release import write_released
    from impact.workflow import appendix

    release = out / "release"
    figures = [*state["figures"], *appendix.effect_figures([t.name for t in state["release"]])]
    result = write_released(state["release"], release, config, figures=figures)
    if "headline" in result.released:
        (out / "tables").mkdir(exist_ok=True)
        result.released["headline"].to_csv(out / "tables" / "headline.csv", index=False,
                                           lineterminator="\n")
    if "followup" in state:
        _release_followup_documents(state["followup"], release, result)
    _release_effect_tables(release, result, config, state)
    _release_paper_inputs(release, result, settings=_paper_settings(config, state, result))
    return result


def _paper_settings(config: StudyConfig, state: dict[str, Any], result: Any) -> dict[str, Any]:
    """The settings the paper quotes (``\\Setting...`` macros): the run's configuration and the
    disclosure log's counts so far."""
    from impact.workflow import appendix

    log = result.log.frame()
    level = 100 * (1 - config.study.alpha)
    return {
        "simulated": state["simulated"], "scale": config.scale, "seed": config.seed,
        "primary_boot": config.primary_boot, "n_boot": config.n_boot,
        "interval_level": f"{level:.0f}%" if level.is_integer() else f"{level:g}%",
        "min_n": config.disclosure.min_n, "min_departments": config.disclosure.min_departments,
        "min_residual_df": config.disclosure.min_residual_df,
        "dominance_n": config.disclosure.dominance_n,
        "dominance_pct": round(100 * config.disclosure.dominance_k),
        "bayes_draws": config.bayes_model.draws, "bayes_chains": config.bayes_model.chains,
        "bayes_treatment": appendix.treatment_words(config.bayes_model.treatment),
        "bayes_outcome": appendix.OUTCOME_WORDS.get(config.bayes_model.outcome,
                                                    config.bayes_model.outcome),
        "followup_effect": config.followup.effect_of_interest,
        "outputs_released": sum(v != "fail" for v in result.status.values()),
        "outputs_withheld": sum(v == "fail" for v in result.status.values()),
        "cells_suppressed": int((log["action"] == "suppressed").sum()),
    }


def _release_effect_tables(release: Path, result: Any, config: StudyConfig,
                           state: dict[str, Any]) -> None:
    """The appendix's effect tables (``release/tables/appendix_*``): views of released tables."""
    from impact.workflow import appendix

    written = appendix.write_effect_tables(
        result.released, release / "tables", alpha=config.study.alpha,
        primary_boot=config.primary_boot, n_boot=config.n_boot, simulated=state["simulated"],
        bayes_outcome=config.bayes_model.outcome, bayes_treatment=config.bayes_model.treatment)
    for name, files in written.items():
        result.files += files
        result.status[name] = result.log.add(
            name, kind="table", status=None, files=[str(f.relative_to(release)) for f in files],
            comments=[f"a view of the released table {appendix.EFFECT_TABLES[name]}"])
    result.log.write(release)


def _release_paper_inputs(release: Path, result: Any, settings: dict[str, Any] | None = None
                          ) -> None:
    """``release/paper/numbers.tex`` and ``headline_table.tex`` from the released frames (and
    the run's settings the text quotes)."""
    from impact.report import paper

    files = paper.write_inputs(release / "paper", result.released, settings=settings)
    if files:
        result.files += files
        used = [n for n in ("headline", "followup_comparison", "appendix_group_descriptives",
                            "appendix_mover_composition", "appendix_attrition",
                            "did_att_gt_aggregates", "did_twfe", "did_dose_response",
                            "bayes_effects") if n in result.released]
        result.status["paper_inputs"] = result.log.add(
            "paper_inputs", kind="table", status=None,
            files=[str(f.relative_to(release)) for f in files],
            comments=[f"generated from the released tables {', '.join(used)}"])
    else:
        result.status["paper_inputs"] = result.log.add(
            "paper_inputs", kind="table", status=None, refused="the headline is not released")
    result.log.write(release)


def _release_followup_documents(design: Any, release: Path, result: Any) -> None:
    """``design.md``, ``design.tex`` and ``power_curve.png`` show the follow-up tables' cells
    unsuppressed: written only when every follow-up table passed with nothing suppressed."""
    from impact.followup import render

    names = [n for n in result.status if n.startswith("followup_")]
    bad = [n for n in names if result.status[n] != "pass"]
    folder = release / "followup"
    docs = {"followup_design_md": "design.md", "followup_design_tex": "design.tex",
            "followup_power_curve": "power_curve.png"}
    for name, file in docs.items():
        kind = "figure" if file.endswith(".png") else "table"
        if bad or not names:
            why = (f"it shows the cells of {', '.join(bad)}, which did not pass unsuppressed"
                   if bad else "no follow-up table was checked")
            result.status[name] = result.log.add(name, kind=kind, status=None, refused=why)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / file
        if file == "design.md":
            path.write_text(render.to_markdown(design), encoding="utf-8")
        elif file == "design.tex":
            path.write_text(render.to_latex(design), encoding="utf-8")
        else:
            fig = render.plot_power_curves(design)
            fig.savefig(path, dpi=150, metadata={"Software": None})
            import matplotlib.pyplot as plt

            plt.close(fig)
        result.files.append(path)
        result.status[name] = result.log.add(
            name, kind=kind, status=None, files=[str(path.relative_to(release))],
            comments=[f"rendered from the released tables {', '.join(names)}"])
    result.log.write(release)


def _problems(out: Path, state: dict[str, Any]) -> pd.DataFrame:
    """Every problem of the run in ``private/problems.csv``; counts in
    ``private/problems_summary.csv`` (returned)."""
    problems = pd.DataFrame(state["problems"], columns=PROBLEM_COLUMNS).fillna("")
    problems.to_csv(out / "private" / "problems.csv", index=False)
    summary = (problems.groupby(["step", "estimator", "kind"], sort=True).size()
               .rename("count").reset_index())
    summary.to_csv(out / "private" / "problems_summary.csv", index=False)
    return summary


def _print_problems(summary: pd.DataFrame, stream: Any) -> None:
    """The problems of the run, counted, on the console."""
    total = int(summary["count"].sum()) if len(summary) else 0
    print("", file=stream)
    if not total:
        print("Problems: none.", file=stream)
        return
    print(f"Problems: {total} (warnings, errors, non-convergence, dropped rows; every message "
          "in private/problems.csv):", file=stream)
    print(summary.to_string(index=False), file=stream)


def _steps(*, simulated: bool, config: StudyConfig) -> list[tuple[str, Step]]:
    """The steps after validation, in data-flow order."""
    steps: list[tuple[str, Step]] = []
    if simulated:
        steps.append(("Writing simulated registers and calibration table", _write_registers))
    steps.append(("Building the department-year panel", _build_panel))
    steps.append(("Report figures 7.1-7.12 (descriptive trends by group)", _describe))
    steps.append(("Difference-in-differences: imputation, att_gt, TWFE, dose response, Bacon",
                  _estimate))
    if config.bayes:
        steps.append(("Bayesian hierarchical model (PyMC): exposure effects by municipality",
                      _bayes))
    if config.followup.enabled:
        steps.append(("Follow-up study design (power on the panel's design)", _followup))
    return steps
