"""Register extracts from contract tables: the inverse of :func:`impact.derive.derive`, for tests
and benchmarks.

:func:`write_extracts` turns the five tables (e.g. from :func:`impact.simulate.registers`) into the
raw extracts ``derive`` reads (BEF, UDDA, AKM, FAIK, the LBF files and the survey), with made-up
classification codes (HFAUDD ``g * 100 + 1`` for education group ``g``; country codes ``9000 + i``
in the country key), so that deriving them gives the tables back. Every code and key is a
deterministic function of the ids: no randomness.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from impact.derive.extracts import codes
from impact.registers import Registers

OUTSIDE_ADDRESS = 10**12
"""Addresses of persons outside social housing: ``OUTSIDE_ADDRESS + household_id`` (no LBF link)."""
NON_WESTERN_ISO = ("TR", "SO", "IQ", "LB", "PK")
WESTERN_ISO = ("SE", "DE", "US")
# SOCIO13 of persons outside the labour force, chosen by person_id
OUTSIDE_SOCIO13 = (220, 310, 321, 322, 323, 330, 410, 420)


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        frame.to_parquet(path.with_suffix(".parquet"), index=False)
    elif fmt == "csv":
        frame.to_csv(path.with_suffix(".csv"), index=False)
    elif fmt == "xpt":
        import pyreadstat

        out = frame.copy()
        for c in out.columns:
            if isinstance(out[c].dtype, pd.BooleanDtype) or out[c].dtype == bool:
                out[c] = out[c].astype("float64")
            elif pd.api.types.is_integer_dtype(out[c]):
                out[c] = out[c].astype("float64")
            elif not pd.api.types.is_float_dtype(out[c]):
                out[c] = out[c].astype(object).where(out[c].notna(), "")
        pyreadstat.write_xport(out, str(path.with_suffix(".xpt")), file_format_version=8,
                               table_name=path.stem[:32])
    else:
        raise ValueError(f"unknown format {fmt!r}: parquet, csv or xpt")


def _by_year(frame: pd.DataFrame, folder: Path, name: str, fmt: str, yearly: bool) -> None:
    if not yearly:
        _write(frame, folder / name, fmt)
        return
    for year, part in frame.groupby("AAR", sort=True):
        _write(part.drop(columns="AAR"), folder / f"{name}{year}", fmt)


def write_extracts(registers: Registers, folder: str | Path, *, fmt: str = "parquet",
                   yearly: bool = True, country_key: bool = True,
                   formats: dict[str, str] | None = None) -> Path:
    """Write the raw extracts that :func:`impact.derive.derive` turns back into ``registers``.

    Parameters
    ----------
    registers
        The five tables (``persons`` without nulls in ``household_id``).
    folder
        Where to write.
    fmt
        ``parquet``, ``csv`` or ``xpt`` (SAS transport, via pyreadstat).
    yearly
        One file per register and year (``bef2005``) or stacked files with ``AAR``.
    country_key
        OPR_LAND as numeric codes with the key ``lande`` (True) or as ISO codes (False).
    formats
        Per register, a format other than ``fmt`` (e.g. ``{"udda": "xpt"}``).

    Returns
    -------
    Path
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fmt_of = {**{}, **(formats or {})}

    def write(frame: pd.DataFrame, name: str, by_year: bool) -> None:
        _by_year(frame, folder, name, fmt_of.get(name, fmt), by_year and yearly)

    p = registers.persons
    pid = p["person_id"].to_numpy(dtype="int64")
    year = p["year"].to_numpy(dtype="int64")
    nw = p["non_western"].to_numpy(dtype=bool)
    dwelling = p["dwelling_id"].astype("Int64")
    address = dwelling.fillna(OUTSIDE_ADDRESS + p["household_id"].astype("int64")).astype("int64")
    western_immigrant = ~nw & (pid % 7 == 0)
    ie_type = np.where(nw, np.where(pid % 2 == 0, 2, 3), np.where(western_immigrant, 2, 1))
    iso = np.where(nw, np.asarray(NON_WESTERN_ISO)[pid % len(NON_WESTERN_ISO)],
                   np.where(western_immigrant, np.asarray(WESTERN_ISO)[pid % len(WESTERN_ISO)],
                            "DK"))
    all_iso = sorted({*NON_WESTERN_ISO, *WESTERN_ISO, "DK"})
    country = {c: 9000 + i for i, c in enumerate(all_iso)}
    opr_land = np.array([country[c] for c in iso]) if country_key else iso
    write(pd.DataFrame({"PNR": pid, "AAR": year, "FAMILIE_ID": p["household_id"].to_numpy(),
                        "ALDER": p["age"].to_numpy(), "ADRESSE_ID": address.to_numpy(),
                        "IE_TYPE": ie_type, "OPR_LAND": opr_land}), "bef", True)
    if country_key:
        write(pd.DataFrame({"OPR_LAND": list(country.values()), "ISO": list(country)}), "lande",
              False)

    lag = 1
    education = p["education"].to_numpy(dtype="int64")
    audd = education * 100 + 1
    audd = np.where((education == 10) & (pid % 2 == 1), 1501, audd)  # preparatory courses: 10
    in_udda = ~((education == 90) & (pid % 2 == 0))  # half the unknowns are missing in UDDA
    write(pd.DataFrame({"PNR": pid[in_udda], "AAR": year[in_udda] - lag,
                        "HFAUDD": audd[in_udda]}), "udda", True)
    groups = [10, 20, 30, 40, 50, 60, 70, 80, 90]
    write(pd.DataFrame({"AUDD": [g * 100 + 1 for g in groups] + [1501, 3501],
                        "H1": [f"H{g}" for g in groups] + ["H15", "H35"]}), "disced15", False)

    employed = p["employed"].to_numpy(dtype=bool)
    lf = p["in_labour_force"].to_numpy(dtype=bool)
    socio = np.where(employed, 131 + pid % 5, np.where(
        lf, codes()["labour_force_extra"][0],
        np.asarray(OUTSIDE_SOCIO13)[pid % len(OUTSIDE_SOCIO13)]))
    in_akm = lf | (pid % 11 != 0)  # some persons outside the labour force are missing in AKM
    write(pd.DataFrame({"PNR": pid[in_akm], "AAR": year[in_akm] - lag,
                        "SOCIO13": socio[in_akm]}), "akm", True)

    h = registers.households
    known = h["disposable_income"].notna().to_numpy()
    write(pd.DataFrame({"FAMILIE_ID": h["household_id"].to_numpy()[known],
                        "AAR": h["year"].to_numpy()[known] - lag,
                        "FAMDISPON_NY": h["disposable_income"].to_numpy()[known]}), "faik", True)

    linked = p[p["department_id"].notna()]
    link = linked[["dwelling_id", "department_id"]].drop_duplicates()
    write(pd.DataFrame({"ADRESSE_ID": link["dwelling_id"].astype("int64").to_numpy(),
                        "AFDELING": link["department_id"].to_numpy()}), "lbf_adresser", False)
    d = registers.departments
    afdelinger = pd.DataFrame({"AFDELING": d["department_id"], "ORGNR": d["organisation_id"],
                               "KOM": d["municipality_id"], "HELHEDSPLAN": d["plan_id"],
                               "LEJEMAAL": d["n_dwellings"]})
    if "market_type" in d:
        afdelinger["MARKED"] = d["market_type"]
    write(afdelinger, "lbf_afdelinger", False)
    danish = {v: k for k, v in codes()["kanal"].items()}
    let = registers.lettings
    write(pd.DataFrame({"UDLEJNING_ID": let["letting_id"], "AFDELING": let["department_id"],
                        "AAR": let["year"], "KANAL": let["channel"].map(danish),
                        "PNR": let["person_id"]}), "lbf_udlejninger", False)
    t = registers.tool_adoption
    write(pd.DataFrame({"AFDELING": t["department_id"], "HELHEDSPLAN": t["plan_id"],
                        "TOOL": t["tool"], "START_YEAR": t["start_year"],
                        "END_YEAR": t["end_year"], "AGREED_SHARE": t["agreed_share"],
                        "SOURCE": t["source"]}), "tool_adoption", False)
    return folder
