"""Disclosure control: primary rules, secondary suppression verified by the LP audit (rectangle and
bridge patterns), dominance, shares, identifiers, model rules, and the log/report layout.

Reference values are exact identities: for a suppressed rectangle with corners a (target), b, c (its
row and column neighbours) and d (opposite), the only freedom the margins leave is a + t, b - t,
c - t, d + t, so with non-negativity the attacker's interval for a is
[a - min(a, d), a + min(b, c)]. A cell that is a bridge of the bipartite row-column graph of the
suppressed cells lies on no cycle and is determined exactly by the margins (interval width 0).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from impact.config import DisclosureConfig
from impact.errors import DisclosureError
from impact.report import disclosure as d

RULES = DisclosureConfig()  # min_n 5, dominance (2, 0.85), protection 0.10


def extended(values: pd.DataFrame) -> pd.DataFrame:
    ext = values.astype(float).copy()
    ext["total"] = ext.sum(axis=1)
    ext.loc["total"] = ext.sum(axis=0)
    return ext


def attacker_bounds(released: pd.DataFrame) -> dict[tuple, tuple[float, float]]:
    """Bounds of every suppressed cell from the *released* table alone (its own LP, not d.audit)."""
    grid = released.to_numpy(dtype=float)
    n_r, n_c = grid.shape
    hidden = [(i, j) for i in range(n_r) for j in range(n_c) if np.isnan(grid[i, j])]
    idx = {h: k for k, h in enumerate(hidden)}
    rows, rhs = [], []
    lines = [[(i, j) for j in range(n_c - 1)] + [(i, n_c - 1, -1)] for i in range(n_r)]
    lines += [[(i, j) for i in range(n_r - 1)] + [(n_r - 1, j, -1)] for j in range(n_c)]
    for line in lines:
        coef, known = np.zeros(len(hidden)), 0.0
        for cell in line:
            i, j, sign = (*cell, 1) if len(cell) == 2 else cell
            if (i, j) in idx:
                coef[idx[(i, j)]] += sign
            else:
                known += sign * grid[i, j]
        if coef.any():
            rows.append(coef)
            rhs.append(-known)
    out = {}
    for h in hidden:
        c = np.zeros(len(hidden))
        c[idx[h]] = 1
        lo = linprog(c, A_eq=np.array(rows), b_eq=rhs, bounds=(0, None), method="highs")
        hi = linprog(-c, A_eq=np.array(rows), b_eq=rhs, bounds=(0, None), method="highs")
        out[(released.index[h[0]], released.columns[h[1]])] = (
            lo.fun, np.inf if hi.status == 3 else -hi.fun)
    return out


def test_single_small_cell_gets_the_cheapest_rectangle_with_exact_bounds():
    v = pd.DataFrame([[20, 30, 2, 40], [25, 35, 45, 50], [30, 60, 70, 80]],
                     index=list("abc"), columns=list("WXYZ"))
    p = d.protect_table(v, {"n_persons": extended(v)}, "count", RULES)
    # primary (a, Y) = 2; cheapest rectangle: (a, W) = 20, (b, Y) = 45, (b, W) = 25
    assert p.status.loc["a", "Y"] == "threshold; "
    hidden = {(r, c) for r in p.values.index for c in p.values.columns
              if np.isnan(p.values.loc[r, c])}
    assert hidden == {("a", "Y"), ("a", "W"), ("b", "Y"), ("b", "W")}
    assert (p.n_primary, p.n_secondary) == (1, 3)
    # a = 2, d = (b, W) = 25, b = (a, W) = 20, c = (b, Y) = 45: [2 - 2, 2 + 20] = [0, 22]
    lo, hi = attacker_bounds(p.values)[("a", "Y")]
    assert (lo, hi) == pytest.approx((0.0, 22.0))
    row = p.audit.iloc[0]
    assert (row["lower"], row["upper"], bool(row["safe"])) == (pytest.approx(0), pytest.approx(22),
                                                              True)


def test_audit_finds_the_bridge_cell_of_a_naive_pattern():
    # two suppressed rectangles {a,b}x{W,X} and {c,d}x{Y,Z} joined by (b, Y): every row and column
    # holds at least two suppressed cells, yet (b, Y) is on no cycle and the margins give it exactly
    v = pd.DataFrame(np.arange(10, 26).reshape(4, 4), index=list("abcd"), columns=list("WXYZ"))
    ext = extended(v)
    mask = np.zeros(ext.shape, dtype=bool)
    for r, c in [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (1, 2)]:
        mask[r, c] = True
    res = d.audit(ext.to_numpy().ravel(), mask.ravel(), d.margin_equations(4, 4), rules=RULES)
    by_cell = res.cells.set_index("cell")
    bridge = 1 * ext.shape[1] + 2
    assert by_cell.loc[bridge, "lower"] == pytest.approx(ext.iloc[1, 2])
    assert by_cell.loc[bridge, "upper"] == pytest.approx(ext.iloc[1, 2])
    assert not by_cell.loc[bridge, "safe"]
    # a cycle cell keeps its rectangle's interval: (a, W) = 10, opposite (b, X) = 15, neighbours
    # (a, X) = 11 and (b, W) = 14: [10 - min(10, 15), 10 + min(11, 14)] = [0, 21]
    assert (by_cell.loc[0, "lower"], by_cell.loc[0, "upper"]) == (pytest.approx(0),
                                                                   pytest.approx(21))
    assert by_cell.loc[0, "safe"]
    assert not res.safe


def test_protected_pattern_has_no_bridge_and_no_small_released_cell():
    rng = np.random.default_rng(13)
    for _ in range(6):
        v = pd.DataFrame(rng.integers(5, 60, size=(5, 4)), index=list("abcde"), columns=list("WXYZ"))
        small = rng.choice(v.size, size=3, replace=False)
        for k in small:
            v.iloc[k // 4, k % 4] = int(rng.integers(1, 5))
        p = d.protect_table(v, {"n_persons": extended(v)}, "count", RULES)
        ext = extended(v)
        released = p.values.to_numpy()
        shown = ~np.isnan(released)
        # released cells are exactly the truth and never from 1-4 persons
        assert np.array_equal(released[shown], ext.to_numpy()[shown])
        assert not ((ext.to_numpy()[shown] > 0) & (ext.to_numpy()[shown] < RULES.min_n)).any()
        bounds = attacker_bounds(p.values)
        for r, c in zip(*np.nonzero(p.status.to_numpy() == "threshold; "), strict=True):
            lo, hi = bounds[(p.values.index[r], p.values.columns[c])]
            assert hi - lo >= RULES.min_n - 1e-9  # an attacker cannot tell it is below 5
        assert p.audit["safe"].all()


def test_small_margin_is_suppressed_and_protected():
    v = pd.DataFrame([[1, 2, 1], [30, 40, 50], [20, 25, 35]], index=list("abc"),
                     columns=list("XYZ"))  # row a totals 4 persons
    p = d.protect_table(v, {"n_persons": extended(v)}, "count", RULES)
    assert np.isnan(p.values.loc["a", "total"])
    assert p.status.loc["a", "total"] == "threshold; "
    bounds = attacker_bounds(p.values)
    assert bounds[("a", "total")][1] - bounds[("a", "total")][0] >= RULES.min_n
    assert p.audit["safe"].all()


def dominated_table() -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Sums: (a, W) = 100 with one contributor of 95 (dominated); column W = 120, whose two largest
    hold (95 + 2) / 120 = 0.81 (not dominated); every other cell's two largest hold <= 20%."""
    v = pd.DataFrame([[100.0, 400.0, 300.0], [20.0, 500.0, 600.0]], index=list("ab"),
                     columns=list("WXY"))
    ext = extended(v)
    n = extended(pd.DataFrame(10, index=v.index, columns=v.columns))
    n.loc["a", "W"], n.loc["a", "total"], n.loc["total", "W"] = 6, 26, 16
    n.loc["total", "total"] = 56
    l1 = pd.DataFrame(40.0, index=ext.index, columns=ext.columns)
    l2 = l1.copy()
    l1.loc["a", "W"], l2.loc["a", "W"] = 95.0, 1.0
    l1.loc["b", "W"], l2.loc["b", "W"] = 2.0, 2.0
    l1.loc[["a", "total"], "total"] = 95.0
    l1.loc["total", "W"], l2.loc["total", "W"] = 95.0, 2.0
    return v, {"n_persons": n, "total": ext, "largest_1": l1, "largest_2": l2}


