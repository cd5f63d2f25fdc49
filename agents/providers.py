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

from ikmo.motion_model.errors import ProviderError

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
    return ctx.chat_model is None and parse_provider(ctx.provider, ctx.model).kind == "offline"


def supports_json_mode(model: Any) -> bool:
    """Whether the model takes OpenAI's `response_format` (constrained JSON on llama.cpp/vLLM)."""
    return type(model).__name__ in ("ChatOpenAI", "AzureChatOpenAI")


def make_chat_model(ctx: Context) -> Any | None:
    """The chat model for `ctx.provider`, or None for offline. Raises ProviderError with what to do."""
    if ctx.chat_model is not None:
        return ctx.chat_model
    spec = parse_provider(ctx.provider, ctx.model)
    if spec.kind == "offline":
        return None
    timeout = ctx.request_timeout_s
    if spec.kind == "openai":
        key = ctx.api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ProviderError("provider openai needs an API key: set OPENAI_API_KEY or IKMO_API_KEY "
                                "(or use --provider offline)")
        return _chat_openai(model=spec.model, api_key=key, base_url=None, timeout=timeout,
                            max_tokens=ctx.max_output_tokens)
    if spec.kind == "openai-compatible":
        if not ctx.base_url:
            raise ProviderError("provider openai-compatible needs a server URL: set IKMO_BASE_URL or --base-url, "
                                "e.g. http://127.0.0.1:8000/v1")
        return _chat_openai(model=spec.model or "default", api_key=ctx.api_key or "not-needed",
                            base_url=ctx.base_url, timeout=timeout, max_tokens=ctx.max_output_tokens)
    if spec.kind == "anthropic":
        if importlib.util.find_spec("langchain_anthropic") is None:
            raise ProviderError("provider anthropic needs the extra: pip install 'ikmo[anthropic]'")
        key = ctx.api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ProviderError("provider anthropic needs an API key: set ANTHROPIC_API_KEY or IKMO_API_KEY")
        from langchain_anthropic import ChatAnthropic

        return ChatAnthropic(model=spec.model, api_key=key, timeout=timeout, max_retries=1,
                             max_tokens=ctx.max_output_tokens)  # type: ignore[call-arg]
    # ollama
    if importlib.util.find_spec("langchain_ollama") is not None:
        from langchain_ollama import ChatOllama

        return ChatOllama(model=spec.model, base_url=(ctx.base_url or OLLAMA_OPENAI_URL).removesuffix("/v1"),
                          format="json")
    return _chat_openai(model=spec.model, api_key="ollama", base_url=ctx.base_url or OLLAMA_OPENAI_URL,
                        timeout=timeout, max_tokens=ctx.max_output_tokens)


def _chat_openai(*, model: str | None, api_key: str, base_url: str | None, timeout: float, max_tokens: int
                 ) -> Any:
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    # parse_provider guarantees a model name for every kind that reaches here.
    assert model is not None

    # Our own bounded retry loop handles invalid output; the client retries only transport errors once.
    # langchain-openai sends the limit as `max_completion_tokens`, which llama.cpp's and other
    # OpenAI-compatible servers ignore (a weak model then pads JSON until its context is full): for a
    # custom base URL send the classic `max_tokens` too.
    # `max_completion_tokens` is the constructor alias of the `max_tokens` field (the typed spelling).
    return ChatOpenAI(model=model, api_key=SecretStr(api_key), base_url=base_url, timeout=timeout, max_retries=1,
                      temperature=0.0, max_completion_tokens=max_tokens,
                      extra_body={"max_tokens": max_tokens} if base_url else None)
