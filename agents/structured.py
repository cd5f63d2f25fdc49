"""Structured output from a chat model through our pydantic schemas, with bounded retries.

pydantic's ValidationError is a ValueError, which LangGraph's default retry policy does not retry;
and a retry that does not tell the model what was wrong rarely helps. So this loop validates the
answer itself and, on invalid JSON or a schema violation, sends the error text back and asks again
(`max_retries` times). Transport failures become `ProviderError` with a message that says what to
do. A field a model keeps getting wrong can be filled from the offline agent's answer
(`fill_from_fallback`), with a note of which fields.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from ikmo.agents.errors import ProviderError
from ikmo.prompts import load_prompt

from .providers import supports_json_mode

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class StructuredOutputError(ProviderError):
    """The model kept answering output that does not fit the schema; `last_data` is its last JSON (or None)."""

    def __init__(self, message: str, last_data: dict[str, Any] | None, errors: list[str]) -> None:
        super().__init__(message)
        self.last_data = last_data
        self.errors = errors


def render_prompt(name: str, schema: type[BaseModel], **values: str) -> str:
    """Load `prompts/<name>.md` and fill `{schema}` (the model's JSON schema) and other `{key}` slots.

    Plain replacement, not str.format: the prompts contain JSON braces.
    """
    text = load_prompt(name)
    text = text.replace("{schema}", json.dumps(schema.model_json_schema(), indent=1))
    for k, v in values.items():
        text = text.replace("{" + k + "}", v)
    return text


def extract_json(content: Any) -> dict[str, Any]:
    """The first JSON object in a model's answer (code fences and chatter around it tolerated)."""
    if isinstance(content, list):  # content blocks
        content = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    text = str(content).strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fence:
        text = fence.group(1).strip()
    start = text.find("{")
    if start < 0:
        raise ValueError(f"the answer contains no JSON object: {text[:200]!r}")
    obj, _ = json.JSONDecoder().raw_decode(text[start:])
    if not isinstance(obj, dict):
        raise ValueError("the answer's JSON is not an object")
    return obj


def _answer_data(msg: Any) -> dict[str, Any]:
    calls = getattr(msg, "tool_calls", None) or []
    if calls:
        args = calls[0].get("args")
        if isinstance(args, dict):
            return args
    return extract_json(getattr(msg, "content", msg))


def _transport_error(e: Exception, label: str) -> ProviderError:
    name = type(e).__name__
    hints = {
        "APIConnectionError": "cannot reach the server: is it running, and is the base URL right?",
        "APITimeoutError": "the request timed out: raise IKMO_REQUEST_TIMEOUT_S or use a faster model",
        "AuthenticationError": "the API key was rejected: check IKMO_API_KEY / the provider's key variable",
        "PermissionDeniedError": "the API key may not use this model",
        "NotFoundError": "the model or endpoint does not exist: check the model name and base URL",
        "RateLimitError": "rate limited or out of quota: wait or check the account",
        "BadRequestError": "the server rejected the request (model or options unsupported)",
        "InternalServerError": "the server failed: try again or use another provider",
    }
    # langchain-openai wraps openai's errors in subclasses (OpenAIAuthenticationError): look along the MRO.
    hint = next((hints[c.__name__] for c in type(e).__mro__ if c.__name__ in hints), "the provider failed")
    return ProviderError(f"provider {label}: {hint} ({name}: {str(e)[:300]})")


def ask_structured(
    model: Any,
    schema: type[M],
    system: str,
    user: str | list[dict[str, Any]],
    *,
    max_retries: int = 2,
    label: str = "llm",
    on_attempt: Callable[[int, str | None], None] | None = None,
) -> M:
    """Ask `model` for one `schema` object. user: text, or OpenAI content parts (text + image_url).

    Tries 1 + `max_retries` times, feeding back the JSON or validation error; raises
    `StructuredOutputError` when every answer was invalid and `ProviderError` on transport errors.
    `on_attempt(k, error_or_None)` is called after each attempt.
    """
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    runnable = model
    if supports_json_mode(model):
        runnable = model.bind(response_format={"type": "json_object"})
    # HumanMessage's `content` is an invariant list type; ours is a list of content-part dicts.
    messages: list[Any] = [SystemMessage(system), HumanMessage(cast("str | list[str | dict[Any, Any]]", user))]
    errors: list[str] = []
    last: dict[str, Any] | None = None
    for k in range(max_retries + 1):
        try:
            msg = runnable.invoke(messages)
        except ProviderError:
            raise
        except Exception as e:  # openai/httpx errors: classify into a clear message
            raise _transport_error(e, label) from e
        try:
            last = _answer_data(msg)
            out = schema.model_validate(last)
        except (ValueError, ValidationError) as e:  # ValidationError and JSONDecodeError are ValueErrors
            err = _short_error(e)
            errors.append(err)
            log.info("%s: invalid %s (attempt %d/%d): %s", label, schema.__name__, k + 1, max_retries + 1, err)
            if on_attempt:
                on_attempt(k, err)
            messages += [AIMessage(str(getattr(msg, "content", "")) or json.dumps(last or {})),
                         HumanMessage(f"That answer is invalid: {err}\nAnswer again with one JSON object that "
                                      f"matches the schema exactly, and nothing else.")]
            continue
        if on_attempt:
            on_attempt(k, None)
        return out
    raise StructuredOutputError(
        f"provider {label} gave no valid {schema.__name__} in {max_retries + 1} tries; last error: {errors[-1]}",
        last, errors,
    )


def _short_error(e: Exception) -> str:
    if isinstance(e, ValidationError):
        parts = [f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in e.errors()[:6]]
        return "; ".join(parts)
    return str(e)[:400]


def fill_from_fallback(schema: type[M], data: dict[str, Any] | None, fallback: M) -> tuple[M, list[str]]:
    """Keep the model's valid top-level fields, take the others from `fallback`; return (object, fields replaced).

    Repeats validation, each time replacing the fields pydantic names in its errors (at most once per field).
    """
    known = set(schema.model_fields)
    merged = {k: v for k, v in (data or {}).items() if k in known}
    base = fallback.model_dump()
    replaced: list[str] = [k for k in known if k not in merged and k in base and base[k] is not None]
    for k in replaced:
        merged[k] = base[k]
    for _ in range(len(known) + 1):
        try:
            return schema.model_validate(merged), sorted(set(replaced))
        except ValidationError as e:
            bad = {str(err["loc"][0]) for err in e.errors() if err["loc"] and str(err["loc"][0]) in known}
            bad -= set(replaced)
            if not bad:  # a cross-field rule: fall back to the whole object
                return fallback, sorted(known)
            for f in bad:
                merged[f] = base.get(f)
                replaced.append(f)
    return fallback, sorted(known)
