"""The result of :func:`impact.bayes.hierarchical`: tables, diagnostics, plots, save/load."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from impact.bayes import arviz_io
from impact.bayes.design import Design, ModelConfig
from impact.bayes.fit import SamplingRun
from impact.errors import ConvergenceWarning, EstimationError
from impact.results import Result, new_axes


def gate_message(diagnostics: pd.DataFrame, sampler: str) -> str:
    """A loud, specific message for a fit that failed the gate."""
    row = diagnostics.iloc[0]
    g = arviz_io.GATE
    failed = []
    if not row["r_hat"] <= g["r_hat_max"]:
        failed.append(f"max R-hat {row['r_hat']:.3f} > {g['r_hat_max']}")
    for col in ("ess_bulk", "ess_tail"):
        if not row[col] >= g["ess_min"]:
            failed.append(f"min {col} {row[col]:.0f} < {g['ess_min']:.0f}")
    if row["divergences"] > g["divergences_max"]:
        failed.append(f"{int(row['divergences'])} divergent transition(s)")
    if row["bfmi"] <= g["bfmi_min"]:
        failed.append(f"BFMI {row['bfmi']:.2f} <= {g['bfmi_min']}")
    return (
        "impact.bayes: the posterior FAILED the convergence gate (" + "; ".join(failed) + f"; "
        f"sampler {sampler}). Every table from this fit is marked converged=False: do not report "
        "it; run longer chains (draws/tune), raise target_accept or change the parameterisation."
    )


#: Posterior columns renamed to the protocol's names in ``tidy()``.
TIDY_NAMES = {"mean": "estimate", "sd": "se", "lower_95": "lower", "upper_95": "upper"}


@dataclass
class HierarchicalResult(Result):
    """A fitted Bayesian hierarchical DiD model.

    Attributes
    ----------
    effects
        One row ``group="pooled"`` (the hyper-mean effect) and one per ``effect_by`` group:
        ``group, mean, sd, lower_90, upper_90, lower_95, upper_95, p_positive,
        p_above_threshold, scale`` (+ ``*_pp`` columns for the binomial likelihood),
        ``n_treated``, the support columns of :meth:`tidy` and ``converged``. Intervals are
        equal-tailed.
    extra_effects
        Deviations of the ``effect_by_extra`` groups, or ``None``.
    dynamics
        With ``event_time``: leads and the pooled effect by time since adoption, else ``None``.
    diagnostics
        One row: worst ``r_hat``, ``ess_bulk``, ``ess_tail`` over the parameters of interest,
        ``divergences``, ``bfmi``, ``converged``, ``sampler``, ``wall_seconds``.
    parameter_diagnostics
        One row per scalar parameter (``in_gate`` marks the parameters of interest); computed
        on first access (about 3 s at report scale: no gate depends on it).
    converged
        Whether the gate passed (R-hat <= 1.01, ESS >= 400, no divergences, BFMI > 0.3).
    idata
        The ArviZ ``xarray.DataTree`` (posterior, sample_stats, observed_data, ...).
    config, run
        The model configuration (``config.hash()`` is saved with the posterior) and what ran.
    attempts
        One row per fit (the first and any refits after a failed gate): the parameterisation
        and sampler settings, the gate diagnostics, ``converged`` and ``chosen`` (the fit these
        tables come from: the first that passed, or the best when none did).
    parameterisation
        ``{"effect": {...}}``: centred or not, chosen from the data or by the user, and the
        numbers behind the choice (:mod:`impact.bayes.parameterisation`).
    threshold
        The practical threshold behind ``p_above_threshold``.
    """

    idata: xr.DataTree
    config: ModelConfig
    run: SamplingRun
    effects: pd.DataFrame
    extra_effects: pd.DataFrame | None
    dynamics: pd.DataFrame | None
    diagnostics: pd.DataFrame
    threshold: float
    data_hash: str = ""
    model: Any = field(default=None, repr=False)
    design: Design | None = field(default=None, repr=False)
    #: the gated and the nuisance variables (for :attr:`parameter_diagnostics`)
    gate_variables: tuple[str, ...] = ()
    nuisance_variables: tuple[str, ...] = ()
    #: the per-parameter table once computed (or as loaded)
    stored_parameter_diagnostics: pd.DataFrame | None = field(default=None, repr=False)
    #: every fit that ran: settings, gate diagnostics, ``converged``, ``chosen`` (the result)
    attempts: pd.DataFrame | None = None
    #: how each level was parameterised and why (:class:`~impact.bayes.parameterisation.
    #: LevelChoice` as dicts, by level)
    parameterisation: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def parameter_diagnostics(self) -> pd.DataFrame:
        """R-hat, bulk and tail ESS of every scalar parameter (``in_gate`` marks the gated)."""
        if self.stored_parameter_diagnostics is None:
            self.stored_parameter_diagnostics = arviz_io.parameter_diagnostics(
                self.idata, list(self.gate_variables), list(self.nuisance_variables)
            )
        return self.stored_parameter_diagnostics

    @property
    def converged(self) -> bool:
        """Whether the convergence gate passed."""
        return bool(self.diagnostics["converged"].iloc[0])

    @property
    def sampler(self) -> str:
        """The NUTS implementation that ran (``"nutpie"``, ``"pymc"`` or ``"numpyro"``)."""
        return self.run.sampler

    def _tidy(self) -> pd.DataFrame:
        """Long table of all effects: ``term`` (effect / extra_effect / event_lead /
        event_lag), ``estimate`` (posterior mean), ``se`` (posterior sd), ``lower``, ``upper``
        (95% equal-tailed interval), the support columns, then ``group``, the other posterior
        columns (``lower_90``, ``upper_90``, ``p_positive``, ...), ``converged``, ``sampler``
        and the model-configuration hash.

        Support (where the table has it, see :func:`impact.bayes.effects.support_table`):
        departments and persons of the group's department-years; treated side treatment > 0,
        control side treatment 0.
        """
        parts = [self.effects.assign(term="effect")]
        if self.extra_effects is not None:
            parts.append(self.extra_effects.assign(term="extra_effect"))
        if self.dynamics is not None:
            dyn = self.dynamics.assign(
                group=self.dynamics["event_time"].astype(str),
                term="event_" + self.dynamics["term"],
            )
            parts.append(dyn.drop(columns="event_time"))
        out = pd.concat(parts, ignore_index=True).rename(columns=TIDY_NAMES)
        out.insert(0, "term", out.pop("term"))
        first = ["term", "estimate", "se", "lower", "upper"]
        support = [c for c in ("n_units", "n_persons", "n_units_treated", "n_units_control",
                               "n_persons_treated", "n_persons_control", "df_resid") if c in out]
        out = out[first + support + [c for c in out.columns if c not in first + support]]
        out["sampler"] = self.run.sampler
        out["config_hash"] = self.config.hash()
        out["converged"] = self.converged
        return out

    _summary_columns = ("group", "lower_90", "upper_90", "p_positive", "p_above_threshold",
                        "mean_pp", "lower_95_pp", "upper_95_pp")

    def _summary_title(self) -> str:
        return (f"Bayesian hierarchical DiD: {self.config.treatment} on {self.config.outcome} "
                f"({self.config.likelihood}); posterior mean (estimate), sd (se), 95% and 90% "
                "equal-tailed intervals")

    def _summary_notes(self) -> tuple[str, ...]:
        d = self.diagnostics.iloc[0]
        gate = "passed" if self.converged else "FAILED: do not report"
        return (f"sampler {self.run.sampler}; max R-hat {d['r_hat']:.3f}, min ESS bulk "
                f"{d['ess_bulk']:.0f}, tail {d['ess_tail']:.0f}, divergences "
                f"{int(d['divergences'])}, BFMI {d['bfmi']:.2f}; convergence gate {gate}",)

    def summary(self) -> Any:
        """A :class:`~impact.results.Summary`: the effects (pooled first) with the diagnostics
        side by side in ``.frame`` (``r_hat, ess_bulk, ess_tail, divergences, bfmi,
        converged``) and in the notes."""
        out = super().summary()
        frame = out.frame[out.frame["term"] == "effect"].reset_index(drop=True)
        d = self.diagnostics.iloc[0]
        frame = frame.assign(**{c: d[c] for c in ("r_hat", "ess_bulk", "ess_tail",
                                                  "divergences", "bfmi")},
                             converged=self.converged)
        return dataclasses.replace(out, frame=frame)

    def plot(self, ax: Any = None, scale: str = "model") -> Any:
        """Forest plot of the effects (95% and 90% intervals); returns the matplotlib Figure.

        ``scale="pp"`` plots the percentage-point effects of a binomial model.
        """
        sfx = "_pp" if scale == "pp" else ""
        if f"mean{sfx}" not in self.effects:
            raise EstimationError("impact.bayes: scale='pp' needs a binomial model")
        tab = self.effects.iloc[::-1].reset_index(drop=True)
        fig, ax = new_axes(ax, figsize=(6, 0.25 * len(tab) + 1.5))
        pos = range(len(tab))
        ax.hlines(pos, tab[f"lower_95{sfx}"], tab[f"upper_95{sfx}"], color="0.6", lw=1)
        ax.hlines(pos, tab[f"lower_90{sfx}"], tab[f"upper_90{sfx}"], color="0.2", lw=2.5)
        colours = ["C3" if g == "pooled" else "C0" for g in tab["group"]]
        ax.scatter(tab[f"mean{sfx}"], pos, color=colours, zorder=3, s=15)
        ax.axvline(0, color="0.5", ls=":", lw=1)
        ax.set_yticks(list(pos), tab["group"])
        unit = {"pp": "percentage points", "model": tab["scale"].iloc[0]}["pp" if sfx else "model"]
        title = f"{self.config.treatment} on {self.config.outcome} ({unit})"
        if not self.converged:
            title += "  [NOT CONVERGED]"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("effect: posterior mean, 90% and 95% intervals")
        return fig

    def plot_ppc(self, num_samples: int = 50, seed: int | None = None) -> Any:
        """Posterior predictive check (needs the fitted model, i.e. not after :func:`load`).

        The normal and Student-t models are on the standardised outcome. Returns the ArviZ
        ``PlotCollection``.
        """
        import pymc as pm

        if self.model is None:
            raise EstimationError("impact.bayes: posterior predictive checks need the fitted model")
        if not arviz_io.has_group(self.idata, "posterior_predictive"):
            with self.model:
                pm.sample_posterior_predictive(
                    self.idata, extend_inferencedata=True, random_seed=seed, progressbar=False
                )
        return arviz_io.plot_predictive(self.idata, "posterior_predictive", num_samples)

    def save(self, path: str | Path) -> Path:
        """Save the posterior and the tables to netCDF (``.zarr`` paths: zarr), with the model
        configuration and its hash; read back with :func:`impact.bayes.load`."""
        meta = {
            "config": self.config.to_dict(),
            "config_hash": self.config.hash(),
            "data_hash": self.data_hash,
            "run": self.run.to_dict(),
            "threshold": self.threshold,
            "effects": self.effects.to_json(orient="split"),
            "extra_effects": None
            if self.extra_effects is None
            else self.extra_effects.to_json(orient="split"),
            "dynamics": None if self.dynamics is None else self.dynamics.to_json(orient="split"),
            "diagnostics": self.diagnostics.to_json(orient="split"),
            "parameter_diagnostics": self.parameter_diagnostics.to_json(orient="split"),
            "attempts": None if self.attempts is None else self.attempts.to_json(orient="split"),
            "parameterisation": self.parameterisation,
        }
        idata = self.idata
        for group in ("posterior_predictive", "log_likelihood"):
            if arviz_io.has_group(idata, group):
                idata = idata.drop_nodes(group)
        return arviz_io.save(idata, path, meta)


def _frame(text: str | None) -> pd.DataFrame | None:
    return None if text is None else pd.read_json(StringIO(text), orient="split")


def load(path: str | Path, config_hash: str | None = None) -> HierarchicalResult:
    """Read a result written by :meth:`HierarchicalResult.save`.

    Parameters
    ----------
    path
        The netCDF (or ``.zarr``) file.
    config_hash
        If given, the stored model-configuration hash must equal it.

    Raises
    ------
    impact.EstimationError
        The file holds no ``impact.bayes`` result, the stored hash does not match its stored
        configuration (edited file) or ``config_hash``.
    """
    idata, meta = arviz_io.load(path)
    if "config" not in meta:
        raise EstimationError(f"impact.bayes: {path} does not hold an impact.bayes result")
    config = ModelConfig.from_dict(dict(meta["config"]))
    if config.hash() != meta["config_hash"]:
        raise EstimationError(
            f"impact.bayes: stored configuration hash {meta['config_hash']} does not match the "
            f"stored configuration ({config.hash()}): the file was altered"
        )
    if config_hash is not None and config_hash != meta["config_hash"]:
        raise EstimationError(
            f"impact.bayes: {path} was fitted with configuration {meta['config_hash']}, "
            f"not {config_hash}"
        )
    effects = _frame(meta["effects"])
    diagnostics = _frame(meta["diagnostics"])
    params = _frame(meta["parameter_diagnostics"])
    assert effects is not None and diagnostics is not None and params is not None
    for tab in (effects, diagnostics):
        if "group" in tab:
            tab["group"] = tab["group"].astype(str)
    return HierarchicalResult(
        idata=idata,
        config=config,
        run=SamplingRun(**meta["run"]),
        effects=effects,
        extra_effects=_frame(meta["extra_effects"]),
        dynamics=_frame(meta.get("dynamics")),
        diagnostics=diagnostics,
        threshold=float(meta["threshold"]),
        data_hash=str(meta.get("data_hash", "")),
        gate_variables=tuple(params.loc[params["in_gate"], "variable"].unique()),
        stored_parameter_diagnostics=params,
        attempts=_frame(meta.get("attempts")),
        parameterisation=dict(meta.get("parameterisation") or {}),
    )


def warn_if_not_converged(diagnostics: pd.DataFrame, sampler: str) -> None:
    """Emit a :class:`ConvergenceWarning` when the gate failed."""
    if not bool(diagnostics["converged"].iloc[0]):
        warnings.warn(gate_message(diagnostics, sampler), ConvergenceWarning, stacklevel=3)


__all__ = ["ConvergenceWarning", "HierarchicalResult", "load", "warn_if_not_converged"]
