"""Asking the provider for a structured answer, with the offline agents' answer as the fallback."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .context import Context
from .errors import ProviderError
from .providers import make_chat_model, parse_provider
from .structured import StructuredOutputError, ask_structured, fill_from_fallback


def provider_label(ctx: Context) -> str:
    """How the transcript and notes name the provider ("offline", "openai:gpt-4o-mini", "custom")."""
    return "custom" if ctx.chat_model is not None else parse_provider(ctx.settings.provider,
                                                                       ctx.settings.model).label


def llm_or_fallback(ctx: Context, schema: type[BaseModel], system: str, user: str | list[dict[str, Any]],
                    fallback: Any, agent: str) -> tuple[Any, list[str]]:
    """Ask the provider; on repeated invalid output fill bad fields from the offline answer; on provider
    failure use the offline answer when `fallback_offline`, else raise. Returns (answer, notes)."""
    label = provider_label(ctx)
    try:
        model = make_chat_model(ctx)
        return ask_structured(model, schema, system, user, max_retries=ctx.settings.max_retries, label=label), []
    except StructuredOutputError as e:
        if fallback is None:
            raise
        obj, fields = fill_from_fallback(schema, e.last_data, fallback)
        return obj, [f"{agent}: {label} kept answering invalid output ({e.errors[-1]}); "
                     f"fields {', '.join(fields)} from the offline agent"]
    except ProviderError as e:
        if ctx.settings.fallback_offline and fallback is not None:
            return fallback, [f"{agent}: {e}; used the offline agent instead"]
        raise
