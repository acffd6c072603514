"""Result objects of :func:`impact.did.att_gt`: ATT(g,t) table, aggregations, pre-test.

:class:`AttGtResult` holds the group-time effects and their influence functions;
:meth:`AttGtResult.aggregate` reproduces R's ``did::aggte`` (see :mod:`impact.did.callaway_santanna._aggregate`)
and returns an :class:`AggregateResult`. Bootstrap draws are seeded from the entropy recorded by
:func:`impact.did.att_gt`, so repeated calls give identical numbers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats

from impact.did.callaway_santanna import _report as rep
from impact.did.callaway_santanna._aggregate import aggregate_cells
from impact.did.callaway_santanna._bootstrap import analytic_se, cluster_sums, multiplier_bootstrap
from impact.errors import EstimationError, EstimationWarning
from impact.results import Result, draw_intervals

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["AggregateResult", "AttGtResult", "OverallEffect", "PreTest"]

FloatArray = NDArray[np.float64]
SeedLike = int | np.random.SeedSequence | np.random.Generator | None
_KINDS = ("simple", "dynamic", "group", "calendar")
_KEY = {"dynamic": "event_time", "group": "cohort", "calendar": "time"}


@dataclass(frozen=True)
class OverallEffect:
    """One summary effect with its standard error and pointwise confidence interval."""

    att: float
    se: float
    lower: float
    upper: float

    def to_series(self) -> pd.Series:
        """The four numbers as a pandas Series."""
        return pd.Series({"att": self.att, "se": self.se, "lower": self.lower, "upper": self.upper})


@dataclass(frozen=True)
class PreTest:
    """Wald pre-test that all pre-treatment ATT(g,t) are zero (R's "P-value for pre-test").

    ``stat = n * b' V^-1 b`` over the pre-treatment cells with a non-zero analytic variance, ``V``
    the analytic covariance of the influence functions (cluster-robust when clustering; R omits the
    test when it bootstraps with clusters), compared with chi-squared(``df``).
    """

    stat: float
    df: int
    p_value: float


def _check_choice(name: str, value: object, options: Sequence[str], where: str = "att_gt") -> None:
    if value not in options:
        raise EstimationError(f"{where}: {name} must be one of {list(options)}, got {value!r}")


def _entropy(seed: SeedLike) -> int:
    if seed is None:
        return int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63 - 1))
    if isinstance(seed, np.random.SeedSequence):
        return int(seed.generate_state(2, dtype=np.uint64)[0])
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return int(seed)
    raise EstimationError(
        f"att_gt: seed must be a non-negative int, SeedSequence or Generator, got {seed!r}"
    )


def _rng(entropy: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=key))


def _critical_value(crit: float, alpha: float, where: str) -> float:
    z = float(stats.norm.ppf(1 - alpha / 2))
    if not np.isfinite(crit):
        warnings.warn(f"{where}: uniform critical value unavailable; using pointwise",
                      EstimationWarning, stacklevel=3)
        return z
    if crit < z:
        warnings.warn(
            f"{where}: uniform band narrower than pointwise; using pointwise",
            EstimationWarning, stacklevel=3,
        )
        return z
    if crit >= 7:
        warnings.warn(
            f"{where}: simultaneous critical value {crit:.2f} >= 7 may be unreliable "
            "(small cohorts or little outcome variation)",
            EstimationWarning,
            stacklevel=3,
        )
    return crit


@dataclass(frozen=True, eq=False)
class AggregateResult(Result):
    """An aggregation of ATT(g,t) (:meth:`AttGtResult.aggregate`).

    Attributes
    ----------
    kind
        ``"simple"``, ``"dynamic"``, ``"group"`` or ``"calendar"``.
    overall
        Overall effect with a pointwise ``1 - alpha`` interval.
    by
        One row per event time / cohort / period (``event_time``, ``cohort`` or ``time``, then
        att, se, lower, upper; bands are uniform when bootstrapped with ``cband``); empty for
        ``"simple"``.
    crit_value
        Critical value used for ``by``.
    influence
        n x (1 + len(by)) influence functions (overall first).
    cluster_codes
        Cluster code per unit (rows of ``influence``), None when each unit is its own cluster.
    reference_period
        ``"dynamic"`` with ``base_period="universal"``: the event time normalised to zero (its
        row in ``by`` has att 0 and se NaN); None otherwise.
    support
        The support columns of :meth:`tidy`, one row for the overall effect, then one per row
        of ``by``.

    Event-study interface (every result with an event-time dimension has it): ``event_time``,
    ``estimate`` and ``se`` (numpy arrays, the ``by`` rows without the reference period) and
    :meth:`vcov`, their joint covariance.
    """

    kind: str
    overall: OverallEffect
    by: pd.DataFrame
    crit_value: float
    alpha: float
    n_boot: int
    cband: bool
    influence: FloatArray = field(repr=False)
    settings: Mapping[str, Any] = field(repr=False)
    cluster_codes: NDArray[np.int64] | None = field(default=None, repr=False)
    reference_period: float | None = None
    support: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def _estimated_rows(self) -> NDArray[np.bool_]:
        if self.kind == "simple":
            raise EstimationError(
                "aggregate('simple') has no per-key estimates; use .overall, or aggregate "
                "'dynamic', 'group' or 'calendar'"
            )
        key = self.by[_KEY[self.kind]].to_numpy(dtype=float)
        return key != self.reference_period if self.reference_period is not None else (
            np.ones(key.size, dtype=bool))

    @property
    def event_time(self) -> FloatArray:
        """Event times of :attr:`estimate` (``"dynamic"`` only; reference period excluded)."""
        if self.kind != "dynamic":
            raise EstimationError(f"aggregate({self.kind!r}) has no event time; use 'dynamic'")
        return self.by["event_time"].to_numpy(dtype=float)[self._estimated_rows()]

    @property
    def estimate(self) -> FloatArray:
        """Per-key ATTs (the ``by`` rows, reference period excluded)."""
        return self.by["att"].to_numpy(dtype=float)[self._estimated_rows()]

    @property
    def se(self) -> FloatArray:
        """Their standard errors as reported (bootstrap when ``n_boot > 0``)."""
        return self.by["se"].to_numpy(dtype=float)[self._estimated_rows()]

    @property
    def n_clusters(self) -> int:
        """Number of clusters of the inference (units when not clustering)."""
        return int(self.settings.get("n_clusters", self.influence.shape[0]))

    def vcov(self) -> FloatArray:
        """Joint covariance of :attr:`estimate`, from the aggregated influence functions.

        ``S' S / n^2`` with ``S`` the cluster sums of the influence functions (the units
        themselves without clustering): the analytic, cluster-robust covariance consistent with
        the result's clustering, also when the reported ``se`` are bootstrapped. Its diagonal's
        square root equals the analytic standard errors.
        """
        inf = self.influence[:, 1:][:, self._estimated_rows()]
        s = cluster_sums(inf, self.cluster_codes)
        v = (s.T @ s) / inf.shape[0] ** 2
        return (v + v.T) / 2

    def _tidy(self) -> pd.DataFrame:
        """Overall and per-key estimates in long (broom-like) form: ``term`` (``overall``,
        ``event_time=e``, ``cohort=g`` or ``time=t``), the estimate, its support, then
        ``aggregation``, ``key``, ``cluster``, ``n_clusters``.

        Support: the cells behind a row are the ATT(g,t) it averages; its treated side is the
        units of those cells' cohorts at the cells' two periods, its control side their
        comparison units; ``df_resid`` is the smallest residual df of those cells (see
        :meth:`AttGtResult.tidy`), so a row passes the residual-df rule only when every 2x2
        comparison behind it does.
        """
        rows = [{"term": "overall", "key": np.nan, **self.overall.to_series().to_dict()}]
        if self.kind != "simple":
            col = _KEY[self.kind]
            for r in self.by.itertuples(index=False):
                rec = r._asdict()
                rows.append(
                    {
                        "term": f"{col}={rec[col]:g}",
                        "key": rec[col],
                        **{k: rec[k] for k in ("att", "se", "lower", "upper")},
                    }
                )
        out = pd.DataFrame(rows).rename(columns={"att": "estimate"})
        if len(self.support) == len(out):
            out = pd.concat([out, self.support.reset_index(drop=True)], axis=1)
        out.insert(len(out.columns), "aggregation", self.kind)
        out = out[["term", "estimate", "se", "lower", "upper",
                   *[c for c in out.columns if c not in ("term", "estimate", "se", "lower",
                                                         "upper", "key", "aggregation")],
                   "aggregation", "key"]]
        out["cluster"] = self.settings.get("cluster_variable")
        out["n_clusters"] = self.n_clusters
        return out

    _summary_columns = ("key",)

    def _summary_title(self) -> str:
        return f"Aggregated ATT ({self.kind}), Callaway & Sant'Anna (2021)"

    def _summary_notes(self) -> tuple[str, ...]:
        return (rep.settings_line(dict(self.settings)),)

    def _summary_text(self) -> str:
        """A text report like R's ``summary(aggte(...))``."""
        lines = rep.table_text(
            pd.DataFrame([self.overall.to_series()]).assign(key="overall")[
                ["att", "se", "lower", "upper"]
            ],
            [],
            f"{100 * (1 - self.alpha):g}% pointwise interval",
        )
        if self.kind != "simple":
            lines += [
                "",
                *rep.table_text(
                    self.by, [_KEY[self.kind]], rep.band_label(self.n_boot, self.cband, self.alpha)
                ),
            ]
        return "\n".join(lines)

    _figsize = (6.5, 4.0)

    def _draw(self, ax: Any) -> None:
        """Estimates with intervals against event time / cohort / period; the overall effect
        alone for ``"simple"``."""
        if self.kind == "simple":
            o = self.overall
            draw_intervals(ax, [0.0], [o.att], [o.lower], [o.upper], color="#2471a3",
                           label="overall")
            ax.axhline(0.0, color="black", linewidth=0.8)
            ax.set_xticks([0.0], ["overall"])
            ax.set_ylabel("ATT")
            ax.set_title("ATT (simple aggregation)", fontsize=10)
            return
        col = _KEY[self.kind]
        key = self.by[col].to_numpy(dtype=float)
        pre = key < 0 if self.kind == "dynamic" else np.zeros(key.size, dtype=bool)
        rep.estimate_axes(
            ax,
            key,
            self.by["att"].to_numpy(),
            self.by["lower"].to_numpy(),
            self.by["upper"].to_numpy(),
            pre,
            cut=-0.5 if self.kind == "dynamic" else np.nan,
            xlabel=col.replace("_", " "),
            title=f"ATT by {col.replace('_', ' ')}",
        )


