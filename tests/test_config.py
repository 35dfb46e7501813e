"""Configuration: defaults, YAML, environment precedence, clear errors, masked secrets, init template."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from curate.cli import app
from curate.config import Config, ConfigError, config_template, dump_config, load_config


def test_defaults_are_the_embedded_models() -> None:
    cfg = load_config(environ={})
    assert cfg.llm.provider == "llamacpp" and cfg.llm.model is None
    assert cfg.embeddings.model is None
    assert cfg.argilla.api_url is None  # the embedded server


def test_precedence_defaults_yaml_env_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump({"dedup": {"threshold": 0.8, "column": "prompt"}, "select": {"budget": 5}})
    )
    env = {"CURATE_DEDUP__THRESHOLD": "0.75", "ARGILLA_API_URL": "https://me-argilla.hf.space"}
    cfg = load_config(path, overrides={"select": {"budget": 7}}, environ=env)
    assert cfg.dedup.threshold == 0.75  # env beats YAML
    assert cfg.dedup.column == "prompt"  # YAML beats default
    assert cfg.select.budget == 7  # explicit override beats all
    assert cfg.argilla.api_url == "https://me-argilla.hf.space"


def test_secrets_are_masked_in_show() -> None:
    cfg = load_config(environ={"ARGILLA_API_KEY": "s3cret-key"})
    assert cfg.argilla.api_key.get_secret_value() == "s3cret-key"
    assert dump_config(cfg)["argilla"]["api_key"] == "********"
    result = CliRunner().invoke(app, ["config", "show"], env={"ARGILLA_API_KEY": "s3cret-key"})
    assert result.exit_code == 0, result.output
    assert "s3cret-key" not in result.output and "********" in result.output


def test_bad_values_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("dedup:\n  threshold: high\nselect:\n  budjet: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    message = str(err.value)
    assert f"{path}: dedup.threshold" in message
    assert "select.budjet" in message  # typos are errors, not silently ignored


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml", environ={})
    bad = tmp_path / "broken.yaml"
    bad.write_text("dedup: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad, environ={})


def test_init_template_round_trips_to_the_defaults(tmp_path: Path) -> None:
    text = config_template()
    assert "# Cosine similarity" in text  # option descriptions are comments
    path = tmp_path / "curate.yaml"
    path.write_text(text)
    assert load_config(path, environ={}) == Config()
    result = CliRunner().invoke(app, ["init", str(path)])
    assert result.exit_code != 0 and "exists" in result.output


def test_curate_variables_that_are_not_settings_are_left_alone_but_a_typo_fails():
    # The project's own variables (benchmarks, tests, the embedded server) share the prefix.
    own = {"CURATE_SHARED_DATA": "/data", "CURATE_SEARCH_DB": "/s.sqlite3", "CURATE_UPDATE_DOCS": "1"}
    assert load_config(environ=own) == Config()
    with pytest.raises(ConfigError, match=r"CURATE_DEDUP_THRESHOLD: not a setting.*CURATE_DEDUP__THRESHOLD"):
        load_config(environ={**own, "CURATE_DEDUP_THRESHOLD": "0.8"})
    with pytest.raises(ConfigError, match=r"dedup\.treshold"):  # a wrong key in a section still fails too
        load_config(environ={"CURATE_DEDUP__TRESHOLD": "0.8"})
