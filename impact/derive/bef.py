"""BEF (Befolkningen): the person-years (status 1 January) and the families of the households."""

from __future__ import annotations

from collections.abc import Iterator

from impact.derive.extracts import Extracts
from impact.errors import Violation


def checks(ex: Extracts) -> Iterator[Violation]:
    """Numbers, null keys and duplicate PNR-years of BEF."""
    yield from ex.check_basic("bef")
    n, examples = ex.examples("SELECT 'PNR=' || PNR::VARCHAR || ', AAR=' || AAR::VARCHAR "
                              "FROM r_bef WHERE FAMILIE_ID IS NULL")
    if n:
        yield Violation("bef", "FAMILIE_ID", "not null", n, examples, "every person has a family")


def years(ex: Extracts) -> list[int]:
    """The persons years: the years of BEF."""
    return ex.year_list("bef")


def families_sql() -> str:
    """Households of each year: BEF families with their number of persons."""
    return ("SELECT FAMILIE_ID, AAR, count(*) AS n_persons FROM r_bef GROUP BY FAMILIE_ID, AAR")
