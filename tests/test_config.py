"""The typed study configuration: defaults, the files under analyses/config/, and every kind of bad
config ending in a ConfigError that names the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import impact
from impact import config
from impact.errors import ConfigError, ImpactError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "analyses" / "config"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "study.toml"
    p.write_text(text)
    return p


def test_config_error_is_exported_and_an_impact_error():
    assert impact.ConfigError is ConfigError
    assert issubclass(ConfigError, ImpactError)


def test_default_file_is_the_default_and_writes_every_key():
    cfg = config.load(CONFIG_DIR / "default.toml")
    assert config.to_dict(cfg) == config.to_dict(config.load(None))
    assert config.config_hash(cfg) == config.config_hash(config.StudyConfig())
    with open(CONFIG_DIR / "default.toml", "rb") as fh:
        raw = tomllib.load(fh)

    def keys(d: dict, prefix: str = "") -> set[str]:
        out: set[str] = set()
        for k, v in d.items():
            out |= keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
        return out

    assert keys(raw) == {r["key"] for r in config.describe_keys()}


def test_run_config_names_are_exposed():
    cfg = config.load(None)
    assert (cfg.seed, cfg.scale, cfg.effect_scale, cfg.n_boot) == (0, "report", 1.0, 999)
    assert (cfg.bayes, cfg.bayes_draws, cfg.bayes_tune, cfg.bayes_chains) == (True, 1000, 1000, 4)
    assert cfg.data_root is None
    assert cfg.study.cluster == "plan_id"
    assert (cfg.disclosure.min_n, cfg.disclosure.dominance_n, cfg.disclosure.dominance_k) == (
        5, 2, 0.85)


def test_values_are_read_and_typed(tmp_path):
    cfg = config.load(write(tmp_path, """
