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

Steps (:data:`STEP_NAMES`; ``impact run --step NAME`` and the numbered scripts of ``analyses/``
run one and what it needs): ``registers`` (simulated registers written out), ``panel``,
``describe``, ``did`` (headline, contrasts, subgroups, channels), ``intensity`` (dose response),
``diagnostics`` (placebo in time), ``bayes``, ``followup``, and ``tables`` (disclosure checks,
``release/``, manifests; every step before it). Replacing a run folder keeps its step cache
(:mod:`impact.workflow.steps`): a step whose key (its inputs, the configuration keys it reads,
the code) is unchanged is not run again but put back from the cache, so re-running with nothing
changed writes the same bytes, and changing one configuration value re-runs exactly the steps
that read it and those downstream of them. ``fresh=True`` (``--fresh``) runs every step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import time
import warnings
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from impact import io, spec
from impact.errors import EstimationError, ImpactError
from impact.registers import TABLES, Registers
from impact.workflow.config import StudyConfig, config_hash, load
from impact.workflow.steps import (
    CACHE_DIR,
    Step,
    StepCache,
    apply_delta,
    code_key,
    restricted,
    state_delta,
    state_marks,
    step_key,
)

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

    def note(self, label: str, what: str) -> None:
        """A step that is not run: reused from the cache, or not part of this run."""
        self.n += 1
        print(f"[{self.n}/{self.total}] {label}: {what}", file=self.stream, flush=True)


def load_inputs(data: Path | None, config: StudyConfig, progress: Progress,
                hashes: dict[str, str] | None = None) -> tuple[Registers, dict[str, str]]:
    """Read and validate register files, or simulate them. Returns registers and input hashes
    (``hashes``: the register files' hashes, when already computed)."""
    if data is not None:
        with progress.step(f"Reading registers from {data}"):
            registers = io.read_registers(data)
            if hashes is None:
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


