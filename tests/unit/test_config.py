"""Configuration resolves once: defaults < YAML < env < explicit overrides; secrets never saved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ikmo.config import load_settings, save_config
from ikmo.motion_model.errors import ConfigError

pytestmark = pytest.mark.unit


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("provider: openai:gpt-4o-mini\nseed: 3\ncritique_rounds: 1\n")
    monkeypatch.setenv("IKMO_SEED", "7")
    s = load_settings(cfg, critique_rounds=None, max_retries=4)
    assert s.provider == "openai:gpt-4o-mini"  # from the file
    assert s.seed == 7  # env beats file
    assert s.critique_rounds == 1  # an unset flag (None) does not mask the file
    assert s.max_retries == 4  # explicit override wins


def test_saved_config_redacts_the_key(tmp_path: Path) -> None:
    s = load_settings(api_key="sk-secret")
    saved = json.loads(save_config(s, tmp_path).read_text())
    assert saved["api_key"] and "sk-secret" not in json.dumps(saved)  # masked
    assert s.api_key is not None and s.api_key.get_secret_value() == "sk-secret"  # usable by the providers


@pytest.mark.parametrize("text", ["provider: [unclosed", "- a list\n- not a mapping\n", "nonsense_key: 1\n"])
def test_bad_config_files_are_clear_errors(tmp_path: Path, text: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError):
        load_settings(cfg)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_context_carries_every_agent_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from ikmo.agents.context import Context

    monkeypatch.setenv("IKMO_VISION", "true")
    ctx = Context(settings=load_settings(critique_rounds=1, provider="openai:gpt-4o-mini"))
    cfg = ctx.settings
    assert cfg.vision is True and cfg.critique_rounds == 1 and cfg.provider == "openai:gpt-4o-mini"


def test_config_file_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ikmo --config FILE` reaches every command as IKMO_CONFIG: load_settings reads it when no file is
    passed (before, nothing read it and the file was ignored)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("critique_rounds: 0\npreview: false\nlog_level: debug\n")
    monkeypatch.setenv("IKMO_CONFIG", str(cfg))
    s = load_settings()
    assert (s.critique_rounds, s.preview, s.log_level) == (0, False, "DEBUG")
    assert load_settings(critique_rounds=3).critique_rounds == 3  # a flag beats the file
    monkeypatch.setenv("IKMO_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


def test_invalid_values_name_the_setting_and_the_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("critique_rounds: 11\n")
    with pytest.raises(ConfigError, match=r"critique_rounds = 11: .*less than or equal to 10") as e:
        load_settings(cfg)
    assert "\n" not in str(e.value) and "pydantic" not in str(e.value)  # one line, no library dump
    monkeypatch.setenv("IKMO_SEED", "-1")
    with pytest.raises(ConfigError, match="IKMO_SEED = '-1'"):
        load_settings()


def test_unreadable_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"\xff\xfe not utf-8 \x80")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(cfg)
