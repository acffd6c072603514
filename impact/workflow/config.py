"""The study as configuration: a typed, validated reading of a TOML file (``analyses/config/``).

:func:`load` returns a frozen :class:`StudyConfig` with one dataclass per TOML table
(``[run]``, ``[study]``, ``[did]`` with one sub-table per estimator, ``[bayes]``, ``[disclosure]``,
``[followup]``, ``[data]``). Every table and key is checked before anything runs: an unknown table or key, a value of
the wrong type or a value outside what is allowed raises :class:`impact.errors.ConfigError`, whose
message names the key (``[run].scale``) and what is allowed. A key left out takes the default written
in the dataclass, which is also what ``analyses/config/default.toml`` spells out.

The defaults are those of a run on the simulator; ``analyses/config/registers_template.toml`` is the
starting point for real registers (it sets ``[data].root``; no path is hard-coded in the package).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tomllib
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from impact.errors import ConfigError

__all__ = [
    "AttGtConfig",
    "BaconConfig",
    "BayesConfig",
    "DataConfig",
    "DidConfig",
    "DisclosureConfig",
    "DoseResponseConfig",
    "FollowupConfig",
    "PrimaryConfig",
    "RunSettings",
    "StudyConfig",
    "StudySettings",
    "TwfeConfig",
    "config_hash",
    "load",
    "to_dict",
]

SCALES = ("small", "report", "national")
WORLDS = ("factual", "placebo")
TOOLS = ("flexible_letting", "municipal_referral")
OUTCOMES = ("share_employed", "share_qualifying_edu", "mean_household_income", "share_non_western")
#: Statistics Denmark's floor for the number of persons behind a released cell.
MIN_N_FLOOR = 3


def _opt(default: Any, doc: str, *, allowed: tuple[Any, ...] | None = None,
         low: float | None = None, high: float | None = None, low_open: bool = False,
         high_open: bool = False, nonempty: bool = False) -> Any:
    """A dataclass field with its validation rules in ``metadata``."""
    meta = {"doc": doc, "allowed": allowed, "low": low, "high": high, "low_open": low_open,
            "high_open": high_open, "nonempty": nonempty}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunSettings:
    """``[run]``: seed, simulator scale and bootstrap size of a run."""

    seed: int = _opt(0, "seed of the simulator and of every random step", low=0)
    scale: str = _opt("report", "simulator scale when no data root is given", allowed=SCALES)
    effect_scale: float = _opt(1.0, "simulator effect multiplier (0 = the tools do nothing)", low=0)
    n_boot: int = _opt(999, "multiplier-bootstrap draws of att_gt (0 = analytic SEs)", low=0)
    world: str = _opt("factual", "simulator world: factual, or placebo (no effect anywhere, the "
                      "real adoption and lettings)", allowed=WORLDS)
    primary_boot: int = _opt(199, "cluster-bootstrap replications of the primary specification",
                             low=0)


@dataclass(frozen=True)
class StudySettings:
    """``[study]``: the design (tools, outcomes, covariates, cluster, interval level, figures)."""

    tools: tuple[str, ...] = _opt(TOOLS, "letting tools studied", allowed=TOOLS, nonempty=True)
    outcomes: tuple[str, ...] = _opt(OUTCOMES, "stock-composition outcomes (panel columns)",
                                     nonempty=True)
    covariates: tuple[str, ...] = _opt(
        ("waiting_list_market", "supported_department"),
        "covariates of the conditional att_gt specification (columns of the prepared panel, "
        "impact.estimates.prepare; empty = unconditional only)")
    cluster: str = _opt("plan_id", "cluster of the standard errors (panel column; a department "
                        "without a value is its own cluster)")
    alpha: float = _opt(0.05, "1 - level of every interval", low=0, high=1, low_open=True,
                        high_open=True)
    event_study_figures: tuple[str, ...] = _opt(
        ("share_employed",), "outcomes whose event studies are drawn (a subset of outcomes)")


@dataclass(frozen=True)
class PrimaryConfig:
    """``[did.primary]``: the primary specification (imputation DiD, every tool at once)."""

    onset_lag: int = _opt(1, "years from the year a tool is agreed to the first 1-January stock "
                          "it can move", low=0)
    baselines: tuple[str, ...] = _opt(
        OUTCOMES, "measures whose first-year value enters the untreated model with year-specific "
                  "slopes (panel columns; empty = none)")
    strata: tuple[str, ...] = _opt(
        ("market_type", "supported_department"),
        "year effects per cell of these department columns (prepared panel); a column with "
        "missing values is left out, with a warning in the problems")
    effect_by: str = _opt("market_type", "department column that separates the effects of "
                          "overlapping tools (empty = none; left out when it has missing values)")
    placebo_shifts: tuple[int, ...] = _opt(
        (2,), "placebo in time: adoption moved this many years earlier (empty = none)", low=1)
    min_treated_clusters: int = _opt(20, "fewer treated clusters and the headline's verdict is "
                                     "'too few clusters'", low=1)
    pretest_alpha: float = _opt(0.05, "level of the pre-trend test behind the verdict", low=0,
                                high=1, low_open=True, high_open=True)


@dataclass(frozen=True)
class AttGtConfig:
    """``[did.att_gt]``: Callaway-Sant'Anna options."""

    control: str = _opt("never", "control group", allowed=("never", "not_yet"))
    method: str = _opt("dr", "doubly robust, IPW or outcome regression", allowed=("dr", "ipw", "reg"))
    anticipation: int = _opt(0, "periods of anticipation", low=0)
    base_period: str = _opt("varying", "base period", allowed=("varying", "universal"))
    unbalanced: str = _opt("drop", "units missing a year", allowed=("error", "drop"))
    cband: bool = _opt(True, "uniform confidence bands over event times")
    aggregations: tuple[str, ...] = _opt(("simple", "dynamic", "group"), "aggregations tabled",
                                         allowed=("simple", "dynamic", "group", "calendar"),
                                         nonempty=True)


