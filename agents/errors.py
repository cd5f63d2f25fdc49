"""Errors of the agent layer. Both are `IKMoError`s: the CLI and the server turn them into one
clear line (exit code 2, HTTP 422), never a traceback."""

from __future__ import annotations

from typing import Any

from ikmo.motion_model.errors import IKMoError


class ProviderError(IKMoError):
    """An MLLM provider is unreachable, misconfigured or keeps answering invalid output."""


class RunFailed(IKMoError):  # noqa: N818  (the issue's name: a run's outcome, not a bug)
    """A run of the graph ended without a motion. `status` is the run's final status ("failed",
    "needs_input"), `error` the reason it gives the user, `state` the final graph state (its
    transcript and attempts are on disk already)."""

    def __init__(self, error: str, status: str = "failed", state: dict[str, Any] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.state = state or {}