[run]
seed = 7
scale = "small"
effect_scale = 2
[study]
tools = ["flexible_letting"]
outcomes = ["share_employed"]
covariates = []
[did.att_gt]
control = "not_yet"
[bayes]
enabled = false
likelihood = "binomial"
trials = "n_labour_force_18_64"
[disclosure]
min_n = 10
"""))
    assert cfg.seed == 7 and cfg.scale == "small"
    assert cfg.effect_scale == 2.0 and isinstance(cfg.effect_scale, float)
    assert cfg.study.tools == ("flexible_letting",) and cfg.study.covariates == ()
    assert cfg.did.att_gt.control == "not_yet" and cfg.did.att_gt.method == "dr"
    assert cfg.bayes is False and cfg.bayes_model.trials == "n_labour_force_18_64"
    assert cfg.disclosure.min_n == 10
    assert config.config_hash(cfg) != config.config_hash(config.StudyConfig())
    with pytest.raises(AttributeError):
        cfg.run.seed = 1  # type: ignore[misc]  # frozen


BAD = [
    ('[run]\nsaed = 1\n', "run.saed", "allowed in [run]: seed, scale"),
    ('[run]\nn_boot = "49"\n', "run.n_boot", 'must be an integer, got string "49"'),
    ('[run]\nn_boot = 49.0\n', "run.n_boot", "must be an integer"),
    ('[run]\nn_boot = -1\n', "run.n_boot", "must be >= 0"),
    ('[run]\nseed = true\n', "run.seed", "must be an integer, got boolean"),
    ('[run]\nscale = "big"\n', "run.scale", "allowed: small, report, national"),
    ('[run]\neffect_scale = "1"\n', "run.effect_scale", "must be a number"),
    ('[run]\neffect_scale = nan\n', "run.effect_scale", "finite"),
    ('run = 3\n', "run", "must be a table"),
    ('[runs]\nseed = 1\n', "runs", "unknown table(s) [runs]"),
    ('[study]\ntools = "flexible_letting"\n', "study.tools", "must be a list of strings"),
    ('[study]\ntools = []\n', "study.tools", "must not be empty"),
    ('[study]\ntools = ["flexible_leting"]\n', "study.tools", "allowed: flexible_letting"),
    ('[study]\noutcomes = ["share employed"]\n', "study.outcomes", "not a column name"),
    ('[study]\noutcomes = ["a", "a"]\n', "study.outcomes", "twice"),
    ('[study]\nalpha = 1.0\n', "study.alpha", "must be < 1"),
    ('[study]\nestimator = "att_gt"\n', "study.estimator", "unknown key [study].estimator"),
    ('[study]\ncluster = "plan id"\n', "study.cluster", "not a column name"),
    ('[study]\noutcomes = ["share_non_western"]\n', "study.event_study_figures",
     "[study].outcomes does not study"),
    ('[did.primary]\nplacebo_shifts = [0]\n', "did.primary.placebo_shifts", "must be >= 1"),
    ('[did.primary]\nplacebo_shifts = ["2"]\n', "did.primary.placebo_shifts",
     "must be a list of integers"),
    ('[did.primary]\nplacebo_shifts = [2, 2]\n', "did.primary.placebo_shifts", "twice"),
    ('[did.primary]\nonset_lag = -1\n', "did.primary.onset_lag", "must be >= 0"),
    ('[did.primary]\npretest_alpha = 0\n', "did.primary.pretest_alpha", "must be > 0"),
    ('[did.primary]\nstrata = "market_type"\n', "did.primary.strata", "must be a list of strings"),
    ('[did.primary]\neffect_by = "market type"\n', "did.primary.effect_by", "not a column name"),
    ('[did.primary]\nbaseline = []\n', "did.primary.baseline", "allowed in [did.primary]: onset_lag"),
    ('[did.twfe]\ntreatments = ["dose"]\n', "did.twfe.treatments",
     "allowed: in_force, exposure, intensity"),
    ('[did.att_gt]\naggregations = ["weekly"]\n', "did.att_gt.aggregations", "allowed: simple"),
    ('[did.dose_response]\nmethod = "kernel"\n', "did.dose_response.method",
     "allowed: parametric, binned"),
    ('[did.bacon]\noutcomes = "share_employed"\n', "did.bacon.outcomes",
     "must be a list of strings"),
    ('[did]\nn_boot = 9\n', "did.n_boot", "allowed in [did]: att_gt, twfe"),
    ('[did.att_gt]\nmethod = "ml"\n', "did.att_gt.method", "allowed: dr, ipw, reg"),
    ('[did.att_gt]\ncband = 1\n', "did.att_gt.cband", "must be true or false"),
    ('[did]\natt_gt = 1\n', "did.att_gt", "must be a table"),
    ('[did.dose_response]\nn_boot = "199"\n', "did.dose_response.n_boot", "must be an integer"),
    ('[study]\ntools = ["municipal_referral"]\n', "did.dose_response.tools",
     "[study].tools does not study"),
    ('[bayes]\nsampler = "stan"\n', "bayes.sampler", "allowed: auto, nutpie"),
    ('[bayes]\ndraws = 0\n', "bayes.draws", "must be >= 1"),
    ('[bayes]\nlikelihood = "poisson"\n', "bayes.likelihood", "allowed: normal, binomial"),
    ('[bayes]\nlikelihood = "binomial"\n', "bayes.trials", "must name the trials column"),
    ('[bayes]\nenabled = "yes"\n', "bayes.enabled", "must be true or false"),
    ('[bayes]\nchain = 4\n', "bayes.chain", "allowed in [bayes]: enabled, outcome"),
    ('[disclosure]\nmin_n = 2\n', "disclosure.min_n", "must be >= 3"),
    ('[disclosure]\ndominance_k = 1.5\n', "disclosure.dominance_k", "must be <= 1"),
    ('[disclosure]\nmin_residual_df = 5\n', "disclosure.min_residual_df", "must be >= 10"),
    ('[disclosure]\nmin_departments = 2\n', "disclosure.min_departments", "must be >= 3"),
    ('[data]\nroot = 5\n', "data.root", "must be a string"),
    ('[data]\nroot = "${IMPACT_TEST_SURELY_UNSET_VAR}/x"\n', "data.root", "not set"),
]


@pytest.mark.parametrize(("text", "key", "says"), BAD, ids=[b[1] for b in BAD])
def test_bad_config_names_the_key(tmp_path, text, key, says):
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, text))
    assert info.value.key == key
    msg = str(info.value)
    assert says in msg
    table, _, name = key.rpartition(".")
    assert f"[{table}].{name}" in msg or f"[{key}]" in msg, msg  # a key or a whole table
    assert str(tmp_path / "study.toml") in msg


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(write(tmp_path, "[run\nseed = 1\n"))


def test_registers_template_needs_its_data_root(monkeypatch, tmp_path):
    monkeypatch.delenv("IMPACT_DATA_ROOT", raising=False)
    with pytest.raises(ConfigError) as info:
        config.load(CONFIG_DIR / "registers_template.toml")
    assert info.value.key == "data.root"
    monkeypatch.setenv("IMPACT_DATA_ROOT", str(tmp_path))
    assert config.load(CONFIG_DIR / "registers_template.toml").data_root == tmp_path


def test_relative_root_is_taken_from_the_config_folder(tmp_path):
    cfg = config.load(write(tmp_path, '[data]\nroot = "registers"\n'))
    assert cfg.data_root == tmp_path / "registers"
