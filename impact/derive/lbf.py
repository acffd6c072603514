"""Landsbyggefonden and the letting records: the address link, departments, lettings and the
adoption survey.

A BEF address (ADRESSE_ID) in ``lbf_adresser`` gives the person's department (AFDELING) and dwelling;
``lbf_afdelinger`` the departments (organisation ORGNR, municipality KOM, dwellings LEJEMAAL,
helhedsplan HELHEDSPLAN, market MARKED); ``lbf_udlejninger`` the lettings (KANAL in Danish or the
contract's codes; a tenant not in BEF gets a null person_id); ``tool_adoption`` the survey.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from impact import spec as spec_mod
from impact.derive.extracts import Extracts, codes
from impact.errors import Violation

_KANAL = "replace(replace(lower(trim({0})), ' ', '_'), '-', '_')"


def channels() -> pd.DataFrame:
    """Letting channels: the records' names and the contract's codes -> ``channel``."""
    danish = codes()["kanal"]
    own = spec_mod.load().codes("lettings", "channel")
    rows = [*danish.items(), *((c, c) for c in own)]
    return pd.DataFrame(rows, columns=["name", "channel"])


def checks(ex: Extracts) -> Iterator[Violation]:
    """Keys and numbers of the LBF files and the survey; every KANAL known."""
    ex.require("lbf_adresser", "lbf_afdelinger", "lbf_udlejninger", "tool_adoption")
    for name in ("lbf_adresser", "lbf_afdelinger", "lbf_udlejninger", "tool_adoption"):
        yield from ex.check_basic(name)
    ex.con.register("channels", channels())
    n, examples = ex.examples(
        f"SELECT DISTINCT coalesce(KANAL, 'null') FROM r_lbf_udlejninger WHERE KANAL IS NULL OR "
        f"{_KANAL.format('KANAL')} NOT IN (SELECT name FROM channels)")
    if n:
        yield Violation("lbf_udlejninger", "KANAL", "allowed codes", n, examples,
                        "allowed: " + ", ".join(codes()["kanal"]))


def _column(ex: Extracts, name: str, column: str, like: tuple[str, str]) -> str:
    """A column of a register, or a null of the type of ``like`` (register, column) when absent."""
    if column in ex.columns[name]:
        return f'"{column}"'
    rows = dict((r[0], r[1]) for r in ex.con.execute(f"DESCRIBE r_{like[0]}").fetchall())
    return f"NULL::{rows.get(like[1], 'VARCHAR')}"


def departments_sql(ex: Extracts) -> str:
    """The departments table."""
    plan = _column(ex, "lbf_afdelinger", "HELHEDSPLAN", ("tool_adoption", "HELHEDSPLAN"))
    market = ", MARKED AS market_type" if "MARKED" in ex.columns["lbf_afdelinger"] else ""
    return (f"SELECT AFDELING AS department_id, ORGNR AS organisation_id, KOM AS municipality_id, "
            f"{plan} AS plan_id, LEJEMAAL AS n_dwellings{market} FROM r_lbf_afdelinger "
            "ORDER BY department_id")


def lettings_sql() -> str:
    """The lettings table (tenants not in BEF: null person_id)."""
    return f"""SELECT l.UDLEJNING_ID AS letting_id, l.AFDELING AS department_id, l.AAR AS year,
               c.channel, CASE WHEN l.PNR IN (SELECT PNR FROM r_bef) THEN l.PNR END AS person_id
        FROM r_lbf_udlejninger l JOIN channels c ON c.name = {_KANAL.format('l.KANAL')}
        ORDER BY letting_id"""


def tool_adoption_sql(ex: Extracts) -> str:
    """The tool_adoption table, from the survey."""
    t = "tool_adoption"
    dept = _column(ex, t, "AFDELING", ("lbf_afdelinger", "AFDELING"))
    plan = _column(ex, t, "HELHEDSPLAN", ("lbf_afdelinger", "HELHEDSPLAN"))
    end = _column(ex, t, "END_YEAR", (t, "START_YEAR"))
    share = _column(ex, t, "AGREED_SHARE", (t, "AGREED_SHARE"))
    src = _column(ex, t, "SOURCE", (t, "TOOL"))
    return (f"SELECT {dept} AS department_id, {plan} AS plan_id, TOOL AS tool, "
            f"START_YEAR AS start_year, {end} AS end_year, {share}::DOUBLE AS agreed_share, "
            f"{src} AS source FROM r_tool_adoption")
