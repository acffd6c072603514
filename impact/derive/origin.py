"""IE_TYPE / OPR_LAND (BEF or IEPE): non-Western origin.

Non-Western = immigrant or descendant (IE_TYPE 2 or 3) whose country of origin is not one of
Statistics Denmark's Western countries (``data_spec/registers/western_countries.csv``, ISO alpha-2).
OPR_LAND codes map to ISO codes through the country key ``lande`` (Statistics Denmark's country
format); without it, OPR_LAND must hold the ISO codes themselves.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from impact import spec as spec_mod
from impact.derive.extracts import Extracts, codes
from impact.errors import Violation


def source(ex: Extracts) -> str:
    """``bef`` when BEF carries IE_TYPE and OPR_LAND, else ``iepe``."""
    return "bef" if {"IE_TYPE", "OPR_LAND"} <= set(ex.columns["bef"]) else "iepe"


def western() -> pd.DataFrame:
    """The Western countries (``iso``, ``name_en``, ``group``)."""
    return pd.read_csv(spec_mod.spec_dir() / "registers" / "western_countries.csv", comment="#",
                       keep_default_na=False)


def checks(ex: Extracts) -> Iterator[Violation]:
    """IE_TYPE codes, and a known country of origin for every immigrant and descendant."""
    src = source(ex)
    if src == "iepe":
        ex.require("iepe")
        yield from ex.check_basic("iepe")
    ie = ", ".join(str(c) for c in codes()["ie_type"])
    foreign = ", ".join(str(c) for c in codes()["ie_type_foreign"])
    yield from ex.check_codes(src, "IE_TYPE", ie, "1 Danish origin, 2 immigrant, 3 descendant")
    n, examples = ex.examples(f"SELECT 'row' FROM r_{src} WHERE IE_TYPE IS NULL")
    if n:
        yield Violation(src, "IE_TYPE", "not null", n, examples)
    where = f"IE_TYPE IN ({foreign})"
    if ex.has("lande"):
        yield from ex.check_basic("lande")
        yield from ex.check_codes(src, "OPR_LAND", "SELECT OPR_LAND FROM r_lande",
                                  "immigrants' and descendants' OPR_LAND must be in the country "
                                  "key (lande)", where=where)
    else:
        n, examples = ex.examples(
            f"SELECT DISTINCT coalesce(OPR_LAND, 'null') FROM r_{src} WHERE {where} AND "
            f"(OPR_LAND IS NULL OR NOT regexp_full_match(OPR_LAND, '[A-Z]{{2}}'))")
        if n:
            yield Violation(src, "OPR_LAND", "allowed codes", n, examples,
                            "ISO 3166-1 alpha-2 codes, or give the country key lande")


def view(ex: Extracts) -> str:
    """The view ``origin`` (PNR, [AAR,] non_western) and its join condition with BEF ``b``."""
    src = source(ex)
    ex.con.register("western_countries", western()[["iso"]])
    foreign = ", ".join(str(c) for c in codes()["ie_type_foreign"])
    iso = "k.ISO" if ex.has("lande") else "o.OPR_LAND"
    join = "LEFT JOIN r_lande k ON k.OPR_LAND = o.OPR_LAND" if ex.has("lande") else ""
    year = ", o.AAR" if src == "bef" else ""
    ex.con.execute(f"""CREATE OR REPLACE VIEW origin AS
        SELECT o.PNR{year}, (o.IE_TYPE IN ({foreign})
               AND {iso} NOT IN (SELECT iso FROM western_countries)) AS non_western
        FROM r_{src} o {join}""")
    return "o.PNR = b.PNR" + (" AND o.AAR = b.AAR" if src == "bef" else "")
