"""Provenance: what produced an output (configuration, seed, package versions, input hashes)."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "impact", "numpy", "pandas", "pyarrow", "duckdb", "scipy", "scikit-learn", "linearmodels",
    "pymc", "pytensor", "arviz", "nutpie", "matplotlib", "typer",
)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape the results (``None`` = not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def write_provenance(folder: Path, *, config: dict[str, Any], inputs: dict[str, str],
                     outputs: dict[str, str] | None = None) -> Path:
    """Write ``provenance.json`` beside the outputs.

    Parameters
    ----------
    folder
        Output folder.
    config
        The run configuration (seed included).
    inputs
        Input name to SHA-256 (files read, or the content hash of simulated tables).
    outputs
        Output file (relative path) to SHA-256.

    Notes
    -----
    The file holds no timestamp, so the same seed and inputs give a byte-identical file.
    """
    record = {
        "config": config,
        "inputs_sha256": dict(sorted(inputs.items())),
        "outputs_sha256": dict(sorted((outputs or {}).items())),
        "versions": package_versions(),
    }
    path = folder / "provenance.json"
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return path
