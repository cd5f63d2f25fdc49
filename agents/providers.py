"""Provider string → chat model. The one place that constructs LLM clients.

`offline` (default) is no client at all: the rule-based agents run. `openai:<model>` uses OpenAI
(key from config or OPENAI_API_KEY); `openai-compatible` any server speaking the OpenAI API (vLLM,
Ollama, llama.cpp: base URL, key and model from config); `anthropic:<model>` and `ollama:<model>`
need their langchain extras (`pip install 'ikmo[anthropic]'`); without langchain-ollama, Ollama
is reached through its OpenAI-compatible endpoint.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from typing import Any

from ikmo.agents.errors import ProviderError

from .context import Context

log = logging.getLogger(__name__)

OLLAMA_OPENAI_URL = "http://127.0.0.1:11434/v1"
KINDS = ("offline", "openai", "openai-compatible", "anthropic", "ollama")


@dataclass(frozen=True)
class ProviderSpec:
    kind: str
    model: str | None

    @property
    def label(self) -> str:
        return self.kind if self.model is None else f"{self.kind}:{self.model}"


def parse_provider(provider: str, model: str | None = None) -> ProviderSpec:
    """'openai:gpt-4o-mini' → ProviderSpec('openai', 'gpt-4o-mini'). Raises ProviderError for unknown kinds."""
    kind, _, name = provider.strip().partition(":")
    kind = kind.lower()
    if kind not in KINDS:
        raise ProviderError(f"unknown provider {provider!r}; use one of: offline, openai:<model>, openai-compatible, "
                            "anthropic:<model>, ollama:<model>")
    model_name = name or model
    if kind in ("openai", "anthropic", "ollama") and not model_name:
        raise ProviderError(f"provider {kind!r} needs a model name, e.g. --provider {kind}:<model>")
    return ProviderSpec(kind, model_name or None)


def is_offline(ctx: Context) -> bool:
    return ctx.chat_model is None and parse_provider(ctx.settings.provider, ctx.settings.model).kind == "offline"


def supports_json_mode(model: Any) -> bool:
    """Whether the model takes OpenAI's `response_format` (constrained JSON on llama.cpp/vLLM)."""
    return type(model).__name__ in ("ChatOpenAI", "AzureChatOpenAI")


def make_chat_model(ctx: Context) -> Any | None:
    """The chat model for `ctx.settings.provider`, or None for offline. Raises ProviderError with what to do.

    OpenAI, Anthropic and Ollama go through langchain's `init_chat_model`; an OpenAI-compatible
    server (and Ollama without langchain-ollama) through `ChatOpenAI` with a base URL, which also
    sends the classic `max_tokens` (see `_chat_openai`).
    """
    if ctx.chat_model is not None:
        return ctx.chat_model
    cfg = ctx.settings
    spec = parse_provider(cfg.provider, cfg.model)
    if spec.kind == "offline":
        return None
    key = cfg.api_key.get_secret_value() if cfg.api_key is not None else None
    common: dict[str, Any] = {"timeout": cfg.request_timeout_s, "max_tokens": cfg.max_output_tokens}
    if spec.kind == "openai-compatible":
        if not cfg.base_url:
            raise ProviderError("provider openai-compatible needs a server URL: set IKMO_BASE_URL or --base-url, "
                                "e.g. http://127.0.0.1:8000/v1")
        return _chat_openai(model=spec.model or "default", api_key=key or "not-needed", base_url=cfg.base_url,
                            timeout=cfg.request_timeout_s, max_tokens=cfg.max_output_tokens)
    if spec.kind == "ollama" and importlib.util.find_spec("langchain_ollama") is None:
        return _chat_openai(model=spec.model, api_key="ollama", base_url=cfg.base_url or OLLAMA_OPENAI_URL,
                            timeout=cfg.request_timeout_s, max_tokens=cfg.max_output_tokens)
    if spec.kind in ("openai", "anthropic"):
        env = "OPENAI_API_KEY" if spec.kind == "openai" else "ANTHROPIC_API_KEY"
        key = key or os.environ.get(env)
        if not key:
            raise ProviderError(f"provider {spec.kind} needs an API key: set {env} or IKMO_API_KEY "
                                "(or use --provider offline)")
        if spec.kind == "anthropic" and importlib.util.find_spec("langchain_anthropic") is None:
            raise ProviderError("provider anthropic needs the extra: pip install 'ikmo[anthropic]'")
        # Our own bounded loop retries invalid output; the client retries only transport errors once.
        common.update(api_key=key, max_retries=1)
        if spec.kind == "openai":
            common["temperature"] = 0.0
    else:  # ollama, with langchain-ollama
        common = {"base_url": (cfg.base_url or OLLAMA_OPENAI_URL).removesuffix("/v1"), "format": "json"}
    from langchain.chat_models import init_chat_model

    try:
        return init_chat_model(spec.model, model_provider=spec.kind, **common)
    except (ImportError, ValueError) as e:
        raise ProviderError(f"provider {spec.label} cannot be set up: {e}") from e


def _chat_openai(*, model: str | None, api_key: str, base_url: str, timeout: float, max_tokens: int) -> Any:
    """ChatOpenAI for a server that speaks the OpenAI API at `base_url`.

    langchain-openai sends the token limit as `max_completion_tokens`, which llama.cpp's and other
    OpenAI-compatible servers ignore (a weak model then pads JSON until its context is full, measured
    with SmolLM2 on llama.cpp): send the classic `max_tokens` too.
    """
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    # parse_provider guarantees a model name for every kind that reaches here.
    assert model is not None
    return ChatOpenAI(model=model, api_key=SecretStr(api_key), base_url=base_url, timeout=timeout, max_retries=1,
                      temperature=0.0, max_completion_tokens=max_tokens, extra_body={"max_tokens": max_tokens})
