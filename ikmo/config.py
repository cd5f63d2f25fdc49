"""Configuration: one pydantic model, resolved once from defaults < YAML file < env `IKMO_*` < CLI
flags, and saved next to every output as `config.json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ikmo.motion_model.errors import ConfigError, validation_message
from ikmo.motion_model.fileio import write_json


class Settings(BaseSettings):
    """Every knob of IKMo. Env: `IKMO_<FIELD>` (e.g. `IKMO_PROVIDER=openai:gpt-4o-mini`)."""

    model_config = SettingsConfigDict(env_prefix="IKMO_", extra="forbid", validate_assignment=True)

    # Agents / providers
    provider: str = Field(default="offline", description="offline | openai:<model> | openai-compatible | "
                          "anthropic:<model> | ollama:<model>")
    model: str | None = Field(default=None, description="model name for openai-compatible providers")
    base_url: str | None = Field(default=None, description="base URL of an OpenAI-compatible server")
    api_key: str | None = Field(default=None, description="API key; falls back to the provider's own env var")
    request_timeout_s: float = 60.0
    max_retries: int = Field(default=2, ge=0, le=10, description="retries on invalid structured output")
    critique_rounds: int = Field(default=2, ge=0, le=10)
    # The critic's limits; None keeps the agents' defaults (agents/context.py, docs/agents.md).
    max_traj_error_m: float | None = Field(default=None, gt=0, description="mean pelvis trajectory error (m) "
                                           "above which the critic retries with stronger guidance")
    max_keyframe_mpjpe_m: float | None = Field(default=None, gt=0, description="keyframe MPJPE (m) above which "
                                               "the critic retries with stronger guidance")
    max_foot_skating: float | None = Field(default=None, gt=0, le=1, description="foot skating ratio above which "
                                           "the critic notes it and tries one new seed (real mocap: 0.056-0.072)")
    fallback_offline: bool = True
    vision: bool = Field(default=False, description="the provider reads images: it checks each keyframe fit "
                         "against its photo, and the critic looks at a contact sheet of each attempt")

    # Motion model
    weights: Path | None = Field(default=None, description="motion model weights (.safetensors); bundled default")
    device: str = "cpu"
    seed: int = 0
    diffusion_steps: int | None = None
    guidance_scale: float | None = None
    tool_process: bool = Field(default=True, description="ikmo generate / chat run the torch-bound tools (motion "
                               "model, photo fits, exports) in a child process that loads while the agents start "
                               "(ikmo.tools.worker); false runs them in the same process")

    # Body model
    smpl_model: Path | None = Field(default=None, description="official SMPL .npz; default: bundled mannequin")

    # Outputs
    preview: bool = True
    log_level: str = "INFO"

    def dump(self) -> dict[str, Any]:
        """JSON-safe dict with secrets redacted, for `config.json`."""
        d = json.loads(self.model_dump_json())
        if d.get("api_key"):
            d["api_key"] = "***"
        return d


_ENV_NAMES = {name: f"IKMO_{name.upper()}" for name in Settings.model_fields}


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Resolve the configuration once: defaults < YAML `config_file` < env < explicit `overrides`.

    Overrides whose value is None are ignored, so CLI flags left unset do not mask env values.
    """
    file_values: dict[str, Any] = {}
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"config file {config_file} does not exist; pass an existing YAML file")
        try:
            file_values = yaml.safe_load(config_file.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {config_file} is not valid YAML: {e}") from e
        if not isinstance(file_values, dict):
            raise ConfigError(f"config file {config_file} must hold a mapping of settings")
    try:
        env_only = Settings()
    except ValidationError as e:  # IKMO_* variables → one line naming the variable, its value, the range
        raise ConfigError(f"invalid configuration from the environment: {validation_message(e, _ENV_NAMES)}"
                          ) from None
    env_set = {k: getattr(env_only, k) for k in env_only.model_fields_set}
    merged = {**file_values, **env_set, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return Settings(**merged)
    except ValidationError as e:  # a message that says what to fix
        raise ConfigError(f"invalid configuration: {validation_message(e)}") from None


def save_config(settings: Settings, out_dir: Path) -> Path:
    """Write `config.json` into `out_dir` (atomically) and return its path."""
    return write_json(out_dir / "config.json", settings.dump())