def test_no_safe_pattern_refuses_and_names_the_categories_to_merge():
    v, ev = dominated_table()
    # margins released elsewhere: (a, W) <= column W = 120, so protection 10% (up to 110) holds ...
    p = d.protect_table(v, ev, "magnitude", RULES, fixed_margins=True)
    assert p.status.loc["a", "W"] == "nk-rule; " and p.audit["safe"].all()
    assert attacker_bounds(p.values)[("a", "W")][1] == pytest.approx(120.0)
    assert not np.isnan(p.values.loc["total"]).any() and not np.isnan(p.values["total"]).any()
    # ... but protection 50% (up to 150) cannot: refuse and say what to merge (X, Y tie at 900)
    strict = DisclosureConfig(protection=0.5)
    with pytest.raises(DisclosureError, match=r"merge row 'a' with row 'b' or column 'W' with "
                                              r"column 'X'"):
        d.protect_table(v, ev, "magnitude", strict, fixed_margins=True)
    # a small margin that is released elsewhere cannot be protected here at all
    small = pd.DataFrame([[2, 40, 30], [0, 50, 60]], index=list("ab"), columns=list("WXY"))
    with pytest.raises(DisclosureError, match="margin cell"):
        d.protect_table(small, {"n_persons": extended(small)}, "count", RULES, fixed_margins=True)


