"""Registry and typed configs: ids, presets, dotted overrides, helpful errors, validation."""

import dataclasses

import pytest

import jaxbench
from jaxbench import config as configs
from jaxbench.errors import ConfigError, UnknownTaskError
from jaxbench.registry import register


def test_builtin_tasks_are_registered():
    assert {"fair_universe-v0", "mlff_aspirin-v0"} <= set(jaxbench.registered())


def test_unknown_id_names_the_nearest_and_lists_known():
    with pytest.raises(UnknownTaskError) as error:
        jaxbench.make("fair_univers-v0")
    assert "Did you mean 'fair_universe-v0'" in str(error.value)
    assert "Registered tasks:" in str(error.value)


def test_unknown_config_key_and_preset_name_the_nearest():
    spec = jaxbench.spec("fair_universe-v0")
    with pytest.raises(ConfigError, match="Did you mean 'n_pe_per_mu'"):
        spec.resolve_config(n_pe_per_m=3)
    with pytest.raises(ConfigError, match="Did you mean 'quick'"):
        spec.resolve_config("quik")


def test_cli_strings_are_coerced_from_the_dataclass_fields():
    spec = jaxbench.spec("fair_universe-v0")
    config = spec.resolve_config(
        "quick",
        **{"analysis.n_pe_per_mu": "7", "mu_values": "0.5,1.5", "classifier.learning_rate": "1e-3", "hidden": "8,4"},
    )
    assert config.analysis.n_pe_per_mu == 7 and config.analysis.mu_values == (0.5, 1.5)
    assert config.classifier.learning_rate == 1e-3 and config.classifier.hidden == (8, 4)
    assert config.data == spec.presets["quick"].data  # untouched parts stay the preset's
    with pytest.raises(ConfigError, match="n_pe_per_mu=many"):
        spec.resolve_config(n_pe_per_mu="many")
    with pytest.raises(ConfigError, match="not a valid int"):
        spec.resolve_config(n_pe_per_mu="2.5")


def test_presets_are_values():
    spec = jaxbench.spec("fair_universe-v0")
    assert spec.resolve_config("quick").analysis.n_pe_per_mu < spec.resolve_config().analysis.n_pe_per_mu
    assert spec.resolve_config("tiny") == spec.presets["tiny"] and dataclasses.is_dataclass(spec.presets["tiny"])


def test_values_are_validated_on_every_rebuilt_part():
    with pytest.raises(ConfigError, match="unknown"):
        jaxbench.spec("fair_universe-v0").resolve_config(systematics=("tes", "bogus"))
    with pytest.raises(ConfigError, match="mu_values"):
        jaxbench.spec("fair_universe-v0").resolve_config(mu_values=(-1.0,))
    with pytest.raises(ConfigError, match="learning_rate"):
        jaxbench.spec("fair_universe-v0").resolve_config(learning_rate="nan")


def test_a_manifest_config_rebuilds_the_same_value():
    spec = jaxbench.spec("fair_universe-v0")
    config = spec.resolve_config("tiny", n_bins="5")
    assert configs.from_dict(spec.config, configs.to_dict(config)) == config


def test_ambiguous_leaf_names_must_be_dotted():
    @dataclasses.dataclass(frozen=True)
    class Part:
        size: int = 1

    @dataclasses.dataclass(frozen=True)
    class Whole:
        a: Part = Part()
        b: Part = Part()

    with pytest.raises(ConfigError, match="ambiguous; write one of a.size, b.size"):
        configs.override(Whole(), {"size": "2"})
    assert configs.override(Whole(), {"b.size": "2"}) == Whole(b=Part(2))


def test_ids_must_follow_name_version_be_unique_and_configs_typed():
    config = jaxbench.spec("fair_universe-v0").config
    with pytest.raises(ValueError, match="name-v0"):
        register("NoVersion", "x:y", "", config)
    with pytest.raises(ValueError, match="already registered"):
        register("fair_universe-v0", "x:y", "", config)
    with pytest.raises(TypeError, match="frozen dataclass"):
        register("dicts-v0", "x:y", "", {"a": 1})
