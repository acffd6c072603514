"""AKM / RAS: socio-economic status SOCIO13 -> ``employed``, ``in_labour_force``, ``socio13``.

Employed = SOCIO13 110-139 (``data_spec/socio13.csv``, ``employed_flag``); in the labour force =
employed or unemployed at least half the year (210). A person missing in AKM of *t-1* is outside the
labour force (socio13 null).
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from impact import spec as spec_mod
from impact.derive.extracts import Extracts, codes
from impact.errors import Violation


def socio13() -> pd.DataFrame:
    """SOCIO13 codes with ``employed`` and ``in_labour_force``."""
    table = pd.read_csv(spec_mod.spec_dir() / "socio13.csv")
    employed = table["employed_flag"].astype(bool)
    extra = table["SOCIO13"].isin(codes()["labour_force_extra"])
    return pd.DataFrame({"code": table["SOCIO13"].astype("int64"), "employed": employed,
                         "in_labour_force": employed | extra})


def checks(ex: Extracts, persons_years: list[int]) -> Iterator[Violation]:
    """AKM's years and SOCIO13 codes."""
    ex.require("akm")
    yield from ex.check_basic("akm")
    yield from ex.check_years("akm", persons_years)
    ex.con.register("socio13_codes", socio13())
    yield from ex.check_codes("akm", "SOCIO13", "SELECT code FROM socio13_codes",
                              "SOCIO13 codes of data_spec/socio13.csv")


def view(ex: Extracts) -> None:
    """The view ``employment`` (PNR, AAR of the persons year, socio13, employed, in_labour_force)."""
    lag = ex.specs["akm"].lag
    ex.con.execute(f"""CREATE OR REPLACE VIEW employment AS
        SELECT a.PNR, a.AAR + {lag} AS AAR, a.SOCIO13 AS socio13, c.employed, c.in_labour_force
        FROM r_akm a JOIN socio13_codes c ON c.code = a.SOCIO13""")
