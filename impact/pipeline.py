"""The whole study as one function: registers -> validation -> panel -> descriptions -> estimates.

`impact run` is a thin wrapper around :func:`run_study`. Every step writes under the output folder
and the run ends with ``provenance.json`` (configuration, seed, package versions, input and output
hashes). Nothing is written when the input data fail validation.
"""

from __future__ import annotations

import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from impact import io, spec
from impact.errors import ImpactError
from impact.registers import Registers


@dataclass(frozen=True)
class RunConfig:
    """Settings of a study run (the ``[run]`` table of a ``--config`` TOML file).

    Attributes
    ----------
    seed
        Seed of the simulator and of every random step (bootstrap, MCMC).
    scale
        Simulator scale when no data are given: ``"report"`` or ``"national"``.
    effect_scale
        Simulator effect multiplier (0 = the tools do nothing).
    n_boot
        Multiplier-bootstrap draws for group-time ATTs (0 = analytic SEs).
    bayes
        Whether to fit the Bayesian hierarchical model.
    bayes_draws, bayes_tune, bayes_chains
        MCMC settings of that model.
    world
        Simulator only: ``"factual"`` (default) or ``"placebo"`` (no effect anywhere, the real
        adoption and lettings: :func:`impact.simulate.placebo`).
    primary_boot
        Cluster-bootstrap replications of the primary specification.
    """

    seed: int = 0
    scale: str = "report"
    effect_scale: float = 1.0
    n_boot: int = 999
    bayes: bool = True
    bayes_draws: int = 1000
    bayes_tune: int = 1000
    bayes_chains: int = 4
    world: str = "factual"
    primary_boot: int = 199
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self, source: str = "config") -> None:
        """Raise :class:`ImpactError` naming the first setting with a bad type or value."""
        ints = ("seed", "n_boot", "bayes_draws", "bayes_tune", "bayes_chains", "primary_boot")
        for name in ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ImpactError(f"{source}: [run] {name} must be a non-negative integer, "
                                  f"got {value!r}")
        if self.scale not in ("small", "report", "national"):
            raise ImpactError(f"{source}: [run] scale must be small, report or national, "
                              f"got {self.scale!r}")
        if self.world not in ("factual", "placebo"):
            raise ImpactError(f"{source}: [run] world must be factual or placebo, "
                              f"got {self.world!r}")
        if not isinstance(self.bayes, bool):
            raise ImpactError(f"{source}: [run] bayes must be true or false, got {self.bayes!r}")
        if isinstance(self.effect_scale, bool) or not isinstance(self.effect_scale, int | float):
            raise ImpactError(f"{source}: [run] effect_scale must be a number, "
                              f"got {self.effect_scale!r}")


