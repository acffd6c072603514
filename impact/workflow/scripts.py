"""The numbered scripts of ``analyses/`` (``01_panel.py`` ... ``08_tables.py``): each is
``impact run --step <its steps>`` with the same options (``--config``, ``--data``, ``--out``,
``--fresh``), so a script and ``impact run`` run the same step functions on the same
configuration and share the run folder's step cache."""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: Script -> the steps it runs (each with the steps it reads; ``tables`` = everything + release).
SCRIPTS: dict[str, tuple[str, ...]] = {
    "01_panel": ("registers", "panel"),
    "02_describe": ("describe",),
    "03_did": ("did",),
    "04_intensity": ("intensity",),
    "05_bayes": ("bayes",),
    "06_diagnostics": ("diagnostics",),
    "07_followup": ("followup",),
    "08_tables": ("tables",),
}


def main(script: str, argv: Sequence[str] | None = None) -> None:
    """Run ``script``'s steps with the command-line options ``argv`` (default ``sys.argv[1:]``);
    exits with the status of ``impact run`` (2 for bad input or configuration)."""
    from impact.workflow.cli import app

    args = list(sys.argv[1:] if argv is None else argv)
    steps = [f"--step={s}" for s in SCRIPTS[script]]
    app(["run", *steps, *args], prog_name=f"{script}.py")
