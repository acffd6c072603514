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
#: Quantiles of the tail ESS (Vehtari et al. 2021; Stan, posterior, ArviZ 0.x). ArviZ 1.x would
#: take the 0.11 and 0.89 quantiles from its 89% default interval, so they are passed always.
TAIL_ESS_PROBS = (0.05, 0.95)


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
    """Convergence diagnostics of the gated (and nuisance) parameters.

    Returns
    -------
    worst
        One row: ``r_hat`` (max), ``ess_bulk`` and ``ess_tail`` (min) over the parameters in
        ``var_names``, ``divergences`` (post-warmup total), ``bfmi`` (min over chains),
        ``converged`` (the gate) and, when ``nuisance`` is given, the same three worst values
        over those variables (``r_hat_nuisance``, ...; reported, not gated).
    per_parameter
        One row per scalar of the ``var_names`` and ``nuisance`` variables, as in
        :func:`parameter_diagnostics` (which covers every posterior variable).
    """
    az = _az()
    wanted = set(var_names) | set(nuisance or [])
    post = idata["posterior"].to_dataset()
    table = _table(post, [v for v in post.data_vars if v in wanted], var_names)
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


def parameter_diagnostics(
    idata: xr.DataTree, var_names: list[str], nuisance: list[str] | None = None
) -> pd.DataFrame:
    """R-hat, bulk and tail ESS of every scalar of every posterior variable.

    One row per scalar: ``parameter``, ``variable``, ``r_hat``, ``ess_bulk``, ``ess_tail``,
    ``in_gate`` (whether the variable is in ``var_names``).

    Notes
    -----
    The ``var_names`` and ``nuisance`` variables use ArviZ (``rhat``, ``ess`` bulk and tail).
    The others (department intercepts and the like, ~1,000 scalars at report scale) use
    :func:`_vectorised_diagnostics`, the same algorithms over all scalars at once (ArviZ loops
    over scalars in Python: ~8 s at report scale; vectorised ~3 s). No gate depends on them,
    so :class:`~impact.bayes.results.HierarchicalResult` computes this table only when asked.
    """
    post = idata["posterior"].to_dataset()
    exact = set(var_names) | set(nuisance or [])
    return _table(post, list(post.data_vars), var_names, exact)


def _table(
    post: xr.Dataset,
    variables: list[Any],
    var_names: list[str],
    exact: set[str] | None = None,
) -> pd.DataFrame:
    """Per-scalar diagnostics of ``variables``: ArviZ for those in ``exact`` (default: all)."""
    az = _az()
    exact_vars = [v for v in variables if exact is None or v in exact]
    if exact_vars:
        sub = post[exact_vars]
        rhat, ess_b = az.rhat(sub), az.ess(sub, method="bulk")
        ess_t = az.ess(sub, method="tail", prob=TAIL_ESS_PROBS)
    rows = []
    for var in variables:
        da = post[var]
        if var in exact_vars:
            r, b, t = (rhat[var].to_numpy(), ess_b[var].to_numpy(), ess_t[var].to_numpy())
        else:
            r, b, t = _vectorised_diagnostics(da)
        if da.ndim == 2:
            labels = [str(var)]
        else:
            stacked = da.isel(chain=0, draw=0, drop=True).stack(_i=da.dims[2:])
            labels = [
                f"{var}[{','.join(str(x) for x in (k if isinstance(k, tuple) else (k,)))}]"
                for k in stacked["_i"].to_numpy()
            ]
        rows.append(
            pd.DataFrame(
                {
                    "parameter": labels,
                    "variable": str(var),
                    "r_hat": np.ravel(r),
                    "ess_bulk": np.ravel(b),
                    "ess_tail": np.ravel(t),
                    "in_gate": str(var) in var_names,
                }
            )
        )
    if not rows:
        raise ValueError("impact.bayes: no posterior variable to diagnose")
    return pd.concat(rows, ignore_index=True)


def _rank_normal(x: np.ndarray) -> np.ndarray:
    """Rank-normalise ``(chain, draw, k)`` over chains and draws, per scalar (Blom, c = 3/8)."""
    from scipy.special import ndtri
    from scipy.stats import rankdata

    flat = x.reshape(-1, x.shape[-1])
    rank = rankdata(flat, method="average", axis=0)
    return ndtri((rank - 0.375) / (flat.shape[0] + 0.25)).reshape(x.shape)


