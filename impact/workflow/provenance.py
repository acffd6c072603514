"""Provenance: the package versions that shape the results.

The record of a run (file and input hashes, configuration, seed, versions, git commit, data_spec
hash) is the ``manifest.json`` of ``release/`` and ``private/``
(:func:`impact.report.release.write_manifest`), which replaced ``provenance.json``.
"""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = (
    "impact", "numpy", "pandas", "pyarrow", "duckdb", "scipy", "scikit-learn", "linearmodels",
    "pymc", "pytensor", "arviz", "nutpie", "matplotlib", "typer", "great-tables", "joblib",
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
