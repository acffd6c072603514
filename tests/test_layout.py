"""The package layout of issue #13 (item 7): old import paths are the moved modules themselves,
the estimators of ``impact.did`` stand one per module, and test fixtures live outside the package."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import impact

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("old", sorted(impact.MOVED))
def test_old_import_path_is_the_moved_module(old: str) -> None:
    new = importlib.import_module(impact.MOVED[old])
    assert importlib.import_module(old) is new
    assert new.__spec__.name == impact.MOVED[old]  # the alias does not rename the module
    assert not (ROOT / (old.replace(".", "/") + ".py")).exists()  # no file left at the old path
    parent, _, leaf = old.rpartition(".")
    if leaf not in ("intensity", "bacon_decomposition"):  # impact.did.<x> may be a function
        assert getattr(importlib.import_module(parent), leaf) is new


def test_old_paths_in_a_fresh_interpreter() -> None:
    """An old path imported before the new one (a light module, to keep the test quick)."""
    code = ("import sys; from impact.provenance import package_versions; "
            "import impact.workflow.provenance as w; "
            "assert package_versions is w.package_versions; "
            "assert sys.modules['impact.provenance'] is w and w.__name__ == w.__spec__.name")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_console_script_points_at_the_workflow_cli() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    module, _, attr = project["scripts"]["impact"].partition(":")
    assert module == "impact.workflow.cli"
    assert getattr(importlib.import_module(module), attr) is impact.workflow.cli.app


def test_one_module_per_estimator_and_the_functions_stay_in_impact_did() -> None:
    from impact import did

    for name in ("att_gt", "bacon", "dose_response", "event_study", "imputation", "switchers",
                 "twfe"):
        assert callable(getattr(did, name)), name
    assert sys.modules["impact.did.dose_response"].dose_response is did.dose_response
    assert sys.modules["impact.did.switchers"].switchers is did.switchers
    assert sys.modules["impact.did.bacon"].bacon is did.bacon
    assert did.att_gt.__module__ == "impact.did.callaway_santanna"


def test_fixtures_are_not_in_the_package() -> None:
    import impact.bayes
    import impact.bayes.model

    assert not (ROOT / "impact" / "bayes" / "synthetic.py").exists()
    assert not hasattr(impact.bayes.model, "eight_schools_model")
    with pytest.raises(AttributeError):
        impact.bayes.synthetic_panel  # noqa: B018


def test_deprecated_switchers_design_gives_the_switchers_result() -> None:
    """``dose_response(design="switchers")`` warns and returns exactly :func:`switchers`'s result."""
    from impact.did import dose_response, switchers

    rng = np.random.default_rng(4)
    n, years = 200, np.arange(2010, 2016)
    first = rng.choice([2012, 2014, 9999], n)
    dose = np.where(years[None, :] >= first[:, None], rng.uniform(0.2, 1, (n, 1)), 0.0)
    y = rng.normal(size=(n, 1)) + 0.5 * dose + rng.normal(scale=0.2, size=dose.shape)
    df = pd.DataFrame({"department_id": np.repeat(np.arange(n), years.size),
                       "year": np.tile(years, n), "y": y.ravel(), "d": dose.ravel()})
    new = switchers(df, "y", dose="d", effects=2, placebo=1, n_boot=9, seed=1)
    with pytest.warns(DeprecationWarning, match=r"impact\.did\.switchers"):
        old = dose_response(df, "y", dose="d", design="switchers", effects=2, placebo=1,
                            n_boot=9, seed=1)
    assert type(old) is type(new)
    pd.testing.assert_frame_equal(old.tidy(), new.tidy())
    pd.testing.assert_frame_equal(old.did_m, new.did_m)
    # the true effect per unit of intensity is 0.5: the estimate is near it, the placebo near 0
    e = new.effects.set_index("horizon")
    assert abs(e.loc[1, "estimate"] - 0.5) < 4 * e.loc[1, "se"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        switchers(df, "y", dose="d", effects=1, n_boot=0)  # the new path does not warn
