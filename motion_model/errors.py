"""Exceptions a user can cause. Every layer raises these; the CLI and the graph turn them into a
clear message (never a traceback). Each message says what went wrong *and what to do*."""

from __future__ import annotations


class IKMoError(Exception):
    """Base of all user-facing errors: bad input, impossible constraints, provider down."""


class InputFileError(IKMoError):
    """A file the user gave cannot be read: missing, corrupt, truncated, wrong format."""


class RigMappingError(IKMoError):
    """A BVH rig's joints cannot be mapped onto the 22-joint skeleton.

    Attributes:
        missing: the target joints that were not found (empty when unknown).
        family: the naming family the rig's names look like ("" when unknown).
        rig: a short label of the rig (family, root joint, joint count), to group clips by rig.
    """

    def __init__(self, message: str, *, missing: tuple[str, ...] = (), family: str = "", rig: str = "") -> None:
        super().__init__(message)
        self.missing = tuple(missing)
        self.family = family
        self.rig = rig


class MotionDataError(IKMoError):
    """Motion data is unusable: zero length, NaN, wrong shape."""


class ConstraintError(IKMoError):
    """A motion specification or constraint is invalid (outside the time range, NaN, too fast, empty)."""


class PoseEstimationError(IKMoError):
    """No usable person pose could be read from an image."""


class ConfigError(IKMoError):
    """The configuration is invalid or refers to something that does not exist."""


class OutputFileError(IKMoError):
    """An output file cannot be written: the folder is missing or read-only, the disk is full."""


class UsageError(IKMoError):
    """A value the user gave (a flag, a request field, a chat message) is malformed or out of range."""


# The longest input value quoted back in a message (a 20,000-character text is cut).
_QUOTE_CHARS = 60


def quote_value(value: object) -> str:
    """A value as a message quotes it: repr, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= _QUOTE_CHARS else f"{text[:_QUOTE_CHARS - 5]}...{text[-2:]} ({len(text)} chars)"


def validation_message(error: Exception, names: dict[str, str] | None = None, limit: int = 3,
                       allowed: dict[str, str] | None = None) -> str:
    """One line from a pydantic `ValidationError`: each bad field, its value and what is allowed.

    names: how to call a field (its location joined by dots) to the user, e.g. {"duration_s":
    "--duration"}; allowed: the field's whole range in words, e.g. {"duration_s": "0 < seconds <=
    9.8"}, added to pydantic's one-sided message. The first `limit` problems are listed, the rest
    counted. Duck-typed on `error.errors()` so this module needs no pydantic import.
    """
    errors = error.errors(include_url=False)  # type: ignore[attr-defined]
    parts = []
    for err in errors[:limit]:
        loc = ".".join(map(_part, err.get("loc", ()))) or "value"
        name = (names or {}).get(loc, loc)
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        msg = msg[:1].lower() + msg[1:]
        if loc in (allowed or {}) and any(k in str(err.get("type")) for k in ("than", "too_", "finite")):
            msg += f" (allowed: {(allowed or {})[loc]})"
        value = err.get("input")
        if err.get("type") == "missing" or isinstance(value, dict | list):
            parts.append(f"{name}: {msg}")
        else:
            parts.append(f"{name} = {quote_value(value)}: {msg}")
    more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
    # One line, whatever the input held (keys and values are the user's).
    return ("; ".join(parts) + more).replace("\r", "\\r").replace("\n", "\\n")


def _part(x: object) -> str:
    """One step of a field's location: a name as it is, an index as a number, any other key quoted."""
    return x if isinstance(x, str) and x.isidentifier() else str(x) if isinstance(x, int) else repr(x)