@dataclass(frozen=True)
class TwfeConfig:
    """``[did.twfe]``: two-way fixed effects."""

    treatments: tuple[str, ...] = _opt(
        ("in_force", "exposure"),
        "treatments (column <treatment>_<tool>): binary adoption, cumulative exposure (lettings "
        "through the tool up to t-1 per dwelling) and/or same-year intensity of use",
        allowed=("in_force", "exposure", "intensity"), nonempty=True)


@dataclass(frozen=True)
class DoseResponseConfig:
    """``[did.dose_response]``: continuous intensity of use (CGBS 2024)."""

    tools: tuple[str, ...] = _opt(("flexible_letting",), "tools whose intensity is modelled",
                                  allowed=TOOLS)
    dose: str = _opt("agreed_share_at_adoption", "dose column <dose>_<tool> (fixed when the "
                     "plan was agreed; 0 for never-treated departments)")
    n_boot: int = _opt(199, "bootstrap draws of the dose-response bands", low=0)
    method: str = _opt("parametric", "B-spline curve or dose bins",
                       allowed=("parametric", "binned"))
    degree: int = _opt(1, "B-spline degree of the dose-response curve", low=1)
    num_knots: int = _opt(0, "interior knots of the dose-response curve", low=0)
    bins: int = _opt(4, "dose bins of method = \"binned\"", low=1)
    control: str = _opt("not_yet", "control group", allowed=("never", "not_yet"))


@dataclass(frozen=True)
class BaconConfig:
    """``[did.bacon]``: Goodman-Bacon decomposition of the binary TWFE estimate."""

    outcomes: tuple[str, ...] = _opt(("share_employed",), "outcomes decomposed (empty = none)")


