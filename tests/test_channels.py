"""Tenant composition by letting channel (impact.channels) on a small simulated world."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import impact.simulate
from impact.channels import MEASURES, UNLINKED, tenant_composition
from impact.errors import EstimationError
from tests import _small_world as world


@pytest.fixture(scope="module")
def factual():
    return tenant_composition(world.registers())


@pytest.fixture(scope="module")
def placebo():
    return tenant_composition(impact.simulate.placebo(world.registers()))


def _base_total(comp: pd.DataFrame, measure: str, linked_only: bool) -> pd.Series:
    c = comp[comp["measure"] == measure]
    if linked_only:
        c = c[c["channel"] != UNLINKED]
    return c.groupby("year")["n_persons"].sum()


def test_counts_add_up_to_the_panel(factual) -> None:
    """Exact identities with the panel's own counts, year by year."""
    p = world.panel()
    p = p[p["year"] > p["year"].min()].groupby("year")
    comp = factual.composition
    # linked in-movers (every person) = n_in_movers_linked; all in-movers = n_in_movers
    assert _base_total(comp, "share_non_western", True).to_dict() == \
        p["n_in_movers_linked"].sum().astype(int).to_dict()
    assert _base_total(comp, "share_non_western", False).to_dict() == \
        p["n_in_movers"].sum().astype(int).to_dict()
    # bases of the 18-64 measures = the panel's in-mover bases
    assert _base_total(comp, "share_employed", False).to_dict() == \
        p["in_n_labour_force_18_64"].sum().astype(int).to_dict()
    assert _base_total(comp, "mean_household_income", False).to_dict() == \
        p["in_n_income_18_64"].sum().astype(int).to_dict()
    # numerators: employed in-movers
    c = comp[comp["measure"] == "share_employed"]
    employed = (c["value"] * c["n_persons"]).groupby(c["year"]).sum()
    np.testing.assert_allclose(employed.to_numpy(), p["in_n_employed"].sum().to_numpy(), atol=1e-6)
    assert (comp["n_departments"] <= comp["n_persons"]).all()
    assert set(factual.contrasts["cluster"]) == {"plan_id"}


def test_simulator_links_every_in_mover(factual) -> None:
    """The simulator houses every in-mover through a letting: nobody is unlinked."""
    link = factual.linkage.set_index(["market_type", "group"])
    assert link.loc[("all", "unlinked"), "n_persons"] == 0
    assert link.loc[("all", "linked"), "n_persons"] == len(factual.movers)
    assert set(MEASURES) <= set(factual.linkage.columns)


def test_mechanism_flexible_up_referral_down(factual) -> None:
    """The simulator's mechanism in waiting-list markets: flexible letting chooses employed
    applicants (``flexible_employment_shift``), referral the unemployed (``delta_referral``).

    Tolerance: the 95% plan-clustered interval must exclude zero on the right side (on this
    seed the contrasts are about +0.15 and -0.10, 6-16 SEs from zero).
    """
    c = factual.contrasts.set_index(["market_type", "measure", "comparison", "channel"])
    for comparison in ("raw", "within_department_year"):
        flex = c.loc[("waiting_list", "share_employed", comparison, "flexible_letting")]
        ref = c.loc[("waiting_list", "share_employed", comparison, "municipal_referral")]
        assert flex["lower"] > 0
        assert ref["upper"] < 0
        assert flex["n_clusters"] >= 10


def test_placebo_has_no_channel_selection(placebo) -> None:
    """Placebo world: the lettings (and their channel labels) are factual, the persons are the
    no-tool counterfactual. The simulator keys persons by department-local slots, so most
    lettings' ``person_id`` still find a person in that department the next year (a tenant the
    waiting list chose), and the rest do not link. The label then carries no selection of
    tenants: the within-department-year contrasts are centred on zero. Tolerance 4 SE per
    contrast (9 contrasts of share employed: P(any |z| > 4 | null) < 1e-3). The raw contrasts
    still compare departments (flexible letting and referral are used in more vulnerable
    departments): at report scale they average -0.9 to -1.8 SE on the placebo (4 seeds,
    ``tests/simstudy/subgroups.py``), so they are not tested against zero.
    """
    link = placebo.linkage.set_index(["market_type", "group"])
    share_unlinked = link.loc[("all", "unlinked"), "share_of_in_movers"]
    assert 0.05 < share_unlinked < 0.5
    c = placebo.contrasts[placebo.contrasts["measure"] == "share_employed"]
    assert len(c) == 18
    c = c[c["comparison"] == "within_department_year"]
    z = (c["difference"] / c["se"]).abs()
    assert len(z) == 9 and (z < 4).all(), c.loc[z >= 4]


def test_unlinkable_lettings_raise() -> None:
    reg = world.registers()
    bad = reg.replace(lettings=reg.lettings.assign(person_id=pd.NA))
    with pytest.raises(EstimationError, match="can be linked"):
        tenant_composition(bad)
    with pytest.raises(EstimationError, match="alpha"):
        tenant_composition(reg, alpha=1.5)


def test_plot(factual) -> None:
    fig = factual.plot("share_employed")
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel().startswith("share_employed")


def test_disclosure_evidence_matches_the_cells(factual) -> None:
    """The disclosure evidence counts the same persons and departments as the table."""
    for measure in ("share_employed", "mean_household_income"):
        ev = factual.evidence(measure)
        comp = factual.composition[factual.composition["measure"] == measure]
        m = comp.merge(ev, on=["year", "market_type", "channel"], suffixes=("", "_ev"))
        assert len(m) == len(comp) == len(ev)
        assert (m["n_persons"] == m["n_persons_ev"]).all()
        assert (m["n_departments"] == m["n_departments_ev"]).all()
    with pytest.raises(EstimationError, match="unknown measure"):
        factual.evidence("age")