def _input_key(data: Path | None, config: StudyConfig) -> tuple[str, dict[str, str] | None]:
    """The key of the run's inputs and, for register files, their hashes (as in the manifest).

    Register files: the SHA-256 of every table file (and ``truth.parquet``); a missing file gives
    a key no cache holds, so the inputs are read (and the problem reported) before anything is
    written. Simulated registers: the simulator's settings (``[run]`` seed, scale, effect_scale,
    world) and the code (in every step's key).
    """
    if data is None:
        r = config.run
        payload: dict[str, Any] = {"simulated": [r.seed, r.scale, r.effect_scale, r.world]}
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest(), None
    hashes: dict[str, str] = {}
    for table in TABLES:
        path = io.table_path(Path(data), table)
        if path is None:
            return f"incomplete:{time.time_ns()}", None
        hashes[path.name] = io.file_sha256(path)
    truth = Path(data) / "truth.parquet"
    extra = {"truth.parquet": io.file_sha256(truth)} if truth.is_file() else {}
    payload = {"files": {**hashes, **extra}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest(), hashes


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


def _fresh_output_folder(out: Path, *, keep_cache: bool = False) -> None:
    """Empty (an earlier run's) or create ``out`` and mark it as an impact run folder.

    ``keep_cache``: everything goes but the step cache (:data:`impact.workflow.steps.CACHE_DIR`).
    """
    check_output_folder(out)
    cache = out / CACHE_DIR
    if out.is_dir():
        for path in out.iterdir():
            if keep_cache and path.name == CACHE_DIR.parts[0] and cache.is_dir():
                for inner in path.iterdir():
                    if inner != cache:
                        shutil.rmtree(inner) if inner.is_dir() else inner.unlink()
            else:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if not keep_cache:
        shutil.rmtree(cache, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_MARKER).write_text("written by impact run; the next run into this folder "
                                  "replaces it whole (reusing unchanged steps)\n")


def run_study(*, data: str | Path | None = None, out: str | Path = "results",
              config: StudyConfig | None = None, progress: Progress | None = None,
              steps: Collection[str] | None = None, fresh: bool = False) -> Path:
    """Run the steps of the study and write ``private/``, ``release/`` and the manifests.

    Parameters
    ----------
    data
        Folder of register tables; ``None`` = ``[data].root`` of the config, or the simulator.
    out
        Output folder: new, empty or an earlier impact run's (replaced whole; its unchanged steps
        are reused). Written only after the inputs passed validation.
    config
        The study configuration; default :class:`impact.config.StudyConfig`.
    steps
        Names of :data:`STEP_NAMES` to run (each with the steps it reads); ``None`` or one of
        them ``"tables"``: every step, then the disclosure checks, ``release/`` and its manifest.
        Steps not asked for are still put back from the cache when their key is unchanged, so the
        folder holds every output that is current.
    fresh
        Ignore the cache: run every step asked for.

    Returns
    -------
    Path
        The output folder.

    Raises
    ------
    DataSpecError
        If the registers break the data contract (nothing is written then).
    ImpactError
        If ``out`` holds files that are not an earlier run's, or a step is unknown or switched
        off in the configuration (nothing is written).
    """
    config = config or StudyConfig()
    data_path = Path(data) if data is not None else config.data_root
    out = Path(out)
    check_output_folder(out)
    plan_steps = _steps(simulated=data_path is None, config=config)
    names = [s.name for s in plan_steps]
    release = steps is None or "tables" in steps
    wanted = set(names) if release else _wanted(steps or (), names, data_path, config)
    required = _upstream(wanted, plan_steps)
    cache = StepCache(out)
    reuse = not fresh and (out / RUN_MARKER).is_file()
    code = code_key()
    inputs, file_hashes = _input_key(data_path, config)
    keys: dict[str, str] = {}
    plan: dict[str, str] = {}
    for step in plan_steps:
        keys[step.name] = step_key(step, config, upstream=keys, inputs=inputs, code=code)
        plan[step.name] = ("reuse" if reuse and cache.has(step.name, keys[step.name]) else
                           "run" if step.name in required else "absent")
    hashes = _cached_inputs(cache, inputs) if reuse else None
    load = hashes is None or any(plan[s.name] == "run" and s.registers for s in plan_steps)
    progress = progress or Progress(total=2 + len(plan_steps) + int(release))
    registers: Registers | None = None
    if load:
        registers, hashes = load_inputs(data_path, config, progress, hashes=file_hashes)
    else:
        progress.note("Registers", "unchanged since the run that wrote this folder (not read)")
        progress.note("Validation against data_spec/", "passed on these inputs in that run")
    assert hashes is not None
    _fresh_output_folder(out, keep_cache=reuse)
    (out / "private").mkdir(exist_ok=True)
    state: dict[str, Any] = {"simulated": data_path is None, "release": [], "figures": [],
                             "problems": [], "closing": []}
    for step in plan_steps:
        if plan[step.name] == "reuse":
            progress.note(step.label, "reused (its inputs and configuration are unchanged)")
            apply_delta(state, cache.restore(step.name))
            continue
        if plan[step.name] == "absent":
            progress.note(step.label, "not run (not asked for, and not in the cache)")
            continue
        before, marks = cache.snapshot(), state_marks(state)
        with progress.step(step.label):
            step.run(registers if step.registers else None, out,
                     restricted(config, step.config, step.name), state)
        cache.store(step.name, keys[step.name], before, state_delta(marks, state))
    _store_inputs(cache, inputs, hashes)
    cache.keep_only([*STEP_NAMES, "inputs"])
    _posterior_config(out, config)
    stream = progress.stream
    if not release:
        problems = _problems(out, state)
        from impact.report.release import write_manifest

        write_manifest(out / "private", config=config, inputs=hashes, exclude=(CACHE_DIR.name,))
        _print_problems(problems, stream)
        done = [n for n in names if plan[n] != "absent"]
        print(f"\nSteps in {out}: {', '.join(done)}. No release/ written: run every step "
              "(impact run, or analyses/08_tables.py) for the disclosure checks.", file=stream)
        return out
    with progress.step("Disclosure checks: release/; manifests of release/ and private/"):
        released = _release(out, config, state)
        problems = _problems(out, state)
        from impact.report.release import write_manifest

        for folder in ("private", "release"):
            write_manifest(out / folder, config=config, inputs=hashes, exclude=(CACHE_DIR.name,))
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


def _wanted(steps: Collection[str], names: list[str], data: Path | None,
            config: StudyConfig) -> set[str]:
    """The steps asked for, checked (an unknown or switched-off step is an error)."""
    wanted = set()
    for name in steps:
        if name in names:
            wanted.add(name)
        elif name == "registers" and data is not None:
            continue  # read from --data: nothing to write
        elif name == "bayes" and not config.bayes:
            raise ImpactError("--step bayes: the Bayesian model is switched off "
                              "([bayes].enabled = false)")
        elif name == "followup" and not config.followup.enabled:
            raise ImpactError("--step followup: the follow-up design is switched off "
                              "([followup].enabled = false)")
        else:
            raise ImpactError(f"--step {name}: no such step; steps: {', '.join(STEP_NAMES)}, "
                              "tables")
    return wanted


def _upstream(wanted: set[str], steps: list[Step]) -> set[str]:
    """``wanted`` and every step they read, transitively."""
    by_name = {s.name: s for s in steps}
    todo, seen = list(wanted), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [a for a in by_name[name].after if a in by_name]
    return seen


def _cached_inputs(cache: StepCache, key: str) -> dict[str, str] | None:
    """The input hashes recorded for this input key, or None."""
    try:
        entry = json.loads((cache.folder / "inputs" / "entry.json").read_text())
    except (OSError, ValueError):
        return None
    return entry["hashes"] if entry.get("key") == key else None


def _store_inputs(cache: StepCache, key: str, hashes: dict[str, str]) -> None:
    folder = cache.folder / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "entry.json").write_text(json.dumps({"key": key, "hashes": hashes}, indent=1,
                                                  sort_keys=True))