def _split(x: np.ndarray) -> np.ndarray:
    """Split chains in halves: ``(chain, draw, k)`` -> ``(2 chain, draw // 2, k)``."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)


def _rhat_of(x: np.ndarray) -> np.ndarray:
    n = x.shape[1]
    between = n * np.var(x.mean(axis=1), axis=0, ddof=1)
    within = np.mean(np.var(x, axis=1, ddof=1), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def _ess_of(x: np.ndarray) -> np.ndarray:
    """ESS of ``(chain, draw, k)`` per scalar: FFT autocovariance, Geyer's initial monotone
    sequence (the algorithm of ``arviz_stats``' ``_ess``, vectorised over scalars)."""
    from scipy.fftpack import next_fast_len

    x = np.asarray(x, dtype=float)
    n_chain, n_draw, k = x.shape
    size = n_chain * n_draw
    m = next_fast_len(2 * n_draw)
    centred = x - x.mean(axis=1, keepdims=True)
    f = np.fft.rfft(centred, n=m, axis=1)
    f *= np.conjugate(f)
    acov = np.fft.irfft(f, n=m, axis=1)[:, :n_draw] / n_draw
    mean_var = acov[:, 0].mean(axis=0) * n_draw / (n_draw - 1.0)
    var_plus = mean_var * (n_draw - 1.0) / n_draw
    if n_chain > 1:
        var_plus = var_plus + np.var(x.mean(axis=1), axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var - acov.mean(axis=0)) / var_plus  # (lag, k)
    rho_hat = np.zeros((n_draw, k))
    rho_hat[0] = 1.0
    rho_hat[1] = rho[1]
    even, odd = np.ones(k), rho[1].copy()
    t_end = np.ones(k, dtype=np.int64)
    active = np.ones(k, dtype=bool)
    t = 1
    while True:  # Geyer's initial positive sequence
        active &= (t < n_draw - 3) & (even + odd > 0.0)
        if not active.any():
            break
        even = np.where(active, rho[t + 1], even)
        odd = np.where(active, rho[t + 2], odd)
        keep = active & (even + odd >= 0)
        rho_hat[t + 1] = np.where(keep, even, rho_hat[t + 1])
        rho_hat[t + 2] = np.where(keep, odd, rho_hat[t + 2])
        t_end = np.where(active, t + 2, t_end)
        t += 2
    max_t = t_end - 2
    cols = np.arange(k)
    improve = even > 0
    rho_hat[max_t[improve] + 1, cols[improve]] = even[improve]
    for t in range(1, int(max_t.max(initial=0)) - 1, 2):  # initial monotone sequence
        pair_prev = rho_hat[t - 1] + rho_hat[t]
        fix = (t <= max_t - 2) & (rho_hat[t + 1] + rho_hat[t + 2] > pair_prev)
        rho_hat[t + 1] = np.where(fix, pair_prev / 2.0, rho_hat[t + 1])
        rho_hat[t + 2] = np.where(fix, pair_prev / 2.0, rho_hat[t + 2])
    csum = np.vstack([np.zeros((1, k)), np.cumsum(rho_hat, axis=0)])
    next_term = np.where(max_t + 1 < n_draw, rho_hat[np.minimum(max_t + 1, n_draw - 1), cols], 0.0)
    tau = -1.0 + 2.0 * csum[max_t + 1, cols] + next_term
    tau = np.maximum(tau, 1.0 / np.log10(size))
    ess = size / tau
    ess[np.isnan(rho_hat).any(axis=0)] = np.nan
    constant = (x.max(axis=(0, 1)) - x.min(axis=(0, 1))) < np.finfo(float).resolution
    ess[constant] = size
    return ess


def _vectorised_diagnostics(da: xr.DataArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank-normalised split R-hat, bulk and tail ESS of every scalar of a variable at once.

    The algorithms of ArviZ's ``rhat`` (method ``"rank"``) and ``ess`` (``"bulk"``, ``"tail"``
    at ``TAIL_ESS_PROBS``), vectorised over scalars (``tests/test_bayes_speed.py`` checks
    agreement with ArviZ). Returns arrays shaped like one draw of ``da``.
    """
    shape = da.shape[2:]
    x = da.transpose("chain", "draw", ...).to_numpy().reshape(da.shape[0], da.shape[1], -1)
    x = x.astype(float)
    bad = np.isnan(x).any(axis=(0, 1))
    split = _split(x)
    folded = np.abs(split - np.median(split.reshape(-1, split.shape[-1]), axis=0))
    z_split = _rank_normal(split)
    rhat = np.maximum(_rhat_of(z_split), _rhat_of(_rank_normal(folded)))
    if x.shape[0] < 2:
        rhat[:] = np.nan
    ess_bulk = _ess_of(z_split)
    tails = []
    for p in TAIL_ESS_PROBS:
        q = np.quantile(x.reshape(-1, x.shape[-1]), p, axis=0)
        tails.append(_ess_of(_split((x <= q).astype(float))))
    ess_tail = np.minimum(*tails)
    for a in (rhat, ess_bulk, ess_tail):
        a[bad] = np.nan
    return rhat.reshape(shape), ess_bulk.reshape(shape), ess_tail.reshape(shape)


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