@dataclass(frozen=True)
class DidConfig:
    """``[did]``: one sub-table per estimator."""

    att_gt: AttGtConfig = field(default_factory=AttGtConfig)
    twfe: TwfeConfig = field(default_factory=TwfeConfig)
    dose_response: DoseResponseConfig = field(default_factory=DoseResponseConfig)
    bacon: BaconConfig = field(default_factory=BaconConfig)
    primary: PrimaryConfig = field(default_factory=PrimaryConfig)


@dataclass(frozen=True)
class BayesConfig:
    """``[bayes]``: the hierarchical model of an intensity effect."""

    enabled: bool = _opt(True, "fit the Bayesian hierarchical model")
    outcome: str = _opt("share_employed", "outcome (panel column)")
    treatment: str = _opt("exposure_flexible_letting",
                          "treatment column: exposure (lettings through the tool up to t-1 per "
                          "dwelling, what can have moved the 1-January stock of t) or intensity")
    likelihood: str = _opt("normal", "likelihood of the outcome", allowed=("normal", "binomial"))
    trials: str = _opt("", "trials column of the binomial likelihood (empty = none)")
    draws: int = _opt(1000, "posterior draws per chain", low=1)
    tune: int = _opt(1000, "tuning steps per chain", low=0)
    chains: int = _opt(4, "chains", low=1)
    threshold: float = _opt(0.01, "effect size of the posterior probabilities P(|effect| > t)",
                            low=0)
    target_accept: float = _opt(0.95, "NUTS target acceptance", low=0, high=1, low_open=True,
                                high_open=True)
    sampler: str = _opt("auto", "MCMC backend", allowed=("auto", "nutpie", "pymc", "numpyro"))
    effect_by: str = _opt("municipality_id", "groups with their own, partially pooled effect "
                          "(reported pooled and per group)",
                          allowed=("municipality_id", "market_type"))
    effect_mean_by: str = _opt("market_type", "the effect_by groups are pooled towards a mean "
                               "per category of this column (empty = one common mean; ignored "
                               "when it is effect_by itself)", allowed=("market_type", ""))
    unit_effects: bool = _opt(False, "each treated department's effect deviates from its "
                              "group's (the group effect is the mean of its departments')")
    effect_profile: bool = _opt(True, "the effect per unit of exposure varies with years since "
                                "adoption by one shared profile (the implied ATTs are then "
                                "the model's mean effect over their department-years)")
    untreated: str = _opt("primary", "untreated model: \"primary\" (the primary DiD's strata "
                          "year effects, baseline year slopes, the other tools' exposures as "
                          "controls) or \"twfe\" (department and year effects only)",
                          allowed=("primary", "twfe"))
    errors: str = _opt("iid", "errors within a department (normal likelihood): \"ar1\" or "
                       "\"iid\"", allowed=("ar1", "iid"))
    weighted: bool = _opt(False, "normal likelihood: error scale from the count behind each "
                          "share (its base, e.g. residents 18-64 in the labour force)")


@dataclass(frozen=True)
class DisclosureConfig:
    """``[disclosure]``: thresholds of the output checks (Statistics Denmark's rules as floors)."""

    min_n: int = _opt(5, f"fewest persons behind a released cell (never below {MIN_N_FLOOR})",
                      low=MIN_N_FLOOR)
    dominance_n: int = _opt(2, "number of largest contributions in the dominance rule", low=1,
                            high=2)
    dominance_k: float = _opt(0.85, "largest share of a magnitude the n largest may hold", low=0,
                              high=1, low_open=True)
    min_departments: int = _opt(3, "fewest departments on each side of a model comparison", low=3)
    min_residual_df: int = _opt(10, "fewest residual degrees of freedom of a released model",
                                low=10)
    protection: float = _opt(0.10, "protection width of a suppressed magnitude, share of its value",
                             low=0, high=1, low_open=True)


