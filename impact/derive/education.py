"""UDDA: highest completed education (HFAUDD) -> DISCED-15 main area (H1) -> ``persons.education``.

HFAUDD maps to its main area through Statistics Denmark's classification (``disced15``: AUDD, H1) or
UDDA's own H1 column; the main areas map to the contract's groups through
``data_spec/registers/disced15_h1.csv`` (qualifying = 20-80). A person missing in UDDA of *t-1* gets
90 (unknown, not qualifying).
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from impact import spec as spec_mod
from impact.derive.extracts import Extracts
from impact.errors import Violation

_H1 = "'H' || regexp_extract(upper({0}), '[0-9]+')"


def main_areas() -> pd.DataFrame:
    """DISCED-15 main areas and their education group (``h1``, ``education``)."""
    return pd.read_csv(spec_mod.spec_dir() / "registers" / "disced15_h1.csv", comment="#")


def _own_h1(ex: Extracts) -> bool:
    return "H1" in ex.columns["udda"]


def checks(ex: Extracts, persons_years: list[int]) -> Iterator[Violation]:
    """UDDA's years and codes: every HFAUDD known to the classification, every H1 a main area."""
    ex.require("udda")
    yield from ex.check_basic("udda")
    yield from ex.check_years("udda", persons_years)
    ex.con.register("disced15_h1", main_areas())
    areas = "SELECT h1 FROM disced15_h1"
    if _own_h1(ex):
        yield from ex.check_codes("udda", "H1", areas, "DISCED-15 main areas H10-H90",
                                  where=f"{_H1.format('H1')} NOT IN ({areas})")
        return
    ex.require("disced15")
    yield from ex.check_basic("disced15")
    yield from ex.check_codes("udda", "HFAUDD", "SELECT AUDD FROM r_disced15",
                              "HFAUDD codes of the DISCED-15 classification (disced15)")
    n, examples = ex.examples(f"SELECT DISTINCT H1 FROM r_disced15 WHERE H1 IS NULL OR "
                              f"{_H1.format('H1')} NOT IN ({areas})")
    if n:
        yield Violation("disced15", "H1", "allowed codes", n, examples,
                        "DISCED-15 main areas H10-H90 (data_spec/registers/disced15_h1.csv)")


def view(ex: Extracts) -> None:
    """The view ``education`` (PNR, AAR of the persons year, education)."""
    lag = ex.specs["udda"].lag
    if _own_h1(ex):
        source, h1 = "r_udda u", _H1.format("u.H1")
    else:
        source, h1 = "r_udda u JOIN r_disced15 d ON d.AUDD = u.HFAUDD", _H1.format("d.H1")
    ex.con.execute(f"""CREATE OR REPLACE VIEW education AS
        SELECT u.PNR, u.AAR + {lag} AS AAR, m.education
        FROM {source} JOIN disced15_h1 m ON m.h1 = {h1}""")
