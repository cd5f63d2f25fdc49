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
from ikmo.motion_model.errors import InputFileError, OutputFileError, UsageError

from . import state as S
from .context import Context
from .errors import RunFailed
from .graph import builder, graph
from .inputs import check_text, parse_keyframe_arg

__all__ = ["Conversation", "is_postgres_url", "open_database", "parse_keyframe_arg", "raise_if_failed", "run_request"]

log = logging.getLogger(__name__)

OnEvent = Callable[[dict[str, Any]], None]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")

# graph.make_builder() is annotated as a bare `StateGraph`, whose context type defaults to None; the graph
# is built with context_schema=Context, so say so here or `stream(..., context=...)` does not type-check.
_graph = cast("CompiledStateGraph[S.GraphState, Context, S.GraphState, S.GraphState]", graph)


def _stream(app: Any, inp: Any, config: RunnableConfig | None, context: Context, on_event: OnEvent | None
            ) -> dict[str, Any]:
    """Run until the end or an interrupt; return the final state values (with `__interrupt__` if paused)."""
    interrupts: list[Any] = []
    for mode, chunk in app.stream(inp, config=config, context=context, stream_mode=["custom", "updates"]):
        if mode == "custom" and on_event is not None:
            on_event(chunk)
        elif mode == "updates" and "__interrupt__" in chunk:
            interrupts.extend(chunk["__interrupt__"])
    # A config may pin the checkpoint the run forked from; the result is the thread's newest state.
    latest = RunnableConfig(configurable={"thread_id": config["configurable"]["thread_id"]}) if config else None
    values = dict(app.get_state(latest).values) if latest else {}
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
        "Zigzag", "Waypoints", "Stand", "MotionSpec", "MotionPrefix", "GenerationOptions", "MotionResult")]
    return JsonPlusSerializer(allowed_msgpack_modules=allowed)


class Conversation:
    """A chat thread: the first message is a request, later ones edit it ("make it slower").

    Threads live in a SQLite database (a file path) or, given a `postgresql://` URL, in Postgres
    (several server processes then share them), so `Conversation(db, thread_id)` resumes after a
    restart, including a pending question.
    """

    def __init__(self, db: Path | str, thread_id: str, context: Context, out_root: Path) -> None:
        saver: Any
        if is_postgres_url(db):
            saver, self._conn = _postgres_saver(str(db))
        else:
            from langgraph.checkpoint.sqlite import SqliteSaver

            self._conn = _open_db(Path(db))
            saver = SqliteSaver(self._conn, serde=checkpoint_serializer())
            try:
                saver.setup()
            except sqlite3.Error as e:
                self._conn.close()
                raise OutputFileError(f"cannot use the chat database --db {db}: {e}; choose a writable file") from e
        self.app = builder.compile(checkpointer=saver)
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

    def interrupted_turn(self) -> str | None:
        """The message of a turn that never finished (the process was killed mid-turn), else None.

        Such a turn left a checkpoint with work still to do and no question pending: its edit was
        never shown to the user, so `say` does not build on it.
        """
        snap = self.app.get_state(self.config)
        if not _unfinished(snap):
            return None
        # The turn's request: in the first checkpoint after its input one, or, killed before that,
        # in the writes of the input checkpoint's task.
        values: dict[str, Any] = {}
        for past in self.app.get_state_history(self.config):
            if past.metadata and past.metadata.get("source") == "input":
                if not values:
                    values = next((dict(t.result) for t in past.tasks if isinstance(t.result, dict)), {})
                break
            values = dict(past.values or {})
        req = values.get("request")
        return req.text if isinstance(req, S.MotionRequest) else "(unknown)"

    def _settled_config(self) -> RunnableConfig | None:
        """The checkpoint of the last finished (or question-pending) turn, to fork the next turn from;
        None when no turn ever finished."""
        for past in self.app.get_state_history(self.config):
            if not _unfinished(past):
                return past.config
        return None

    def say(self, text: str, on_event: OnEvent | None = None, *, images: list[S.ImageRef] | None = None,
            path_xz: list[tuple[float, float]] | None = None, duration_s: float | None = None,
            out_dir: Path | None = None) -> dict[str, Any]:
        """One user message (answer to a pending question, first request, or follow-up) → final state.

        images: photos given beside the words (the studio's uploads; `ikmo chat` names them in the
        text); path_xz: a drawn pelvis path that replaces the trajectory agent's (None: the agents
        plan it); duration_s: the motion's length (None: from the words, or a follow-up's edit); out_dir:
        where this turn writes (default OUT_ROOT/turnNNN).
        Raises UsageError for a message that cannot be a request (too long, not text). A turn that
        was killed before it finished is dropped, and this turn's answer says so.
        """
        check_text(text, "your message")
        dropped = self.interrupted_turn()
        config = self.config
        if dropped is not None:
            log.warning("the turn %r was interrupted before it finished; it is dropped", dropped)
            settled = self._settled_config()
            if settled is None:  # the thread's first turn never finished: start the thread afresh
                self.app.checkpointer.delete_thread(self.thread_id)  # type: ignore[union-attr]
            else:
                config = settled
        final = self._say(text, config, on_event, list(images or []), path_xz, duration_s, out_dir)
        if dropped is not None and final.get("answer"):
            final["answer"] = (f"(Your earlier message {dropped!r} was interrupted before it finished and was not "
                               f"applied; send it again if you still want it.) {final['answer']}")
        return final

    def _say(self, text: str, config: RunnableConfig, on_event: OnEvent | None, given: list[S.ImageRef],
             path_xz: list[tuple[float, float]] | None, duration_s: float | None, out: Path | None
             ) -> dict[str, Any]:
        snap = self.app.get_state(config)
        if any(task.interrupts for task in snap.tasks):  # the message answers the pending question
            return _stream(self.app, Command(resume=text), config, self.context, on_event)
        prev = dict(snap.values)
        images = given + [parse_keyframe_arg(tok) for tok in _image_tokens(text)]
        n_images = len(images) + (len(prev["request"].images) if prev.get("request") else 0)
        if n_images > S.MAX_IMAGES:
            raise UsageError(f"a request holds at most {S.MAX_IMAGES} photos; this message would make it {n_images}")
        out_dir = str(out or self.out_root / f"turn{self.turns():03d}")
        if not prev.get("request"):
            req = S.MotionRequest(text=text, images=images, seed=self.context.settings.seed, out_dir=out_dir,
                                  path_xz=path_xz, duration_s=duration_s)
            return _stream(self.app, {"request": req}, config, self.context, on_event)
        old: S.MotionRequest = prev["request"]
        pinned = _pin_times(old, prev)
        req = S.MotionRequest(text=text, images=pinned + images, duration_s=duration_s, seed=old.seed,
                              out_dir=out_dir, path_xz=path_xz)
        return _stream(self.app, {"request": req, "followup": text}, config, self.context, on_event)