def income_micro() -> pd.DataFrame:
    """Persons in two markets x two groups; in (city, flexible) one person earns 90% of the sum."""
    rows = []
    pid = 0
    for market in ("city", "rural"):
        for group in ("flexible", "neither"):
            for k in range(8):
                income = 1000.0 + 10 * k
                if (market, group) == ("city", "flexible") and k == 0:
                    income = 9 * 7 * 1035.0  # 9x the other seven together: share 0.9
                rows.append({"person_id": pid, "department_id": pid % 4, "market": market,
                             "group": group, "income": income})
                pid += 1
    return pd.DataFrame(rows)


def test_dominated_income_cell_is_suppressed():
    micro = income_micro()
    ev = d.cell_evidence(micro, ["market", "group"], value="income")
    cell = ev.set_index(["market", "group"]).loc[("city", "flexible")]
    others = 7 * 1000.0 + 10 * sum(range(1, 8))
    assert cell["total"] == pytest.approx(9 * 7 * 1035.0 + others)
    assert cell["largest_1"] == pytest.approx(9 * 7 * 1035.0)
    assert cell["largest_2"] == pytest.approx(1070.0)
    assert (cell["n_persons"], cell["n_departments"]) == (8, 4)
    prim = d.primary_suppression(ev, "magnitude", RULES)
    assert prim["nk-rule"].tolist() == [True, False, False, False]
    assert not prim["threshold"].any()
    values, evidence = d.table_evidence(micro, "market", "group", value="income")
    p = d.protect_table(values, evidence, "magnitude", RULES)
    assert np.isnan(p.values.loc["city", "flexible"])
    assert "nk-rule" in p.status.loc["city", "flexible"]
    x = values.loc["city", "flexible"]
    lo, hi = attacker_bounds(p.values)[("city", "flexible")]
    assert lo <= 0.9 * x and hi >= 1.1 * x  # protection 10% to either side
    # the city margin holds the dominant person too but is not dominated:
    # (65205 + 1070) / (72485 + 8280) = 0.8206 <= 0.85, so it is not a primary cell
    share = (65205 + 1070) / (72485 + 8280)
    assert share == pytest.approx(0.8206, abs=1e-4)
    assert "nk-rule" not in p.status.loc["city", "total"]


def test_share_needs_numerator_and_complement():
    ev = d.evidence_frame([d.CellEvidence(n_persons=n, numerator=k)
                           for n, k in [(20, 2), (20, 18), (20, 10), (3, 1), (0, 0)]])
    prim = d.primary_suppression(ev, "share", RULES)
    assert prim["share"].tolist() == [True, True, False, True, False]
    assert prim["threshold"].tolist() == [False, False, False, True, False]


