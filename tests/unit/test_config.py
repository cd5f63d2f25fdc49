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
    assert saved["api_key"] == "***" and "sk-secret" not in json.dumps(saved)


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
    ctx = Context.from_settings(load_settings(critique_rounds=1, provider="openai:gpt-4o-mini"))
    assert ctx.vision is True and ctx.critique_rounds == 1 and ctx.provider == "openai:gpt-4o-mini"