def load_config(path: str | Path | None) -> RunConfig:
    """Read a run configuration from TOML (``[run]`` table); defaults when ``path`` is None."""
    if path is None:
        return RunConfig()
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ImpactError(f"{path}: cannot read the configuration: {err}") from err
    other = sorted(set(doc) - {"run"})
    if other:
        raise ImpactError(f"{path}: unknown table(s) {', '.join(other)}; known: run")
    raw = doc.get("run", {})
    known = {f for f in RunConfig.__dataclass_fields__ if f != "extra"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ImpactError(f"{path}: unknown [run] setting(s): {', '.join(unknown)}; known: "
                          f"{', '.join(sorted(known))}")
    config = replace(RunConfig(), **raw)
    config.check(str(path))
    return config


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


def load_inputs(data: Path | None, config: RunConfig, progress: Progress
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


Step = Callable[[Registers, Path, RunConfig, dict[str, Any]], None]


def run_study(*, data: str | Path | None = None, out: str | Path = "results",
              config: RunConfig | None = None, progress: Progress | None = None) -> Path:
    """Run every step of the study that exists and write its outputs under ``out``.

    Parameters
    ----------
    data
        Folder of register tables; ``None`` = simulate them (the embedded default).
    out
        Output folder (created only after the inputs passed validation).
    config
        Run settings; default :class:`RunConfig`.

    Returns
    -------
    Path
        The output folder.

    Raises
    ------
    DataSpecError
        If the registers break the data contract (nothing is written then).
    """
    config = config or RunConfig()
    data_path = Path(data) if data is not None else None
    steps = _steps(simulated=data_path is None, config=config)
    progress = progress or Progress(total=2 + len(steps) + 1)
    registers, hashes = load_inputs(data_path, config, progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {"simulated": data_path is None}
    for label, fn in steps:
        with progress.step(label):
            fn(registers, out, config, state)
    with progress.step("Writing provenance.json"):
        outputs = {str(p.relative_to(out)): io.file_sha256(p) for p in sorted(out.rglob("*"))
                   if p.is_file() and p.name != "provenance.json"}
        cfg = asdict(config) | {"data": str(data_path) if data_path else None}
        from impact.provenance import write_provenance

        write_provenance(out, config=cfg, inputs=hashes, outputs=outputs)
    for line in state.get("closing", []):
        print(line, file=progress.stream)
    return out


def _write_registers(registers: Registers, out: Path, config: RunConfig, state: dict[str, Any]
                     ) -> None:
    io.write_registers(registers, out / "registers")
    from impact import simulate

    table = simulate.calibration(registers)
    table.to_csv(out / "calibration.csv", index=False)
    print(simulate.format_calibration(table), file=sys.stderr)


def _build_panel(registers: Registers, out: Path, config: RunConfig, state: dict[str, Any]) -> None:
    from impact import panel

    result = panel.build(registers, validate=False)
    state["panel"] = result
    result.frame.to_parquet(out / "panel.parquet", index=False)
    result.attrition.to_csv(out / "attrition.csv", index=False)
    print(result.attrition.to_string(index=False), file=sys.stderr)


def _describe(registers: Registers, out: Path, config: RunConfig, state: dict[str, Any]) -> None:
    from impact import describe

    frame = state["panel"].frame
    tidy = describe.trends(frame)
    describe.write_figures(tidy, out / "figures" / "report")
    describe.group_sizes(frame).to_csv(out / "figures" / "report" / "group_sizes.csv", index=False)


def _estimate(registers: Registers, out: Path, config: RunConfig, state: dict[str, Any]) -> None:
    from impact.estimates import estimate_all

    est = estimate_all(state["panel"].frame, truth=registers.truth, n_boot=config.n_boot,
                       seed=config.seed, primary_boot=config.primary_boot)
    tables = out / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    est.headline.to_csv(tables / "headline.csv", index=False)
    for name in ("primary", "aggregates", "att_gt", "twfe", "dose_response", "bacon", "problems"):
        getattr(est, name).to_csv(tables / f"did_{name}.csv", index=False)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for name, fig in est.figures.items():
        fig.savefig(figures / f"{name}.png", dpi=110, metadata={"Software": None})  # type: ignore[attr-defined]
    state["headline"] = est.headline
    simple = est.aggregates[est.aggregates["aggregation"] == "simple"]
    cols = [c for c in ("tool", "outcome", "covariates", "att", "se", "truth", "pretest_p_value")
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
    state["closing"] = closing


def _bayes(registers: Registers, out: Path, config: RunConfig, state: dict[str, Any]) -> None:
    """Hierarchical model of the effect of flexible-letting exposure on the employment share.

    The treatment is ``exposure_flexible_letting``: lettings through flexible letting up to t-1 per
    dwelling (what can have moved the 1-January stock of t), not same-year intensity. The pooled
    effect per unit of exposure times the mean exposure over the department-years of the primary
    estimate gives an implied ATT, set beside the tool-specific truth of those department-years.
    """
    from impact import bayes
    from impact.simulate.truth import effect_column

    frame = state["panel"].frame
    data = frame[frame["n_labour_force_18_64"] > 0].copy()
    dropped = len(frame) - len(data)
    print(f"      bayes: {dropped} department-years without residents 18-64 in the labour force "
          "left out (no employment share)", file=sys.stderr)
    treatment = "exposure_flexible_letting"
    over = int((data[treatment] > 1).sum())
    # The model takes a treatment in [0, 1]: a department that let more than all its dwellings
    # through flexible letting (a dwelling let twice) counts as fully exposed.
    data[treatment] = data[treatment].fillna(0.0).clip(upper=1.0)
    print(f"      bayes: treatment {treatment}; {over} department-years above 1 capped at 1",
          file=sys.stderr)
    result = bayes.hierarchical(
        data, "share_employed", treatment, likelihood="normal",
        draws=config.bayes_draws, tune=config.bayes_tune, chains=config.bayes_chains,
        seed=config.seed, threshold=0.01)
    tables = out / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    result.effects.assign(left_out_department_years=dropped).to_csv(
        tables / "bayes_effects_flexible_letting_share_employed.csv", index=False)
    result.diagnostics.to_csv(tables / "bayes_diagnostics.csv", index=False)
    result.plot().savefig(out / "figures" / "bayes_forest_flexible_letting.png", dpi=110,
                          metadata={"Software": None})
    pooled = result.effects[result.effects["group"] == "pooled"]
    cohort = data["cohort_flexible_letting"]
    rows = data[(cohort > 0) & (data["year"] >= cohort + 1)]
    mean_exposure = float(rows[treatment].mean())
    implied = {"treatment": treatment, "n_department_years": len(rows),
               "mean_exposure": mean_exposure}
    for col in ("mean", "lower_90", "upper_90", "lower_95", "upper_95"):
        implied[f"implied_att_{col}"] = float(pooled[col].iloc[0]) * mean_exposure
    if registers.truth is not None:
        col = effect_column("share_employed", "flexible_letting")
        m = rows[["department_id", "year"]].merge(registers.truth[["department_id", "year", col]],
                                                  on=["department_id", "year"], how="left")
        implied["truth"] = float(m[col].mean())
    pd.DataFrame([implied]).to_csv(tables / "bayes_implied_att_flexible_letting.csv", index=False)
    print(pooled.to_string(index=False), file=sys.stderr)
    print(result.diagnostics.to_string(index=False), file=sys.stderr)


def _steps(*, simulated: bool, config: RunConfig) -> list[tuple[str, Step]]:
    """The steps after validation, in data-flow order."""
    steps: list[tuple[str, Step]] = []
    if simulated:
        steps.append(("Writing simulated registers and calibration table", _write_registers))
    steps.append(("Building the department-year panel", _build_panel))
    steps.append(("Report figures 7.1-7.12 (descriptive trends by group)", _describe))
    steps.append(("Difference-in-differences: att_gt, TWFE, dose response, Bacon", _estimate))
    if config.bayes:
        steps.append(("Bayesian hierarchical model (PyMC): intensity effects by municipality",
                      _bayes))
    return steps