@dataclass(frozen=True)
class FollowupConfig:
    """``[followup]``: the generated follow-up study design (:func:`impact.followup.design`)."""

    enabled: bool = _opt(True, "design the follow-up study")
    outcome: str = _opt("share_employed", "outcome of the design (panel column)")
    tool: str = _opt("flexible_letting", "letting tool of the design", allowed=TOOLS)
    effect_of_interest: float = _opt(0.02, "effect of policy interest on the outcome's scale",
                                     low=0, low_open=True)
    n_reps: int = _opt(200, "replications of the simulation check (0 = none)", low=0)
    subgroups: tuple[str, ...] = _opt(
        ("market_type", "vulnerability"),
        "subgroup variables of the design by stratum (power and sample size per subgroup; "
        "empty = none)", allowed=("market_type", "vulnerability"))


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: where the registers are (empty root = the simulator)."""

    root: str = _opt("", "folder of the register files; '~' and $VARS are expanded, a relative "
                     "path is taken from the config file's folder")


@dataclass(frozen=True)
class StudyConfig:
    """A validated study configuration (see :func:`load`).

    The ``[run]`` settings and the Bayes settings are also exposed under the names of the old
    ``impact.pipeline.RunConfig`` (``seed``, ``scale``, ``effect_scale``, ``n_boot``, ``world``,
    ``primary_boot``, ``bayes``, ``bayes_draws``, ``bayes_tune``, ``bayes_chains``).
    """

    run: RunSettings = field(default_factory=RunSettings)
    study: StudySettings = field(default_factory=StudySettings)
    did: DidConfig = field(default_factory=DidConfig)
    bayes_model: BayesConfig = field(default_factory=BayesConfig)
    disclosure: DisclosureConfig = field(default_factory=DisclosureConfig)
    followup: FollowupConfig = field(default_factory=FollowupConfig)
    data: DataConfig = field(default_factory=DataConfig)
    source: str = ""

    # the RunConfig names -------------------------------------------------------------------
    @property
    def seed(self) -> int:
        """``[run].seed``."""
        return self.run.seed

    @property
    def scale(self) -> str:
        """``[run].scale``."""
        return self.run.scale

    @property
    def effect_scale(self) -> float:
        """``[run].effect_scale``."""
        return self.run.effect_scale

    @property
    def n_boot(self) -> int:
        """``[run].n_boot``."""
        return self.run.n_boot

    @property
    def world(self) -> str:
        """``[run].world``."""
        return self.run.world

    @property
    def primary_boot(self) -> int:
        """``[run].primary_boot``."""
        return self.run.primary_boot

    @property
    def bayes(self) -> bool:
        """``[bayes].enabled``."""
        return self.bayes_model.enabled

    @property
    def bayes_draws(self) -> int:
        """``[bayes].draws``."""
        return self.bayes_model.draws

    @property
    def bayes_tune(self) -> int:
        """``[bayes].tune``."""
        return self.bayes_model.tune

    @property
    def bayes_chains(self) -> int:
        """``[bayes].chains``."""
        return self.bayes_model.chains

    @property
    def data_root(self) -> Path | None:
        """``[data].root`` resolved (None = simulate)."""
        return Path(self.data.root) if self.data.root else None


#: TOML table name -> attribute of StudyConfig ("bayes" is a property name there).
_TABLES = {"run": "run", "study": "study", "did": "did", "bayes": "bayes_model",
           "disclosure": "disclosure", "followup": "followup", "data": "data"}


def load(path: str | Path | None = None) -> StudyConfig:
    """Read and validate a study configuration.

    Parameters
    ----------
    path
        A TOML file; None gives the defaults (the simulator study of ``default.toml``).

    Returns
    -------
    StudyConfig

    Raises
    ------
    ConfigError
        The file cannot be read or parsed, or a table or key is unknown, of the wrong type or outside
        what is allowed; the message names ``[table].key`` and what is allowed.
    """
    if path is None:
        return StudyConfig()
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    return from_dict(raw, source=str(path))


def from_dict(raw: dict[str, Any], *, source: str = "<dict>") -> StudyConfig:
    """Validate a parsed TOML document (see :func:`load`)."""
    unknown = sorted(set(raw) - set(_TABLES))
    if unknown:
        raise ConfigError(f"{source}: unknown table(s) {', '.join(f'[{u}]' for u in unknown)}; "
                          f"allowed: {', '.join(f'[{t}]' for t in _TABLES)}", key=unknown[0])
    parts: dict[str, Any] = {}
    for table, attr in _TABLES.items():
        cls = typing.get_type_hints(StudyConfig)[attr]
        value = raw.get(table, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: [{table}] must be a table, got {_show(value)}", key=table)
        parts[attr] = _build(cls, value, table, source)
    cfg = StudyConfig(**parts, source=source)
    if cfg.data.root:
        parts["data"] = DataConfig(root=_resolve_root(cfg.data.root, source))
        cfg = StudyConfig(**parts, source=source)
    _cross_check(cfg, source)
    return cfg


def _build(cls: type, raw: dict[str, Any], prefix: str, source: str) -> Any:
    """One dataclass from its TOML table, checking every key."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"{source}: unknown key [{prefix}].{unknown[0]}; allowed in [{prefix}]: "
                          f"{', '.join(names)}", key=f"{prefix}.{unknown[0]}")
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in raw:
            continue
        typ = hints[f.name]
        key = f"{prefix}.{f.name}"
        if is_dataclass(typ):
            if not isinstance(raw[f.name], dict):
                raise ConfigError(f"{source}: [{key}] must be a table, got {_show(raw[f.name])}",
                                  key=key)
            values[f.name] = _build(typ, raw[f.name], key, source)
        else:
            values[f.name] = _check(raw[f.name], typ, f.metadata, key, source)
    return cls(**values)