def _unfinished(snap: Any) -> bool:
    """A checkpoint with work left (tasks, some with writes already saved) and no question pending.

    `snap.next` is not enough: a task whose writes were saved before the kill is no longer in it.
    """
    return bool(snap.tasks) and not any(task.interrupts for task in snap.tasks)


def is_postgres_url(db: Path | str) -> bool:
    """True for a Postgres connection URL (`postgresql://...`), false for a SQLite file path."""
    return isinstance(db, str) and db.startswith(("postgresql://", "postgres://"))


def open_database(db: Path | str) -> Any:
    """A DB-API connection to the threads' database (autocommit for Postgres), for tables kept beside
    the checkpoints (the studio's thread index)."""
    if not is_postgres_url(db):
        return _open_db(Path(db))
    try:
        import psycopg
    except ImportError as e:
        raise UsageError(f"IKMO_DATABASE_URL names Postgres, but {e.name} is not installed; pip install -e "
                         "'.[postgres]'") from None
    try:
        return psycopg.connect(str(db), autocommit=True)
    except psycopg.Error as e:
        raise OutputFileError(f"cannot use the Postgres database of IKMO_DATABASE_URL: {str(e).strip()}; check the "
                              "URL and that the server runs") from None


def _postgres_saver(url: str) -> tuple[Any, Any]:
    """LangGraph's Postgres checkpointer on a new connection to `url` (the `postgres` extra), set up;
    one clear line when the package is missing or the server cannot be used."""
    try:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
    except ImportError as e:
        raise UsageError(f"IKMO_DATABASE_URL names Postgres, but {e.name} is not installed; pip install -e "
                         "'.[postgres]'") from None
    try:
        # The connection settings PostgresSaver is documented with (autocommit, no prepared statements, dict rows).
        conn = psycopg.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
        saver = PostgresSaver(conn, serde=checkpoint_serializer())
        saver.setup()
    except psycopg.Error as e:
        raise OutputFileError(f"cannot use the Postgres database of IKMO_DATABASE_URL: {str(e).strip()}; check the "
                              "URL and that the server runs") from None
    return saver, conn


def _open_db(db: Path) -> sqlite3.Connection:
    """The chat threads' SQLite file, opened and checked; a clear error for a file that is not one."""
    if db.is_dir():
        raise InputFileError(f"--db {db} is a folder; give a SQLite file path (created if missing)")
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(db), check_same_thread=False)
    except (OSError, sqlite3.Error) as e:
        raise OutputFileError(f"cannot open the chat database --db {db}: {e}; choose a writable folder") from e
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as e:
        conn.close()
        raise InputFileError(f"--db {db} is not a SQLite database ({e}); give another file, or move this "
                             "one away to start a new one") from e
    return conn


def _image_tokens(text: str) -> list[str]:
    """Words of a chat message that name image files (optionally with @SECONDS)."""
    out = []
    for tok in text.split():
        tok = tok.strip("\"'`,;")
        base = re.sub(r"@[^@/]*$", "", tok)  # IMAGE@TIME: a bad TIME is named by parse_keyframe_arg, not skipped
        if base.lower().endswith(IMAGE_SUFFIXES):
            out.append(tok)
    return out


def _pin_times(old: S.MotionRequest, prev: dict[str, Any]) -> list[S.ImageRef]:
    """Keep earlier photos at the times they were given last turn, so a follow-up's hints go to new photos."""
    kfs = prev.get("keyframes") or {}
    return [S.ImageRef(path=im.path, time_s=im.time_s if im.time_s is not None else
                       (kfs[str(i)].time_s if str(i) in kfs else None)) for i, im in enumerate(old.images)]