def test_cell_evidence_counts_persons_once_and_shares():
    micro = pd.DataFrame({"person_id": [1, 1, 2, 3, 4], "department_id": [7, 7, 7, 8, 8],
                          "g": ["x", "x", "x", "x", "y"], "employed": [1, 1, 0, 1, 1],
                          "income": [5.0, 5.0, 3.0, 1.0, 2.0]})
    ev = d.cell_evidence(micro, ["g"], value="income", indicator="employed").set_index("g")
    assert ev.loc["x", "n_persons"] == 3 and ev.loc["x", "n_departments"] == 2
    assert ev.loc["x", "numerator"] == 2
    assert (ev.loc["x", "largest_1"], ev.loc["x", "largest_2"]) == (10.0, 3.0)  # person 1 summed
    assert ev.loc["x", "total"] == 14.0


def test_identifiers_and_order_statistics_are_never_released():
    bad = pd.DataFrame({"person_id": [1], "department_id": [2], "household_id": [3],
                        "dwelling_id": [4], "pnr": ["x"], "max": [1.0], "income_p90": [1.0],
                        "note": ["010190-1234"]})
    reasons = d.check_columns(bad)
    for col in ("person_id", "department_id", "household_id", "dwelling_id", "pnr", "max",
                "income_p90"):
        assert any(f"'{col}'" in r for r in reasons), col
    assert any("CPR-like" in r for r in reasons)
    good = pd.DataFrame({"mean_household_income": [1.0], "n_departments": [3], "n_persons": [9],
                         "municipality_id": [101], "estimate": [0.1], "lower": [0.0],
                         "upper": [0.2], "year": [2010]})
    assert d.check_columns(good) == []
    assert d.check_columns(good.set_index("year").rename_axis("department_id")) != []


def test_model_rows_need_dof_departments_and_persons_on_each_side():
    t = pd.DataFrame({"term": ["e-1", "e0", "e1", "e2", "e3"],
                      "df_resid": [30, 9, 30, 30, 30],
                      "n_departments_treated": [5, 5, 2, 5, 5],
                      "n_departments_control": [9, 9, 9, 9, 9],
                      "n_persons_treated": [50, 50, 50, 4, 50],
                      "n_persons_control": [90, 90, 90, 90, 90]})
    m = d.check_model_rows(t, RULES)
    assert m["suppress"].tolist() == [False, True, True, True, False]
    assert m["dof"].tolist() == [False, True, False, False, False]
    assert m["departments"].tolist() == [False, False, True, False, False]
    assert m["threshold"].tolist() == [False, False, False, True, False]
    with pytest.raises(DisclosureError, match="support column"):
        d.check_model_rows(t.drop(columns="df_resid"), RULES)


def test_log_and_acro_style_report(tmp_path):
    v = pd.DataFrame([[20, 30, 2, 40], [25, 35, 45, 50], [30, 60, 70, 80]],
                     index=list("abc"), columns=list("WXYZ"))
    p = d.protect_table(v, {"n_persons": extended(v)}, "count", RULES)
    log = d.DisclosureLog(RULES)
    assert log.add("movers", kind="table", status=p.status, files=["movers.csv"]) == "review"
    assert log.add("empty", kind="table", status=p.status.iloc[2:, :2], files=["e.csv"]) == "pass"
    assert log.add("bad", kind="table", status=None, refused="merge row 'a'") == "fail"
    csv, js = log.write(tmp_path)
    frame = pd.read_csv(csv)
    assert frame.columns.tolist() == ["output", "row", "column", "rule", "reason", "action"]
    assert len(frame[frame["output"] == "movers"]) == 4
    assert set(frame["rule"]) == {"threshold", "secondary", "refused"}
    assert "fewer than 5 persons" in frame["reason"].tolist()
    report = json.loads(js.read_text())
    res = report["results"]["movers"]
    assert res["status"] == "review" and res["type"] == "table"
    sdc = res["files"][0]["sdc"]
    assert sdc["summary"]["suppressed"] is True
    assert (sdc["summary"]["threshold"], sdc["summary"]["secondary"]) == (1, 3)
    assert sdc["cells"]["threshold"] == [["a", "Y"]]
    assert res["outcome"]["Y"]["a"] == "threshold; " and res["outcome"]["X"]["a"] == "ok"
    assert report["results"]["bad"]["status"] == "fail"
    assert report["rules"]["min_n"] == 5
    # the log never holds a suppressed cell's value or person count
    assert "2" not in frame.drop(columns=["reason"]).astype(str).to_numpy().ravel().tolist()
