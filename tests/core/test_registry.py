"""Registry: ids, helpful errors for unknown ids and config keys, presets."""

import pytest

import jaxbench
from jaxbench.errors import ConfigError, UnknownTaskError
from jaxbench.registry import register


def test_builtin_tasks_are_registered():
    assert "fair_universe-v0" in jaxbench.registered()


def test_unknown_id_names_the_nearest_and_lists_known():
    with pytest.raises(UnknownTaskError) as error:
        jaxbench.make("fair_univers-v0")
    assert "Did you mean 'fair_universe-v0'" in str(error.value)
    assert "Registered tasks:" in str(error.value)


def test_unknown_config_key_names_the_nearest_key():
    with pytest.raises(ConfigError, match="Did you mean 'n_pe_per_mu'"):
        jaxbench.make("fair_universe-v0", n_pe_per_m=3)


def test_cli_strings_are_converted_to_the_default_types():
    spec = jaxbench.spec("fair_universe-v0")
    config = spec.resolve_config(quick=True, n_pe_per_mu="7", mu_values="0.5,1.5", learning_rate="1e-3")
    assert config["n_pe_per_mu"] == 7 and config["mu_values"] == (0.5, 1.5) and config["learning_rate"] == 1e-3
    assert config["quick"] is True
    with pytest.raises(ConfigError, match="n_pe_per_mu=many"):
        spec.resolve_config(n_pe_per_mu="many")


def test_quick_preset_overrides_defaults():
    spec = jaxbench.spec("fair_universe-v0")
    assert spec.resolve_config(quick=True)["n_pe_per_mu"] < spec.resolve_config()["n_pe_per_mu"]


def test_task_values_are_validated():
    with pytest.raises(ConfigError, match="unknown systematics"):
        jaxbench.make("fair_universe-v0", systematics=("tes", "bogus"))
    with pytest.raises(ConfigError, match="mu_values"):
        jaxbench.make("fair_universe-v0", mu_values=(-1.0,))


def test_ids_must_follow_name_version_and_be_unique():
    with pytest.raises(ValueError, match="name-v0"):
        register("NoVersion", "x:y", "", {})
    with pytest.raises(ValueError, match="already registered"):
        register("fair_universe-v0", "x:y", "", {})
