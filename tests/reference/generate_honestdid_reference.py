"""Regenerate ``honestdid_ehec_*.csv`` from the HonestDiD repository's own knitr cache.

The README of the R package HonestDiD (github.com/asheshrambachan/HonestDiD, commit 6813f02) is
rendered from ``README.Rmd`` with ``cache = TRUE``; the cache (``README_cache/gfm/*.rdb``) is
committed, so the event-study inputs and the *unrounded* sensitivity results that the README
prints (to 3 significant digits) are public. This script reads them with the ``rdata`` package
(a reader of R's serialisation format; NOT a dependency of ``impact``) and writes CSVs:

- ``honestdid_ehec_inputs.csv``: betahat and sigma of three event studies on the ehec Medicaid
  data: ``twfe`` (README "Estimate the baseline DiD": TWFE, 5 pre and 2 post periods),
  ``twfe_control`` (README "Regressions with controls", chunk 8 of the cache) and ``sunab``
  (README "Sun and Abraham", chunk 10: 10 pre and 6 post periods).
  The ``twfe`` betahat/sigma are not in the cache (that chunk is uncached); they are recomputed
  here from the cached ehec data (chunk 8's ``df_nonstaggered``) as fixest does: OLS with state
  and year effects, CR1 covariance clustered by state with fixest's small-sample factor
  (n-1)/(n-K) * G/(G-1), K = coefficients + year levels (state effects are nested in the
  cluster). The same computation reproduces the cached ``twfe_control`` sigma to 4e-13
  (relative) and its betahat to 2e-16, which this script asserts.
- ``honestdid_ehec_results.csv``: the cached results (lb, ub per M or Mbar) with the chunk and
  the exact R call.

Run in a scratch environment, e.g.::

    pip install --target /tmp/rd rdata
    git clone https://github.com/asheshrambachan/HonestDiD /tmp/HonestDiD
    PYTHONPATH=/tmp/rd python tests/reference/generate_honestdid_reference.py /tmp/HonestDiD
"""

from __future__ import annotations

import glob
import gzip
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def _load(repo: Path, chunk: int, name: str):
    import rdata

    def parse(raw: bytes):
        return rdata.conversion.convert(rdata.parser.parse_data(raw))

    rdx = glob.glob(str(repo / "README_cache" / "gfm" / f"unnamed-chunk-{chunk}_*.rdx"))[0]
    index = parse(gzip.decompress(Path(rdx).read_bytes()))
    data = Path(rdx[:-1] + "b").read_bytes()
    off, length = (int(v) for v in index["variables"][name])
    return parse(zlib.decompress(data[off + 4 : off + length]))


def _original_interval(repo: Path, chunk: int, name: str) -> tuple[float, float]:
    """(lb, ub) of a cached ``constructOriginalCS`` tibble (rdata cannot convert its 1x1 cells)."""
    import rdata

    rdx = glob.glob(str(repo / "README_cache" / "gfm" / f"unnamed-chunk-{chunk}_*.rdx"))[0]
    index = rdata.conversion.convert(
        rdata.parser.parse_data(gzip.decompress(Path(rdx).read_bytes()))
    )
    data = Path(rdx[:-1] + "b").read_bytes()
    off, length = (int(v) for v in index["variables"][name])
    obj = rdata.parser.parse_data(zlib.decompress(data[off + 4 : off + length])).object
    return float(obj.value[0].value[0]), float(obj.value[1].value[0])


def _twfe(d: pd.DataFrame, control: bool) -> tuple[np.ndarray, np.ndarray]:
    years = [2008, 2009, 2010, 2011, 2012, 2014, 2015]
    cols = [((d["year"] == y) * d["D"]).to_numpy(float) for y in years]
    if control:
        cols.append(d["control"].to_numpy(float))
    x = np.column_stack(cols)

    def within(v: np.ndarray) -> np.ndarray:
        s = pd.Series(v, index=d.index)
        g_unit = s.groupby(d["stfips"]).transform("mean")
        g_year = s.groupby(d["year"]).transform("mean")
        return (s - g_unit - g_year + s.mean()).to_numpy()

    xd = np.column_stack([within(c) for c in x.T])
    yd = within(d["dins"].to_numpy(float))
    b = np.linalg.solve(xd.T @ xd, xd.T @ yd)
    e = yd - xd @ b
    bread = np.linalg.inv(xd.T @ xd)
    meat = np.zeros((x.shape[1], x.shape[1]))
    for g in d["stfips"].unique():
        m = (d["stfips"] == g).to_numpy()
        sg = xd[m].T @ e[m]
        meat += np.outer(sg, sg)
    n, n_clusters = len(d), d["stfips"].nunique()
    k = x.shape[1] + d["year"].nunique()
    v = bread @ meat @ bread * (n - 1) / (n - k) * n_clusters / (n_clusters - 1)
    return b[:7], v[:7, :7]