def _check(value: Any, typ: Any, meta: Any, key: str, source: str) -> Any:
    """One scalar or list value against its type and rules."""
    where = f"{source}: [{key.rsplit('.', 1)[0]}].{key.rsplit('.', 1)[1]}"
    allowed = meta.get("allowed")
    if typing.get_origin(typ) is tuple and typing.get_args(typ)[0] is int:
        if not isinstance(value, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{where} must be a list of integers, got {_show(value)}", key=key)
        if meta.get("nonempty") and not value:
            raise ConfigError(f"{where} must not be empty", key=key)
        if len(set(value)) != len(value):
            raise ConfigError(f"{where} lists a value twice: {_show(value)}", key=key)
        for v in value:
            _check(v, int, meta, key, source)
        return tuple(value)
    if typing.get_origin(typ) is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings, got {_show(value)}", key=key)
        if meta.get("nonempty") and not value:
            raise ConfigError(f"{where} must not be empty", key=key)
        if len(set(value)) != len(value):
            raise ConfigError(f"{where} lists a name twice: {_show(value)}", key=key)
        for v in value:
            if allowed is not None and v not in allowed:
                raise ConfigError(f"{where}: {v!r} is not allowed; allowed: "
                                  f"{', '.join(allowed)}", key=key)
            if allowed is None and not v.isidentifier():
                raise ConfigError(f"{where}: {v!r} is not a column name", key=key)
        return tuple(value)
    ok = {bool: isinstance(value, bool),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, int | float) and not isinstance(value, bool),
          str: isinstance(value, str)}[typ]
    if not ok:
        raise ConfigError(f"{where} must be {_TYPE_WORDS[typ]}, got {_show(value)}", key=key)
    if typ is float:
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, got {value}", key=key)
    if allowed is not None and value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not allowed; allowed: "
                          f"{', '.join(map(str, allowed))}", key=key)
    low, high = meta.get("low"), meta.get("high")
    if low is not None and (value < low or (meta.get("low_open") and value == low)):
        rel = ">" if meta.get("low_open") else ">="
        raise ConfigError(f"{where} must be {rel} {low}, got {value}", key=key)
    if high is not None and (value > high or (meta.get("high_open") and value == high)):
        rel = "<" if meta.get("high_open") else "<="
        raise ConfigError(f"{where} must be {rel} {high}, got {value}", key=key)
    return value


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _show(value: Any) -> str:
    """A value as the user wrote it, with its TOML type."""
    kind = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)
    return f"{kind} {json.dumps(value, default=str)}"


