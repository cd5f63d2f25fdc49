"""Running the graph from a shell: one batch request (`run_request`) or a conversation turn
(`Conversation`, threads persisted in SQLite), with progress events passed to a callback."""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from ikmo.motion_model import constraints as C
from ikmo.motion_model.errors import InputFileError

from . import state as S
from .context import Context
from .errors import RunFailed
from .graph import builder, graph

log = logging.getLogger(__name__)

OnEvent = Callable[[dict[str, Any]], None]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")

# graph.make_builder() is annotated as a bare `StateGraph`, whose context type defaults to None; the graph
# is built with context_schema=Context, so say so here or `stream(..., context=...)` does not type-check.
_graph = cast("CompiledStateGraph[S.GraphState, Context, S.GraphState, S.GraphState]", graph)


def parse_keyframe_arg(arg: str) -> S.ImageRef:
    """'photo.jpg@3.5' → ImageRef(path, 3.5); 'photo.jpg' → time chosen by the agents."""
    path, time_s = arg, None
    m = re.fullmatch(r"(.+)@(\d+(?:\.\d+)?)s?", arg)
    if m:
        path, time_s = m.group(1), float(m.group(2))
    if not Path(path).is_file():
        raise InputFileError(f"keyframe image {path} does not exist; give the path of a photo (optionally @SECONDS)")
    return S.ImageRef(path=str(Path(path).resolve()), time_s=time_s)


def _stream(app: Any, inp: Any, config: RunnableConfig | None, context: Context, on_event: OnEvent | None
            ) -> dict[str, Any]:
    """Run until the end or an interrupt; return the final state values (with `__interrupt__` if paused)."""
    interrupts: list[Any] = []
    for mode, chunk in app.stream(inp, config=config, context=context, stream_mode=["custom", "updates"]):
        if mode == "custom" and on_event is not None:
            on_event(chunk)
        elif mode == "updates" and "__interrupt__" in chunk:
            interrupts.extend(chunk["__interrupt__"])
    values = dict(app.get_state(config).values) if config else {}
    if interrupts:
        values["__interrupt__"] = interrupts
    return values


def run_request(request: S.MotionRequest, context: Context, on_event: OnEvent | None = None) -> dict[str, Any]:
    """Run the whole graph once (batch: failures are errors, never questions). Returns the final state."""
    context.interactive = False
    final: dict[str, Any] = {}
    # With a list of stream modes each item is a (mode, chunk) pair; the stubs type items as dict | Any.
    mode: str
    chunk: Any
    for mode, chunk in _graph.stream({"request": request}, context=context, stream_mode=["custom", "values"]):
        if mode == "custom" and on_event is not None:
            on_event(chunk)
        elif mode == "values":
            final = chunk
    return final


def raise_if_failed(final: dict[str, Any]) -> C.MotionResult:
    """The result of a finished run, or `RunFailed` with the run's status and clear message."""
    if final.get("status") != "ok" or final.get("result") is None:
        raise RunFailed(str(final.get("error") or final.get("answer") or "the run did not finish"),
                        status=str(final.get("status") or "failed"), state=final)
    return final["result"]


# --------------------------------------------------------------------------- conversations


def checkpoint_serializer() -> Any:
    """msgpack serializer that may rebuild exactly our state types (and nothing else) from a checkpoint."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    allowed = [("ikmo.agents.state", n) for n in ("MotionRequest", "ImageRef", "Validation", "Attempt", "Event")]
    allowed += [("ikmo.motion_model.constraints", n) for n in (
        "MotionDescription", "Segment", "KeyframePose", "Trajectory", "TrajectoryPlan", "Line", "Arc", "Circle",
        "Zigzag", "Waypoints", "Stand", "MotionSpec", "GenerationOptions", "MotionResult")]
    return JsonPlusSerializer(allowed_msgpack_modules=allowed)


class Conversation:
    """A chat thread: the first message is a request, later ones edit it ("make it slower").

    Threads live in a SQLite database, so `Conversation(db, thread_id)` resumes after a restart,
    including a pending question.
    """

    def __init__(self, db: Path, thread_id: str, context: Context, out_root: Path) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        db.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(db), check_same_thread=False)
        self.app = builder.compile(checkpointer=SqliteSaver(self._conn, serde=checkpoint_serializer()))
        self.config = RunnableConfig(configurable={"thread_id": thread_id})
        self.context = context
        self.context.interactive = True
        self.out_root = out_root
        self.thread_id = thread_id

    def close(self) -> None:
        self._conn.close()

    def values(self) -> dict[str, Any]:
        return dict(self.app.get_state(self.config).values)

    def pending_question(self) -> str | None:
        snap = self.app.get_state(self.config)
        for task in snap.tasks:
            for intr in task.interrupts:
                return str(intr.value.get("question") if isinstance(intr.value, dict) else intr.value)
        return None

    def turns(self) -> int:
        return sum(1 for _ in self.app.get_state_history(self.config) if _.metadata and
                   _.metadata.get("source") == "input")

    def say(self, text: str, on_event: OnEvent | None = None) -> dict[str, Any]:
        """One user message (answer to a pending question, first request, or follow-up) → final state."""
        if self.pending_question() is not None:
            return _stream(self.app, Command(resume=text), self.config, self.context, on_event)
        prev = self.values()
        images = [parse_keyframe_arg(tok) for tok in _image_tokens(text)]
        out_dir = str(self.out_root / f"turn{self.turns():03d}")
        if not prev.get("request"):
            req = S.MotionRequest(text=text, images=images, seed=self.context.settings.seed, out_dir=out_dir)
            return _stream(self.app, {"request": req}, self.config, self.context, on_event)
        old: S.MotionRequest = prev["request"]
        pinned = _pin_times(old, prev)
        req = S.MotionRequest(text=text, images=pinned + images, duration_s=None, seed=old.seed, out_dir=out_dir)
        return _stream(self.app, {"request": req, "followup": text}, self.config, self.context, on_event)


def _image_tokens(text: str) -> list[str]:
    """Words of a chat message that name image files (optionally with @SECONDS)."""
    out = []
    for tok in text.split():
        tok = tok.strip("\"'`,;")
        base = re.sub(r"@\d+(\.\d+)?s?$", "", tok)
        if base.lower().endswith(IMAGE_SUFFIXES):
            out.append(tok)
    return out


def _pin_times(old: S.MotionRequest, prev: dict[str, Any]) -> list[S.ImageRef]:
    """Keep earlier photos at the times they were given last turn, so a follow-up's hints go to new photos."""
    kfs = prev.get("keyframes") or {}
    return [S.ImageRef(path=im.path, time_s=im.time_s if im.time_s is not None else
                       (kfs[str(i)].time_s if str(i) in kfs else None)) for i, im in enumerate(old.images)]
