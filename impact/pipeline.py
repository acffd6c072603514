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
    """

    seed: int = 0
    scale: str = "report"
    effect_scale: float = 1.0
    n_boot: int = 999
    bayes: bool = True
    bayes_draws: int = 1000
    bayes_tune: int = 1000
    bayes_chains: int = 4
    extra: dict[str, Any] = field(default_factory=dict)


def load_config(path: str | Path | None) -> RunConfig:
    """Read a run configuration from TOML (``[run]`` table); defaults when ``path`` is None."""
    if path is None:
        return RunConfig()
    with open(path, "rb") as fh:
        raw = tomllib.load(fh).get("run", {})
    known = {f for f in RunConfig.__dataclass_fields__ if f != "extra"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ImpactError(f"{path}: unknown [run] setting(s): {', '.join(unknown)}; known: "
                          f"{', '.join(sorted(known))}")
    return replace(RunConfig(), **raw)


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

        with progress.step(f"Simulating registers (seed {config.seed}, scale {config.scale})"):
            registers = simulate.registers(seed=config.seed, scale=config.scale,
                                           effect_scale=config.effect_scale)
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
                       seed=config.seed)
    tables = out / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    for name in ("aggregates", "att_gt", "twfe", "dose_response", "bacon", "problems"):
        getattr(est, name).to_csv(tables / f"did_{name}.csv", index=False)
    figures = out / "figures"
    for name, fig in est.figures.items():
        fig.savefig(figures / f"{name}.png", dpi=110, metadata={"Software": None})  # type: ignore[attr-defined]
    simple = est.aggregates[est.aggregates["aggregation"] == "simple"]
    cols = [c for c in ("tool", "outcome", "covariates", "att", "se", "lower", "upper", "truth",
                        "pretest_p_value") if c in simple]
    print(simple[cols].to_string(index=False), file=sys.stderr)


def _bayes(registers: Registers, out: Path, config: RunConfig, state: dict[str, Any]) -> None:
    """Hierarchical model of the flexible-letting intensity effect on the employment share."""
    from impact import bayes

    frame = state["panel"].frame
    data = frame[frame["n_labour_force_18_64"] > 0].copy()
    dropped = len(frame) - len(data)
    print(f"      bayes: {dropped} department-years without residents 18-64 in the labour force "
          "left out (no employment share)", file=sys.stderr)
    data["intensity_flexible_letting"] = data["intensity_flexible_letting"].fillna(0.0)
    result = bayes.hierarchical(
        data, "share_employed", "intensity_flexible_letting", likelihood="normal",
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