@dataclass(frozen=True, eq=False)
class AttGtResult(Result):
    """Result of :func:`att_gt`.

    Attributes
    ----------
    att_gt
        One row per (cohort, time): cohort, time, event_time, base_period, post, att, se, lower,
        upper, n_treated, n_control.
    pretest
        Wald pre-test of the pre-treatment ATT(g,t), or None when unavailable.
    crit_value
        Critical value of the intervals in ``att_gt`` (sup-t when bootstrapped with ``cband``).
    vcov
        Analytic covariance matrix of the ATT(g,t) (cluster-robust when clustering).
    influence
        n x K influence functions (R's ``inffunc``), rows in ``unit_ids`` order.
    n_rows_dropped
        Rows removed for missing or non-finite outcome/covariates.
    notes
        Every recoding or removal of data and every failed cell, in words.
    cell_comparison
        The comparison cohorts of each cell (rows of ``att_gt``; 0 = never treated).
    cohort_persons
        Persons per cohort (rows: the sorted distinct values of ``unit_cohort``) and period,
        when :func:`att_gt` was given ``persons``; else None.
    """

    att_gt: pd.DataFrame
    pretest: PreTest | None
    crit_value: float
    vcov: FloatArray = field(repr=False)
    influence: FloatArray = field(repr=False)
    unit_ids: NDArray = field(repr=False)
    unit_weights: FloatArray = field(repr=False)
    unit_cohort: FloatArray = field(repr=False)
    cluster_codes: NDArray[np.int64] | None = field(repr=False)
    periods: FloatArray = field(repr=False)
    settings: Mapping[str, Any] = field(repr=False)
    n_rows_dropped: int = 0
    notes: tuple[str, ...] = ()
    cell_comparison: tuple[tuple[float, ...], ...] = field(default=(), repr=False)
    cohort_persons: FloatArray | None = field(default=None, repr=False)

    def _support(self, cells: Sequence[NDArray[np.int64]]) -> pd.DataFrame:
        """Support columns of rows resting on the given sets of cells (rows of ``att_gt``).

        The panel is balanced and every unit of a cohort plays the same part in every cell, so
        the counts are sums over cohorts: treated side = the cells' cohorts at the cells' two
        periods (t and its base period), control side = their comparison cohorts at the same
        periods; persons are the most in one period (see :mod:`impact.results`).
        """
        tab = self.att_gt
        cohorts, sizes = np.unique(self.unit_cohort, return_counts=True)
        where = {float(c): i for i, c in enumerate(cohorts)}
        t_idx = np.searchsorted(self.periods, tab["time"].to_numpy(dtype=float))
        b_idx = np.searchsorted(self.periods, tab["base_period"].to_numpy(dtype=float))
        g = tab["cohort"].to_numpy(dtype=float)
        k = 2 + len(self.settings.get("covariates", ()))
        df_cell = (tab["n_treated"] + tab["n_control"]).to_numpy(dtype=float) - k
        known = len(self.cell_comparison) == len(tab)
        persons = self.cohort_persons

        def count(mask: NDArray[np.bool_]) -> tuple[float, float]:
            n = float(sizes[mask.any(axis=1)].sum())
            p = float((persons * mask).sum(axis=0).max()) if persons is not None else np.nan
            return n, p

        rows = []
        for which in cells:
            tr = np.zeros((cohorts.size, self.periods.size), dtype=bool)
            co = np.zeros_like(tr)
            for j in np.asarray(which, dtype=np.int64):
                cols = [t_idx[j], b_idx[j]]
                tr[where[g[j]], cols] = True
                for c in self.cell_comparison[j] if known else ():
                    co[where[float(c)], cols] = True
            n_all, p_all = count(tr | co)
            n_tr, p_tr = count(tr)
            n_co, p_co = count(co) if known else (np.nan, np.nan)
            rows.append({"n_units": n_all if known else np.nan, "n_persons": p_all if known
                         else np.nan, "n_units_treated": n_tr, "n_units_control": n_co,
                         "n_persons_treated": p_tr, "n_persons_control": p_co,
                         "df_resid": float(df_cell[which].min()) if len(which) else np.nan})
        return pd.DataFrame(rows, columns=["n_units", "n_persons", "n_units_treated",
                                           "n_units_control", "n_persons_treated",
                                           "n_persons_control", "df_resid"])

    @property
    def n_units(self) -> int:
        """Number of units in the estimation."""
        return int(self.influence.shape[0])

    @property
    def n_clusters(self) -> int:
        """Number of clusters of the inference (``n_units`` when not clustering)."""
        return int(self.settings.get("n_clusters", self.n_units))

    def aggregate(
        self,
        kind: Literal["simple", "dynamic", "group", "calendar"] = "group",
        *,
        min_e: float = -math.inf,
        max_e: float = math.inf,
        balance_e: int | None = None,
        n_boot: int | None = None,
        alpha: float | None = None,
        cband: bool | None = None,
        na_rm: bool = False,
        seed: SeedLike = None,
    ) -> AggregateResult:
        """Aggregate ATT(g,t) as R's ``aggte``.

        Parameters
        ----------
        kind
            ``"simple"`` (weighted average of post-treatment cells), ``"dynamic"`` (event study),
            ``"group"`` (by cohort) or ``"calendar"`` (by period).
        min_e, max_e
            Event-time window (``dynamic``; ``max_e`` also limits ``simple``/``group``).
        balance_e
            Keep only cohorts observed at least ``balance_e`` periods after treatment (dynamic).
        n_boot, alpha, cband
            Inference settings; default to those of :func:`att_gt`.
        na_rm
            Drop NaN ATT(g,t) cells instead of raising.
        seed
            Bootstrap seed; default derived from the :func:`att_gt` seed and ``kind``
            (so repeated calls give identical results).

        Returns
        -------
        AggregateResult
        """
        _check_choice("kind", kind, _KINDS, "aggregate")
        if balance_e is not None and (int(balance_e) != balance_e or balance_e < 0):
            raise EstimationError(
                f"aggregate: balance_e must be a non-negative integer, got {balance_e!r}"
            )
        n_boot = int(self.settings["n_boot"] if n_boot is None else n_boot)
        alpha = float(self.settings["alpha"] if alpha is None else alpha)
        cband = bool(self.settings["cband"] if cband is None else cband)
        if n_boot < 0 or not 0 < alpha < 1:
            raise EstimationError("aggregate: n_boot must be >= 0 and alpha in (0, 1)")
        tab = self.att_gt
        att = tab["att"].to_numpy(dtype=float)
        ok = np.isfinite(att)
        if not ok.all() and not na_rm:
            bad = tab.loc[~ok, ["cohort", "time"]].itertuples(index=False)
            raise EstimationError(
                "aggregate: ATT(g,t) is NaN for cells "
                + ", ".join(f"({c:g},{t:g})" for c, t in bad)
                + "; pass na_rm=True to drop them"
            )
        if kind == "group" and na_rm:
            post = (tab["time"] >= tab["cohort"]) & (tab["time"] <= tab["cohort"] + max_e)
            bad_g = tab.loc[post & ~ok, "cohort"].unique()
            ok &= ~tab["cohort"].isin(bad_g).to_numpy()
        if not ok.any():
            raise EstimationError("aggregate: all ATT(g,t) are NaN")
        core = aggregate_cells(
            kind,
            cohort=tab["cohort"].to_numpy(dtype=float)[ok],
            time=tab["time"].to_numpy(dtype=float)[ok],
            att=att[ok],
            influence=self.influence[:, ok],
            unit_weights=self.unit_weights,
            unit_cohort=self.unit_cohort,
            periods=self.periods,
            min_e=min_e,
            max_e=max_e,
            balance_e=None if balance_e is None else int(balance_e),
        )
        inf = np.column_stack([core.overall_inf, core.by_inf])
        z = float(stats.norm.ppf(1 - alpha / 2))
        crit = z
        if n_boot > 0:
            rng = (
                _rng(self.settings["entropy"], 1, _KINDS.index(kind))
                if seed is None
                else _rng(_entropy(seed), 1)
            )
            band = np.r_[False, np.ones(core.by_att.size, dtype=bool)]
            boot = multiplier_bootstrap(inf, self.cluster_codes, n_boot, alpha, rng, band)
            se = boot.se
            if cband and core.by_att.size:
                crit = _critical_value(boot.crit_value, alpha, f"aggregate({kind!r})")
        else:
            se = analytic_se(inf, self.cluster_codes)
        se = np.where(np.isfinite(se) & (se > np.sqrt(np.finfo(float).eps) * 10), se, np.nan)
        overall = OverallEffect(
            core.overall_att,
            float(se[0]),
            core.overall_att - z * se[0],
            core.overall_att + z * se[0],
        )
        by = pd.DataFrame(
            {
                "att": core.by_att,
                "se": se[1:],
                "lower": core.by_att - crit * se[1:],
                "upper": core.by_att + crit * se[1:],
            }
        )
        reference = None
        cell = np.flatnonzero(ok)
        support = self._support([cell[core.overall_cells]]
                                + [cell[np.asarray(c, dtype=np.int64)] for c in core.by_cells])
        if kind != "simple":
            by.insert(0, _KEY[kind], core.by_key)
        if kind == "dynamic":
            # an event time all of whose cells are their own base period is normalised to zero
            is_base = (tab["base_period"] == tab["time"]).to_numpy()[ok]
            e_cells = (tab["time"] - tab["cohort"]).to_numpy(dtype=float)[ok]
            refs = [e for e in core.by_key if is_base[e_cells == e].all()]
            reference = float(refs[0]) if refs else None
        return AggregateResult(
            kind=kind,
            overall=overall,
            by=by,
            crit_value=crit,
            alpha=alpha,
            n_boot=n_boot,
            cband=cband,
            influence=inf,
            settings=self.settings,
            cluster_codes=self.cluster_codes,
            reference_period=reference,
            support=support,
        )

    def _tidy(self) -> pd.DataFrame:
        """ATT(g,t) in long (broom-like) form with uniform (``lower``, ``upper``) and pointwise
        intervals and the support of each cell.

        Support: treated side = the cohort's units, control side = the comparison units, each at
        the cell's two periods; ``df_resid`` = n_treated + n_control - (2 + covariates), the
        residual df of the cell's 2x2 regression of the outcome change on an intercept, the
        treatment indicator and the covariates.
        """
        t = self.att_gt
        z = float(stats.norm.ppf(1 - self.settings["alpha"] / 2))
        out = pd.DataFrame(
            {
                "term": [f"ATT({g:g},{s:g})" for g, s in zip(t["cohort"], t["time"], strict=True)],
                "estimate": t["att"],
                "se": t["se"],
                "lower": t["lower"],
                "upper": t["upper"],
            }
        )
        out = pd.concat([out, self._support([np.array([j]) for j in range(len(t))])], axis=1)
        return out.assign(
            cohort=t["cohort"].to_numpy(),
            time=t["time"].to_numpy(),
            event_time=t["event_time"].to_numpy(),
            pointwise_lower=(t["att"] - z * t["se"]).to_numpy(),
            pointwise_upper=(t["att"] + z * t["se"]).to_numpy(),
            cluster=self.settings.get("cluster_variable"),
            n_clusters=self.n_clusters,
        )

    _summary_columns = ("cohort", "time")

    def _summary_title(self) -> str:
        return "Group-time average treatment effects, Callaway & Sant'Anna (2021)"

    def _summary_text(self) -> str:
        """The ATT(g,t) as R's ``summary(att_gt(...))`` prints them."""
        return "\n".join(rep.table_text(
            self.att_gt,
            ["cohort", "time"],
            rep.band_label(self.settings["n_boot"], self.settings["cband"], self.settings["alpha"]),
        ))

    def _summary_notes(self) -> tuple[str, ...]:
        """The pre-test p-value, the settings and the rows dropped."""
        lines = []
        if self.pretest is None:
            lines.append("Pre-test of parallel trends: not available")
        else:
            p = self.pretest
            lines.append(
                f"P-value for pre-test of parallel trends assumption: {p.p_value:.5f} "
                f"(Wald chi2({p.df}) = {p.stat:.4f})"
            )
        lines.append(rep.settings_line(dict(self.settings)))
        if self.n_rows_dropped:
            lines.append(f"Rows dropped for missing data: {self.n_rows_dropped}")
        return tuple(lines)

    def _draw(self, ax: Any) -> None:
        """Every cohort's ATT(g,t) with intervals on one axes, by event time."""
        t = self.att_gt
        for i, g in enumerate(t["cohort"].unique()):
            d = t[t["cohort"] == g]
            draw_intervals(ax, d["event_time"].to_numpy(dtype=float) + 0.08 * i, d["att"],
                           d["lower"], d["upper"], label=f"cohort {g:g}", color=f"C{i}")
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.axvline(-0.5, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xlabel("event time")
        ax.set_ylabel("ATT")
        ax.legend(frameon=False, fontsize="small")

    def plot(self, ax: Any = None) -> Figure:
        """ATT(g,t) with intervals: one panel per cohort (by period) in a new figure, or all
        cohorts by event time in ``ax``; returns the matplotlib Figure (no pyplot state)."""
        if ax is not None:
            return super().plot(ax)
        cohorts = self.att_gt["cohort"].unique()
        fig, axes = rep.new_figure(len(cohorts))
        for ax, g in zip(axes, cohorts, strict=True):
            d = self.att_gt[self.att_gt["cohort"] == g]
            rep.estimate_axes(
                ax,
                d["time"].to_numpy(dtype=float),
                d["att"].to_numpy(),
                d["lower"].to_numpy(),
                d["upper"].to_numpy(),
                ~d["post"].to_numpy(dtype=bool),
                cut=g - 0.5,
                xlabel="time",
                title=f"cohort {g:g}",
            )
        fig.tight_layout()
        return fig
