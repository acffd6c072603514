"""The ``impact`` command line: a thin layer over the Python API.

Every data problem ends in a clear message on standard error and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from impact.errors import DataSpecError, ImpactError

app = typer.Typer(
    name="impact",
    help=(
        "Did flexible letting (fleksibel udlejning) and municipal referral (kommunal anvisning) change "
        "who lives in Danish social-housing departments? Validate register data, simulate registers "
        "with known truth, build the department-year panel and run the whole study."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

EXIT_DATA = 2


def _fail(error: Exception) -> None:
    """Print a data problem without a traceback and exit with status 2."""
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(EXIT_DATA)


@app.command()
def validate(
    data: Annotated[Path, typer.Argument(help="Folder with persons, households, departments, "
                                         "lettings and tool_adoption as .parquet or .csv.")],
) -> None:
    """Check a register folder against the data contract in data_spec/.

    Prints every violated rule (table, column, rule, rows, example keys) and exits 2 on bad input.
    """
    from impact import io, spec

    try:
        registers = io.read_registers(data)
        spec.validate(registers)
    except DataSpecError as err:
        _fail(err)
    n = {name: len(frame) for name, frame in registers.tables().items()}
    typer.echo("valid: " + ", ".join(f"{k} {v:,} rows" for k, v in n.items()))


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Folder to write <table>.parquet into.")],
    seed: Annotated[int, typer.Option(help="Random seed (same seed = byte-identical tables).")] = 0,
    scale: Annotated[str, typer.Option(help="small (about 130 supported departments, for "
                                       "checks), report (about 500 supported departments) or "
                                       "national (about 7,000 departments).")] = "report",
    placebo: Annotated[bool, typer.Option("--placebo", help="Write the placebo world: no effect "
                                          "anywhere, the real adoption and lettings.")] = False,
    calibration: Annotated[bool, typer.Option("--calibration", help="Print simulated values "
                                              "next to the 2015 report's figures.")] = False,
) -> None:
    """Write synthetic registers with known true effects (and their truth table)."""
    from impact import io
    from impact import simulate as sim
    from impact.workflow.config import SCALES

    if scale not in SCALES:
        _fail(ImpactError(f"--scale must be {', '.join(SCALES[:-1])} or {SCALES[-1]}, "
                          f"not {scale!r}"))
    typer.echo(f"simulating registers (seed {seed}, scale {scale}) ...", err=True)
    registers = sim.registers(seed=seed, scale=scale)
    if placebo:
        registers = sim.placebo(registers)
    written = io.write_registers(registers, out)
    for path in written.values():
        typer.echo(f"wrote {path}", err=True)
    if calibration:
        typer.echo(sim.format_calibration(sim.calibration(registers)))


@app.command()
def derive(
    extracts: Annotated[Path, typer.Option("--extracts", help="Folder of register extracts "
                                           "(BEF, UDDA, AKM, FAIK/IND, LBF files, survey) as "
                                           ".sas7bdat, .xpt, .parquet or .csv; see "
                                           "data_spec/registers/.")],
    out: Annotated[Path, typer.Option("--out", help="Register folder to write the five "
                                      "tables (<table>.parquet) and derive_attrition.csv into.")],
    memory_limit: Annotated[str | None, typer.Option(help="DuckDB memory limit, e.g. 12GB "
                                                     "(it spills to disk beyond).")] = None,
) -> None:
    """Derive the five contract tables from Statistics Denmark's register extracts, validated.

    Bad extracts (a missing register, year or column, unknown codes, a duplicate PNR-year, an
    unreadable file) are listed and exit 2; nothing is written.
    """
    from impact import derive as derive_mod

    try:
        result = derive_mod.derive(extracts, out, memory_limit=memory_limit)
    except DataSpecError as err:
        _fail(err)
    typer.echo(result.attrition.to_string(index=False), err=True)
    typer.echo("wrote " + ", ".join(f"{k} {v:,} rows" for k, v in result.rows.items())
               + f" to {result.folder}", err=True)


@app.command()
def panel(
    data: Annotated[Path, typer.Option("--data", help="Register folder (parquet or CSV).")],
    out: Annotated[Path, typer.Option("--out", help="Parquet file for the department-year panel.")],
) -> None:
    """Build the department-year panel (stock and mover composition, intensity, adoption)."""
    from impact import io, spec
    from impact import panel as panel_mod

    try:
        registers = io.read_registers(data)
        spec.validate(registers)
        result = panel_mod.build(registers, validate=False)  # validated just above
    except DataSpecError as err:
        _fail(err)
    out.parent.mkdir(parents=True, exist_ok=True)
    result.frame.to_parquet(out, index=False)
    typer.echo(result.attrition.to_string(index=False), err=True)
    typer.echo(f"wrote {out}: {len(result.frame):,} department-years", err=True)


@app.command()
def run(
    data: Annotated[Path | None, typer.Option("--data", help="Register folder; without it the "
                                              "embedded simulator provides the data.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Study configuration (TOML, "
                                                "see analyses/config/default.toml; without it "
                                                "the defaults written there).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder: new, empty or an earlier "
                                      "impact run's (replaced whole; its steps whose inputs and "
                                      "configuration are unchanged are reused).")
                   ] = Path("results"),
    step: Annotated[list[str] | None, typer.Option(
        "--step", help="Run only this step and the steps it reads (repeatable): registers, "
                       "panel, describe, did, intensity, diagnostics, bayes, followup, or tables "
                       "(every step, then the disclosure checks and release/; the default).")
                    ] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Run every step again, ignoring the "
                                        "run folder's step cache.")] = False,
) -> None:
    """Run the study: private/ (stays on the server) and release/ (checked) under --out.

    Re-running into the same folder reuses every step whose inputs, configuration keys and code
    are unchanged (private/.steps/), so only the steps a change reaches run again.
    """
    from impact.workflow import config as study_config
    from impact.workflow import pipeline

    try:
        cfg = study_config.load(config)
        where = pipeline.run_study(data=data, out=out, config=cfg, steps=step, fresh=fresh)
    except ImpactError as err:
        _fail(err)
    typer.echo(f"results in {where} (release/ may leave the server; private/ may not)", err=True)


@app.command()
def paper(
    results: Annotated[Path, typer.Option("--results", help="Folder of an `impact run` (its "
                                          "release/ is what the paper inputs).")],
) -> None:
    """Build paper/main.tex against a run's release/ with latexmk (into RESULTS/paper/)."""
    from impact.report import paper as paper_mod

    try:
        pdf = paper_mod.build(results)
    except ImpactError as err:
        _fail(err)
    typer.echo(f"wrote {pdf}", err=True)


def main() -> None:  # pragma: no cover - console entry
    """Console entry point."""
    sys.exit(app())
