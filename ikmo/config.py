"""Configuration: one typed settings object, resolved once from defaults < YAML file < env `IKMO_*` <
CLI flags, and saved next to every output as `config.json`.

`Settings` adds to the agents' settings (which add to the tools') only what the shell itself reads:
where the values come from, the log level, and whether the tools run in a child process. Every
command that reads settings calls `resolve`; the YAML file is `--config FILE` (the root option,
passed on as `IKMO_CONFIG`) or `IKMO_CONFIG`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ikmo.agents.settings import AgentSettings
from ikmo.motion_model.errors import ConfigError, validation_message
from ikmo.motion_model.fileio import write_json
from ikmo.tools.logging_setup import setup_logging

CONFIG_ENV = "IKMO_CONFIG"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings, AgentSettings):
    """Every knob of IKMo. Env: `IKMO_<FIELD>` (e.g. `IKMO_PROVIDER=openai:gpt-4o-mini`)."""

    model_config = SettingsConfigDict(env_prefix="IKMO_", extra="forbid", validate_assignment=True)

    tool_process: bool = Field(default=True, description="ikmo generate / chat run the torch-bound tools (motion "
                               "model, photo fits, exports) in a child process that loads while the agents start "
                               "(ikmo.tools.worker); false runs them in the same process")
    log_level: LogLevel = Field(default="INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) else v


def read_config_file(config_file: Path) -> dict[str, Any]:
    """The YAML file's mapping of settings. Raises ConfigError for a missing, unreadable or
    non-mapping file (the field names and values are checked by `load_settings`)."""
    if not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist; pass an existing YAML file to --config "
                          f"(or unset {CONFIG_ENV})")
    try:
        values = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {config_file} cannot be read ({e}); pass a readable UTF-8 YAML file") from e
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"config file {config_file} is not valid YAML{at}; fix it or pass another file") from e
    if not isinstance(values, dict):
        raise ConfigError(f"config file {config_file} must hold a mapping of settings (name: value), "
                          f"not a {type(values).__name__}")
    return values


_ENV_NAMES = {name: f"IKMO_{name.upper()}" for name in Settings.model_fields}


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Resolve the configuration: defaults < YAML `config_file` (default: `$IKMO_CONFIG`) < env <
    explicit `overrides`. Overrides whose value is None are ignored, so CLI flags left unset do not
    mask env values. Raises ConfigError naming the setting, its value and what is allowed."""
    if config_file is None and os.environ.get(CONFIG_ENV):
        config_file = Path(os.environ[CONFIG_ENV])
    file_values = read_config_file(config_file) if config_file is not None else {}
    try:
        env_only = Settings()  # the defaults and the environment
    except ValidationError as e:
        # IKMO_* variables → one line naming the variable, its value, the range
        raise ConfigError(f"invalid configuration from the environment: {validation_message(e, _ENV_NAMES)}"
                          ) from None
    env_set = {k: getattr(env_only, k) for k in env_only.model_fields_set}
    merged = {**file_values, **env_set, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return Settings(**merged)
    except ValidationError as e:
        source = f" (config file {config_file})" if config_file is not None else ""
        raise ConfigError(f"invalid configuration{source}: {validation_message(e)}") from None


def resolve(**flags: Any) -> Settings:
    """The configuration of one command, resolved once (`load_settings` with the command's flags),
    with its log level applied."""
    settings = load_settings(**flags)
    setup_logging(settings.log_level)
    return settings


def save_config(settings: Settings, out_dir: Path) -> Path:
    """Write `config.json` into `out_dir` (atomically; secrets masked) and return its path."""
    return write_json(out_dir / "config.json", settings.dump())

