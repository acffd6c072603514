"""Table export: one tidy frame to LaTeX (booktabs), Markdown, HTML and CSV with notes; same digits
in every format, unrounded values in the CSV, identical bytes on a second run."""

from __future__ import annotations

import pandas as pd
import pytest

from impact.report import tables


def results() -> pd.DataFrame:
    return pd.DataFrame({
        "tool": ["flexible_letting", "flexible_letting", "municipal_referral"],
        "outcome": ["share_employed", "mean_household_income", "share_employed"],
        "estimate": [0.01234, -1520.5, -0.0004],
        "se": [0.00401, 610.25, 0.0021],
        "lower": [0.00448, -2716.6, -0.0045],
        "upper": [0.0202, -324.4, 0.0037],
        "n_units": [1234, 1234, float("nan")],
    })


NOTES = tables.TableNotes(n_departments=1234, n_clusters=456, cluster="plan_id",
                          se_type="multiplier bootstrap, 999 draws", interval_level=0.95,
                          interval_type="uniform confidence bands",
                          extra=("Simulated registers, seed 0.",))


def test_notes_in_words():
    assert NOTES.lines() == [
        "Departments: 1,234.", "Clusters: 456 (plan_id).",
        "Standard errors: multiplier bootstrap, 999 draws.",
        "Intervals: 95% uniform confidence bands.", "Simulated registers, seed 0."]
    assert tables.TableNotes(cluster="plan_id", interval_level=0.9).lines() == [
        "Clustered by plan_id.", "Intervals: 90% confidence intervals."]


def test_format_frame_rounds_once_and_marks_missing():
    text = tables.format_frame(results(), digits={"estimate": 3, "se": 3, "lower": 1, "upper": 1})
    assert text["estimate"].tolist() == ["0.012", "-1520.500", "0.000"]  # no negative zero
    assert text["lower"].tolist() == ["0.0", "-2716.6", "0.0"]
    assert text["n_units"].tolist() == ["1,234", "1,234", "–"]


def test_every_format_written_with_notes(tmp_path):
    paths = tables.export_table(results(), tmp_path / "t" / "did_headline", title="Headline effects",
                                notes=NOTES, labels={"estimate": "ATT", "se": "SE"},
                                group="tool", stub="outcome",
                                spanners={"95% band": ["lower", "upper"]})
    assert set(paths) == {"tex", "md", "html", "csv"}
    tex = paths["tex"].read_text()
    for token in (r"\toprule", r"\midrule", r"\bottomrule", "Headline effects", "ATT",
                  "95\\% band", "Clusters: 456 (plan\\_id).", "0.012", "-1520.500",
                  "flexible\\_letting"):
        assert token in tex, token
    md = paths["md"].read_text()
    assert "| tool | outcome | ATT | SE | lower | upper | n_units |" in md
    assert "| flexible_letting | share_employed | 0.012 | 0.004 | 0.004 | 0.020 | 1,234 |" in md
    assert "not estimable or suppressed" in md and "Departments: 1,234." in md
    html = paths["html"].read_text()
    assert "Headline effects" in html and "-1520.500" in html and 'id="did-headline"' in html
    frame, head = tables.read_csv(paths["csv"])
    assert head[0] == "Headline effects" and "Clusters: 456 (plan_id)." in head
    pd.testing.assert_frame_equal(frame, results())  # unrounded, names kept


def test_two_runs_are_byte_identical(tmp_path):
    a = tables.export_table(results(), tmp_path / "a" / "x", title="T", notes=NOTES)
    b = tables.export_table(results(), tmp_path / "b" / "x", title="T", notes=NOTES)
    for fmt in tables.FORMATS:
        assert a[fmt].read_bytes() == b[fmt].read_bytes(), fmt


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown format"):
        tables.export_table(results(), "x", title="T", formats=("docx",))
    with pytest.raises(ValueError, match="not in the table"):
        tables.export_table(results(), "x", title="T", group="municipality")