def _resolve_root(root: str, source: str) -> str:
    """Expand ``~`` and ``$VARS``; take a relative path from the config file's folder."""
    expanded = os.path.expanduser(os.path.expandvars(root))
    if "$" in expanded:
        raise ConfigError(f"{source}: [data].root {root!r} names an environment variable that is "
                          "not set", key="data.root")
    p = Path(expanded)
    if not p.is_absolute() and source not in ("", "<dict>"):
        p = Path(source).parent / p
    return str(p)


def _cross_check(cfg: StudyConfig, source: str) -> None:
    """Rules that tie keys of different tables together."""
    extra = sorted(set(cfg.did.dose_response.tools) - set(cfg.study.tools))
    if extra:
        raise ConfigError(f"{source}: [did.dose_response].tools names {', '.join(extra)}, which "
                          f"[study].tools does not study ({', '.join(cfg.study.tools)})",
                          key="did.dose_response.tools")
    b = cfg.bayes_model
    if b.likelihood == "binomial" and not b.trials:
        raise ConfigError(f"{source}: [bayes].trials must name the trials column when "
                          "[bayes].likelihood = \"binomial\"", key="bayes.trials")
    extra = sorted(set(cfg.study.event_study_figures) - set(cfg.study.outcomes))
    if extra:
        raise ConfigError(f"{source}: [study].event_study_figures names {', '.join(extra)}, which "
                          f"[study].outcomes does not study ({', '.join(cfg.study.outcomes)})",
                          key="study.event_study_figures")
    for key, name in (("study.cluster", cfg.study.cluster),
                      ("did.dose_response.dose", cfg.did.dose_response.dose),
                      ("bayes.outcome", cfg.bayes_model.outcome),
                      ("bayes.treatment", cfg.bayes_model.treatment),
                      ("followup.outcome", cfg.followup.outcome)):
        if not name.isidentifier():
            table, _, leaf = key.rpartition(".")
            raise ConfigError(f"{source}: [{table}].{leaf}: {name!r} is not a column name",
                              key=key)
    effect_by = cfg.did.primary.effect_by
    if effect_by and not effect_by.isidentifier():
        raise ConfigError(f"{source}: [did.primary].effect_by: {effect_by!r} is not a column name",
                          key="did.primary.effect_by")


def to_dict(cfg: StudyConfig) -> dict[str, Any]:
    """The configuration as plain TOML-shaped data (tables keyed by their TOML names)."""

    def plain(obj: Any) -> Any:
        if is_dataclass(obj):
            return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}
        if isinstance(obj, tuple):
            return list(obj)
        return obj

    return {table: plain(getattr(cfg, attr)) for table, attr in _TABLES.items()}


def config_hash(cfg: StudyConfig) -> str:
    """SHA-256 of the canonical JSON of :func:`to_dict` (the file's path and comments play no part)."""
    text = json.dumps(to_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def describe_keys() -> list[dict[str, Any]]:
    """Every key with its default, rules and description (documentation and tests)."""
    rows: list[dict[str, Any]] = []

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if is_dataclass(hints[f.name]):
                walk(hints[f.name], f"{prefix}.{f.name}")
                continue
            default = f.default if f.default is not MISSING else None
            rows.append({"key": f"{prefix}.{f.name}", "default": default,
                         **{k: v for k, v in f.metadata.items() if v not in (None, False)}})

    hints = typing.get_type_hints(StudyConfig)
    for table, attr in _TABLES.items():
        walk(hints[attr], table)
    return rows