def _posterior_config(out: Path, config: StudyConfig) -> None:
    """``private/bayes/posterior_config.json``: the posterior with the hash of the run's whole
    configuration (written by every run that holds a posterior, so a reused posterior carries
    the configuration of the run it is part of; its own settings are unchanged by construction)."""
    folder = out / "private" / "bayes"
    if not (folder / "posterior.nc").is_file():
        return
    (folder / "posterior_config.json").write_text(json.dumps(
        {"study_config_sha256": config_hash(config),
         "bayes": dataclasses.asdict(config.bayes_model)}, indent=2, sort_keys=True,
        default=str) + "\n")


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


def _estimates(registers: Registers | None, out: Path, config: StudyConfig,
               state: dict[str, Any], *, parts: tuple[str, ...], step: str) -> Any:
    """:func:`impact.estimates.estimate_all` for ``parts``; its problems (and any warning it did
    not record itself) go to the run's problems under ``step``; its figures to
    ``private/figures/``."""
    from impact.workflow.estimates import estimate_all

    frame = state["panel"].frame
    truth = registers.truth if registers is not None else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = estimate_all(frame, config, truth=truth, parts=parts)
    # warnings estimate_all did not record itself (e.g. from aggregations and plots)
    state["problems"] += [{"step": step, "tool": "", "outcome": "",
                           "estimator": "(not attributed)", "kind": "warning",
                           "message": str(w.message)} for w in caught]
    state["problems"] += [{"step": step, **r} for r in est.problems.to_dict("records")]
    (out / "private" / "tables").mkdir(parents=True, exist_ok=True)
    figures = out / "private" / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for name, fig in est.figures.items():
        fig.savefig(figures / f"{name}.png", dpi=110, metadata={"Software": None})  # type: ignore[attr-defined]
    return est


def _intensity(registers: Registers, out: Path, config: StudyConfig, state: dict[str, Any]
               ) -> None:
    """Dose response of the tools' intensity (``[did.dose_response]``):
    ``private/tables/did_dose_response.csv``."""
    from impact.workflow import outputs

    est = _estimates(registers, out, config, state, parts=("dose_response",), step="intensity")
    est.dose_response.to_csv(out / "private" / "tables" / "did_dose_response.csv", index=False)
    state["release"] += outputs.contrast_tables(est)  # ATT^o, ACR^o and their event studies


def _diagnostics(registers: Registers | None, out: Path, config: StudyConfig,
                 state: dict[str, Any]) -> None:
    """Placebo in time of the primary specification (``[did.primary].placebo_shifts``):
    ``private/tables/did_placebo.csv``."""
    est = _estimates(None, out, config, state, parts=("placebo",), step="diagnostics")
    est.placebo.to_csv(out / "private" / "tables" / "did_placebo.csv", index=False)


