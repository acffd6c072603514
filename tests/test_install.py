"""The package as installed: every subpackage and the data contract's files are in the wheel's
file list (``pyproject.toml``); ``scripts/check_wheel.sh`` (``make test``) installs the wheel for
real."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

from impact import spec

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_and_contract_file_is_packaged() -> None:
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = set(setup["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "impact").rglob(
        "__init__.py")}
    assert found <= packages, f"not in pyproject's packages: {sorted(found - packages)}"
    assert setup["package-dir"]["impact.data_spec"] == "data_spec"
    folder = ROOT / "data_spec"
    assert spec.spec_dir().resolve() == folder.resolve()  # the source checkout's own folder
    for path in folder.rglob("*"):
        if path.is_file():
            package = ".".join(("impact", "data_spec", *path.parent.relative_to(folder).parts))
            assert package in packages, f"{path} is in no package"
            patterns = setup["package-data"][package]
            assert any(fnmatch.fnmatch(path.name, pat) for pat in patterns), f"{path} not shipped"