def _rows(example: str, event_time, beta, sigma) -> list[dict]:
    beta = np.asarray(beta, float).ravel()
    sigma = np.asarray(sigma, float)
    return [
        {"example": example, "event_time": int(t), "beta": beta[i]}
        | {f"sigma_{j}": sigma[i, j] for j in range(len(beta))}
        for i, t in enumerate(event_time)
    ]


def main(repo: Path) -> None:
    warnings.simplefilter("ignore")
    d = _load(repo, 8, "df_nonstaggered")
    d = pd.DataFrame({c: np.asarray(d[c], dtype=float) for c in d.columns})
    b_c, v_c = _twfe(d, control=True)
    b_cached = np.asarray(_load(repo, 8, "betahat"), float).ravel()
    v_cached = np.asarray(_load(repo, 8, "sigma"), float)
    assert np.max(np.abs(b_c - b_cached)) < 1e-14
    assert np.max(np.abs(v_c / v_cached - 1)) < 1e-10
    b, v = _twfe(d, control=False)
    sunab = _load(repo, 10, "beta_vcv")
    twfe_times = [-6, -5, -4, -3, -2, 0, 1]  # years 2008-2012, 2014, 2015 minus 2014; 2013: -1
    rows = _rows("twfe", twfe_times, b, v)
    rows += _rows("twfe_control", twfe_times, b_cached, v_cached)
    # sunab cohorts -11..-2, 0..5 (reference -1); HonestDiD only uses their order
    rows += _rows("sunab", np.asarray(sunab["cohorts"]), sunab["beta"], sunab["sigma"])
    inputs = pd.DataFrame(rows)
    inputs.to_csv(HERE / "honestdid_ehec_inputs.csv", index=False, float_format="%.17g")

    calls = [
        (
            4,
            "delta_rm_results",
            "twfe",
            "relative_magnitudes",
            "1 0",
            "createSensitivityResults_relativeMagnitudes(betahat, sigma, numPrePeriods = 5, "
            "numPostPeriods = 2, Mbarvec = seq(0.5, 2, by = 0.5))",
        ),
        (
            6,
            "delta_sd_results",
            "twfe",
            "smoothness",
            "1 0",
            "createSensitivityResults(betahat, sigma, numPrePeriods = 5, numPostPeriods = 2, "
            "Mvec = seq(from = 0, to = 0.05, by = 0.01))",
        ),
        (
            7,
            "delta_rm_results_avg",
            "twfe",
            "relative_magnitudes",
            "0.5 0.5",
            "createSensitivityResults_relativeMagnitudes(betahat, sigma, numPrePeriods = 5, "
            "numPostPeriods = 2, Mbarvec = seq(0, 2, by = 0.5), l_vec = c(0.5, 0.5))",
        ),
        (
            10,
            "sensitivity_results",
            "sunab",
            "relative_magnitudes",
            "1 0 0 0 0 0",
            "createSensitivityResults_relativeMagnitudes(betahat, sigma, numPrePeriods = 10, "
            "numPostPeriods = 6, Mbarvec = seq(from = 0.5, to = 2, by = 0.5), gridPoints = 100)",
        ),
    ]
    out = []
    for chunk, name, example, restriction, l_vec, call in calls:
        res = _load(repo, chunk, name)
        m = res["Mbar"] if "Mbar" in res else res["M"]
        for lb, ub, mm in zip(res["lb"], res["ub"], m, strict=True):
            out.append(
                {
                    "example": example,
                    "restriction": restriction,
                    "l_vec": l_vec,
                    "m": float(mm),
                    "lower": float(lb),
                    "upper": float(ub),
                    "source": f"README_cache/gfm/unnamed-chunk-{chunk} ({name}): {call}",
                }
            )
    for chunk, name, example, l_vec, call in [
        (
            7,
            "originalResults_avg",
            "twfe",
            "0.5 0.5",
            "constructOriginalCS(betahat, sigma, numPrePeriods = 5, numPostPeriods = 2, "
            "l_vec = c(0.5, 0.5))",
        ),
        (
            10,
            "original_results",
            "sunab",
            "1 0 0 0 0 0",
            "constructOriginalCS(betahat, sigma, numPrePeriods = 10, numPostPeriods = 6)",
        ),
    ]:
        lb, ub = _original_interval(repo, chunk, name)
        out.append(
            {
                "example": example,
                "restriction": "original",
                "l_vec": l_vec,
                "m": np.nan,
                "lower": lb,
                "upper": ub,
                "source": f"README_cache/gfm/unnamed-chunk-{chunk} ({name}): {call}",
            }
        )
    pd.DataFrame(out).to_csv(HERE / "honestdid_ehec_results.csv", index=False, float_format="%.17g")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
