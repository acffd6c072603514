"""FAIK / INDH: household disposable income (nominal DKK) of the previous calendar year.

FAIK's FAMDISPON_NY of the family (FAMILIE_ID) when there is a FAIK extract; else the sum of IND's
DISPON_NY over the family's BEF members. A family without income stays, with a null income.
"""

from __future__ import annotations

from collections.abc import Iterator

from impact.derive.extracts import Extracts, fail
from impact.errors import Violation


def source(ex: Extracts) -> str:
    """``faik`` or ``ind``."""
    if ex.has("faik"):
        return "faik"
    if ex.has("ind"):
        return "ind"
    raise fail([Violation("faik", "*", "required register", 0, (),
                          "faik.* / faik<YYYY>.* (FAMILIE_ID, FAMDISPON_NY) or ind (PNR, "
                          "DISPON_NY)")])


def checks(ex: Extracts, persons_years: list[int]) -> Iterator[Violation]:
    """Years, numbers and keys of the income register."""
    src = source(ex)
    yield from ex.check_basic(src)
    yield from ex.check_years(src, persons_years)


def view(ex: Extracts) -> None:
    """The view ``income`` (FAMILIE_ID, AAR of the persons year, disposable_income)."""
    src = source(ex)
    lag = ex.specs[src].lag
    if src == "faik":
        ex.con.execute(f"""CREATE OR REPLACE VIEW income AS
            SELECT FAMILIE_ID, AAR + {lag} AS AAR, FAMDISPON_NY AS disposable_income FROM r_faik""")
    else:
        ex.con.execute(f"""CREATE OR REPLACE VIEW income AS
            SELECT b.FAMILIE_ID, b.AAR, sum(i.DISPON_NY) AS disposable_income
            FROM r_bef b JOIN r_ind i ON i.PNR = b.PNR AND i.AAR = b.AAR - {lag}
            GROUP BY b.FAMILIE_ID, b.AAR""")
