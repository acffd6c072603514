"""The only module of :mod:`impact.bayes` that calls ArviZ (1.x: results are ``xarray.DataTree``).

Diagnostics, equal-tailed intervals (levels always passed explicitly: ArviZ 1.x defaults to 89%),
LOO and model comparison, predictive-check plots and netCDF save/load.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

#: Convergence gate applied to the parameters of interest.
GATE = {"r_hat_max": 1.01, "ess_min": 400.0, "divergences_max": 0, "bfmi_min": 0.3}


def _az() -> Any:
    import arviz

    return arviz


def draws(idata: xr.DataTree, var: str, group: str = "posterior") -> xr.DataArray:
    """One variable of a group, with dims (chain, draw, ...)."""
    return idata[group][var]


def has_group(idata: xr.DataTree, group: str) -> bool:
    """Whether ``idata`` has the group."""
    return group in idata.children


def eti(da: xr.DataArray, prob: float) -> xr.DataArray:
    """Equal-tailed interval of ``da`` over (chain, draw) at an explicit probability."""
    return _az().eti(da, prob=prob, dim=["chain", "draw"])


def diagnostics(
    idata: xr.DataTree, var_names: list[str], nuisance: list[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Convergence diagnostics.

    Returns
    -------
    worst
        One row: ``r_hat`` (max), ``ess_bulk`` and ``ess_tail`` (min) over the parameters in
        ``var_names``, ``divergences`` (post-warmup total), ``bfmi`` (min over chains),
        ``converged`` (the gate) and, when ``nuisance`` is given, the same three worst values
        over those variables (``r_hat_nuisance``, ...; reported, not gated).
    per_parameter
        One row per scalar parameter (all posterior variables): ``parameter``, ``variable``,
        ``r_hat``, ``ess_bulk``, ``ess_tail``, ``in_gate``.
    """
    az = _az()
    post = idata["posterior"].to_dataset()
    rhat = az.rhat(post)
    ess_b = az.ess(post, method="bulk")
    ess_t = az.ess(post, method="tail")
    rows = []
    for var in post.data_vars:
        r, b, t = rhat[var], ess_b[var], ess_t[var]
        if r.ndim == 0:
            labels = [str(var)]
        else:
            stacked = r.stack(_i=r.dims)
            labels = [
                f"{var}[{','.join(str(x) for x in (k if isinstance(k, tuple) else (k,)))}]"
                for k in stacked["_i"].to_numpy()
            ]
        rows.append(
            pd.DataFrame(
                {
                    "parameter": labels,
                    "variable": str(var),
                    "r_hat": np.ravel(r.to_numpy()),
                    "ess_bulk": np.ravel(b.to_numpy()),
                    "ess_tail": np.ravel(t.to_numpy()),
                    "in_gate": str(var) in var_names,
                }
            )
        )
    table = pd.concat(rows, ignore_index=True)
    gate = table[table["in_gate"]]
    stats = idata["sample_stats"]
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    bfmi = float(np.min(az.bfmi(stats["energy"]).to_numpy())) if "energy" in stats else float("nan")
    worst = pd.DataFrame(
        {
            "r_hat": [float(np.nanmax(gate["r_hat"]))],
            "ess_bulk": [float(np.nanmin(gate["ess_bulk"]))],
            "ess_tail": [float(np.nanmin(gate["ess_tail"]))],
            "divergences": [divergences],
            "bfmi": [bfmi],
        }
    )
    ok = (
        worst["r_hat"].iloc[0] <= GATE["r_hat_max"]
        and worst["ess_bulk"].iloc[0] >= GATE["ess_min"]
        and worst["ess_tail"].iloc[0] >= GATE["ess_min"]
        and divergences <= GATE["divergences_max"]
        and (np.isnan(bfmi) or bfmi > GATE["bfmi_min"])
    )
    worst["converged"] = bool(ok)
    nuis = table[table["variable"].isin(nuisance or [])]
    if len(nuis):
        worst["r_hat_nuisance"] = float(np.nanmax(nuis["r_hat"]))
        worst["ess_bulk_nuisance"] = float(np.nanmin(nuis["ess_bulk"]))
        worst["ess_tail_nuisance"] = float(np.nanmin(nuis["ess_tail"]))
    return worst, table


def mcse_mean(idata: xr.DataTree, var: str) -> float:
    """Monte Carlo standard error of the posterior mean of a scalar variable."""
    return float(_az().mcse(draws(idata, var), method="mean"))


def loo(idata: xr.DataTree) -> Any:
    """PSIS-LOO of a fit that has a ``log_likelihood`` group."""
    return _az().loo(idata)


def compare(fits: dict[str, xr.DataTree]) -> pd.DataFrame:
    """LOO comparison (``arviz.compare``, stacking weights), raw numbers (no rounding)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Pareto.*")
        return _az().compare(fits, round_to="none")


def plot_predictive(idata: xr.DataTree, group: str, num_samples: int = 50) -> Any:
    """Overlay predictive draws on the observed distribution (``arviz.plot_ppc_dist``).

    ``group`` is ``"posterior_predictive"`` or ``"prior_predictive"``. Returns the ArviZ
    ``PlotCollection`` (``.savefig(path)``, ``.show()``).
    """
    return _az().plot_ppc_dist(idata, group=group, num_samples=num_samples, backend="matplotlib")


def netcdf_engine() -> str | None:
    """An installed engine that writes netCDF4 groups (``h5netcdf`` or ``netCDF4``), if any."""
    for module, engine in (("h5netcdf", "h5netcdf"), ("netCDF4", "netcdf4")):
        if importlib.util.find_spec(module) is not None:
            return engine
    return None


def save(idata: xr.DataTree, path: str | Path, attrs: dict[str, Any]) -> Path:
    """Write the fit to netCDF (zarr when the path ends in ``.zarr``).

    ``attrs`` (configuration, its hash, tables) are stored JSON-encoded in the root attributes.
    netCDF needs ``h5netcdf`` or ``netCDF4``; without them an error explains the choice.
    """
    path = Path(path)
    tree = idata.copy()
    tree.attrs = {**tree.attrs, "impact_bayes": json.dumps(attrs, default=str)}
    if path.suffix == ".zarr":
        tree.to_zarr(path, mode="w")
        return path
    engine = netcdf_engine()
    if engine is None:
        from impact.errors import EstimationError

        raise EstimationError(
            "impact.bayes: saving to netCDF needs the 'h5netcdf' (or 'netCDF4') package, which "
            "is not installed; install it, or save to a path ending in '.zarr'"
        )
    tree.to_netcdf(path, engine=engine)
    return path


def load(path: str | Path) -> tuple[xr.DataTree, dict[str, Any]]:
    """Read a fit written by :func:`save`; returns the data tree and the stored attributes."""
    path = Path(path)
    if path.suffix == ".zarr":
        tree = xr.open_datatree(path, engine="zarr").load()
    else:
        tree = xr.open_datatree(path, engine=netcdf_engine()).load()
    meta = json.loads(tree.attrs.get("impact_bayes", "{}"))
    return tree, meta