def _estimate(registers: Registers, out: Path, config: StudyConfig, state: dict[str, Any]
              ) -> None:
    """The headline (primary specification) and the contrasts att_gt, TWFE and Bacon; effects by
    subgroup; tenants by letting channel."""
    from impact.workflow import outputs

    frame = state["panel"].frame
    est = _estimates(registers, out, config, state, parts=("primary", "att_gt", "twfe", "bacon"),
                     step="estimates")
    tables = out / "private" / "tables"
    est.headline.to_csv(tables / "headline.csv", index=False)
    for name in ("primary", "aggregates", "att_gt", "twfe", "bacon", "problems"):
        getattr(est, name).to_csv(tables / f"did_{name}.csv", index=False)
    _subgroups_and_channels(registers, frame, tables, config, state)
    state["release"].append(outputs.headline_table(est.headline, frame, alpha=config.study.alpha))
    state["release"] += outputs.contrast_tables(est)
    if len(est.primary):
        state["release"].append(outputs.event_study_table(est.primary, frame))
        for outcome in config.study.event_study_figures:
            state["figures"] += outputs.event_study_figures(config.study.tools, outcome)
    if "aggregation" in est.aggregates:
        simple = est.aggregates[est.aggregates["aggregation"] == "simple"]
        cols = [c for c in ("tool", "outcome", "covariates", "estimate", "se", "truth",
                            "pretest_p_value") if c in simple]
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
    ``tenant_channel_contrasts.csv``, ``tenant_linkage.csv``) and offered for release with their
    support (:mod:`impact.workflow.subgroup_outputs`: ``did_subgroups``, the tenant composition cells with
    the totals other tables repeat, protected together, and the contrasts, with figures). The
    subgroup labels and tests are kept for the follow-up design.
    """
    from impact import channels, subgroups
    from impact.workflow import subgroup_outputs
    from impact.workflow.estimates import prepare

    try:
        prepared = prepare(frame, cluster=config.study.cluster,
                           baselines=dict.fromkeys([*config.did.primary.baselines,
                                                    "share_employed"]))  # vulnerability terciles
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            by = subgroups.headline(prepared, n_boot=config.primary_boot, seed=config.seed,
                                    truth=registers.truth, outcomes=tuple(config.study.outcomes),
                                    tools=tuple(config.study.tools), spec=config.did.primary,
                                    alpha=config.study.alpha)
        by.to_csv(tables / "did_subgroups.csv", index=False)
        labels = subgroup_outputs.department_labels(prepared, subgroups.SUBGROUPS)
        state["subgroups"], state["subgroup_labels"] = by, labels
        state["release"].append(subgroup_outputs.subgroup_table(by, frame, labels))
        if "share_employed" in config.study.outcomes:
            state["figures"] += subgroup_outputs.subgroup_figures(subgroups.SUBGROUPS,
                                                                  config.study.tools)
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
        state["release"].append(subgroup_outputs.tenant_tables(comp))
        state["figures"] += subgroup_outputs.tenant_figures()
    except ImpactError as err:
        state["problems"].append({"step": "channels", "tool": "", "outcome": "",
                                  "estimator": "tenant_composition", "kind": "error",
                                  "message": str(err)})


def _bayes(registers: Registers, out: Path, config: StudyConfig, state: dict[str, Any]) -> None:
    """Hierarchical model of the effect of a tool's exposure on an outcome (``[bayes]``).

    The default treatment is ``exposure_flexible_letting``: lettings through flexible letting up
    to t-1 per dwelling (what can have moved the 1-January stock of t), not same-year intensity.
    For an ``exposure_<tool>`` treatment, each ``[bayes].effect_by`` group's effect per unit of
    exposure times its mean exposure over its department-years of the primary estimate gives an
    implied ATT, set beside the tool-specific truth of those department-years; the pooled row is,
    draw by draw, the mean over all of them of their group's effect times their exposure
    (:func:`impact.workflow.subgroup_outputs.implied_effects`; ``implied_att_<stem>.csv``, the
    pooled row first). Everything goes to ``private/bayes/``; the effect table (``tidy()`` with
    its support counts) is offered for release (``release/tables/bayes_effects``, checked like
    every model output), and so are the implied ATTs with their support per group
    (:func:`impact.workflow.subgroup_outputs.bayes_table`).
    """
    from impact import bayes
    from impact.workflow import outputs, subgroup_outputs
    from impact.workflow.estimates import bayes_inputs

    b = config.bayes_model
    data, options, problems = bayes_inputs(state["panel"].frame, config)
    state["problems"] += problems
    treatment = b.treatment
    dropped = len(state["panel"].frame) - len(data)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = bayes.hierarchical(data, b.outcome, treatment, seed=config.seed, **options)
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
    result.save(folder / "posterior.nc")  # posterior_config.json: _posterior_config
    fig = result.plot()
    fig.savefig(folder / f"forest_{stem}.png", dpi=110, metadata={"Software": None})
    state["release"].append(outputs.bayes_effects_table(result.tidy()))
    pooled = result.effects[result.effects["group"] == "pooled"]
    if treatment.startswith("exposure_"):
        # the pooled implied ATT over the department-years, draw by draw (the effects' own
        # scale: not for the binomial, whose table is on the log-odds scale)
        draws = None if b.likelihood == "binomial" else result.idata["posterior"]["effect"]
        implied = subgroup_outputs.implied_effects(
            result.effects, data, treatment, b.effect_by, truth=registers.truth,
            outcome=b.outcome, onset_lag=config.did.primary.onset_lag, effect_draws=draws)
        implied.to_csv(folder / f"implied_att_{stem}.csv", index=False)
        state["release"].append(subgroup_outputs.bayes_table(
            implied, result.effects, data, b.outcome, converged=result.converged,
            onset_lag=config.did.primary.onset_lag))
        state["figures"].append(subgroup_outputs.bayes_figure(b.outcome))
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
    labels = state.get("subgroup_labels", {})
    by = state.get("subgroups")
    strata = {v: labels[v] for v in f.subgroups if v in labels}
    missing = [v for v in f.subgroups if v not in labels]
    if missing:
        state["problems"].append({"step": "followup", "tool": f.tool, "outcome": f.outcome,
                                  "estimator": "design", "kind": "skipped",
                                  "message": "no design by subgroup for "
                                             f"{', '.join(missing)}: the subgroup estimates "
                                             "failed"})
    equal: dict[str, float] = {}
    if by is not None:
        tests = by[(by["tool"] == f.tool) & (by["outcome"] == f.outcome)
                   & (by["subgroup"] == "all")]
        equal = dict(zip(tests["subgroup_variable"], tests["equal_effects_p_value"],
                         strict=True))
    d = followup.design(frame, outcome=f.outcome, tool=f.tool,
                        effect_of_interest=f.effect_of_interest, alpha=config.study.alpha,
                        n_reps=f.n_reps, seed=config.seed, subgroups=strata or None,
                        equal_effects=equal)
    d.write(out / "private" / "followup")
    state["followup"] = d
    differ = d.by_subgroup[d.by_subgroup["effects_differ"].astype(bool)]
    for variable, rows in differ.groupby("subgroup_variable", sort=True):
        state["closing"].append(
            f"Follow-up: the effects of {f.tool} on {f.outcome} differ by {variable} (p = "
            f"{rows['equal_effects_p_value'].iloc[0]:.3g}): each stratum needs its own power, "
            f"{int(rows['n_departments'].sum())} departments over the strata "
            f"(private/followup/by_subgroup.csv).")
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


#: Every step of a run, in data-flow order (``tables`` is the release after them).
STEP_NAMES = ("registers", "panel", "describe", "did", "intensity", "diagnostics", "bayes",
              "followup")


def _steps(*, simulated: bool, config: StudyConfig) -> list[Step]:
    """The steps of this run, in data-flow order, with what each reads (see
    :class:`impact.workflow.steps.Step`)."""
    study = ("study.tools", "study.outcomes", "study.cluster", "study.alpha")
    primary = tuple(f"did.primary.{k}" for k in ("onset_lag", "baselines", "strata", "effect_by",
                                                 "min_treated_clusters", "pretest_alpha"))
    steps: list[Step] = []
    if simulated:
        steps.append(Step("registers", "Writing simulated registers and calibration table",
                          _write_registers, registers=True))
    steps += [
        Step("panel", "Building the department-year panel", _build_panel, registers=True),
        Step("describe", "Report figures 7.1-7.12 (descriptive trends by group)", _describe,
             after=("panel",)),
        Step("did", "Difference-in-differences: imputation (headline), att_gt, TWFE, Bacon; "
             "subgroups; tenants by letting channel", _estimate, after=("panel",),
             registers=True, config=("run.seed", "run.n_boot", "run.primary_boot", "study",
                                     *primary, "did.att_gt", "did.twfe", "did.bacon")),
        Step("intensity", "Intensity of use: dose response ([did.dose_response])", _intensity,
             after=("panel",), registers=True,
             config=("run.seed", *study, "did.dose_response")),
        Step("diagnostics", "Diagnostics: placebo in time of the primary specification",
             _diagnostics, after=("panel",),
             config=("run.seed", "run.primary_boot", *study, "did.primary")),
    ]
    if config.bayes:
        steps.append(Step("bayes", "Bayesian hierarchical model (PyMC): exposure effects by "
                          f"{config.bayes_model.effect_by}", _bayes, after=("panel",),
                          registers=True,
                          config=("run.seed", "bayes", "did.primary", "study.tools")))
    if config.followup.enabled:
        steps.append(Step("followup", "Follow-up study design (power on the panel's design)",
                          _followup, after=("panel", "did"),  # did: the subgroup effects
                          config=("run.seed", "study.alpha", "followup")))
    return steps
