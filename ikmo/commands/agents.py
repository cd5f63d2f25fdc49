"""`ikmo generate` (one request through the agent graph) and `ikmo chat` (a conversation whose
follow-ups edit the previous motion; threads persisted in SQLite)."""

from __future__ import annotations

import gc
import logging
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from ikmo.motion_model.limits import MAX_SEED

log = logging.getLogger(__name__)

PROVIDER_HELP = "offline | openai:<model> | openai-compatible | anthropic:<model> | ollama:<model> (env IKMO_PROVIDER)"


class _Progress:
    """Custom graph events → a tqdm bar: the stage as its description, diffusion steps as its progress."""

    def __init__(self, enabled: bool = True) -> None:
        from tqdm import tqdm

        # disable=None: tqdm draws only on a terminal; piped or redirected stderr gets no bar updates.
        self.bar = tqdm(total=1, disable=None if enabled else True, leave=False,
                        bar_format="{desc} {bar} {n_fmt}/{total_fmt}")

    def __call__(self, ev: dict[str, Any]) -> None:
        stage = ev.get("stage", "")
        if stage == "generate":
            total = ev.get("total")
            if total:
                self.bar.total = int(total)
                self.bar.n = int(ev.get("step", 0))
            self.bar.set_description(f"generate (attempt {ev.get('attempt', 0)})")
        else:
            self.bar.set_description(stage + (f" {ev['image']}" if "image" in ev else ""))
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _pause_gc_for_imports() -> None:
    """Switch the cyclic garbage collector off while torch, langgraph and the model load.

    Those imports create ~10^6 objects that live until exit; the automatic collections that their
    allocations trigger walk all of them again and again and free almost nothing: ~0.5 s of CPU of
    every `ikmo generate` (3.7 → 3.3 s for `import ikmo.agents.run` on 2 busy cores).
    """
    gc.disable()


def _resume_gc() -> None:
    """Move everything alive now into the permanent generation and switch collection back on.

    Later collections then walk only what the run creates, and so does the collection at
    interpreter exit, which otherwise walks every object of torch and langgraph once more: the
    process took 2.1 s to exit after `import ikmo.agents.run`, 0.3 s with this (2 busy cores).
    Called again at the end of a command, it covers what the run itself left alive.
    """
    gc.freeze()
    gc.enable()


def _start_tool_process(flag: bool | None, threads: int, warm_pose: bool = False) -> Any:
    """Start the tool process (`ikmo.tools.worker.ToolProcess`) before the configuration is read and
    the agents are imported: torch and the model load in the child on one core while the settings,
    langgraph and the agents import here on the other. Speculative: `_toolbox` keeps it only when the
    resolved settings say `tool_process` (flag, IKMO_TOOL_PROCESS, config file); a child never told
    to load is stopped at once. None when the flag itself says no."""
    if flag is False:
        return None
    from ikmo.tools.worker import ToolProcess

    return ToolProcess(threads, warm_pose=warm_pose)


def _toolbox(settings: Any, threads: int, early: Any = None, load_now: bool = False) -> Any:
    """The run's toolbox: the early tool process told which model to load, or (`tool_process` off)
    the tools in this process. A weights folder without weights fails now, before anything is
    written. load_now: load the in-process model at once (a server's first request should not wait)."""
    from ikmo.motion_model.model.bundled import weights_dir

    try:
        weights_dir(settings.weights)
        if settings.tool_process:
            from ikmo.tools.worker import ToolProcess

            tools = early if early is not None else ToolProcess(threads)
            tools.load(settings)
            return tools
    except BaseException:
        if early is not None:
            early.close()
        raise
    if early is not None:
        early.close()
    from ikmo.tools.local import LocalToolbox

    local = LocalToolbox(settings, threads=threads)
    if load_now:
        local.model  # noqa: B018
    return local


# How `ikmo generate` calls the request's fields, for one-line messages.
_REQUEST_FLAGS = {"text": "--text", "images": "--keyframe", "duration_s": "--duration", "seed": "--seed"}


def _check_request(text: str, keyframes: list[str], duration: float | None, seed: int | None, out: Path) -> Any:
    """`ikmo generate`'s request, checked before any model loads: the words, each photo and its time,
    the duration and the output folder (created). Raises a one-line UsageError / InputFileError /
    OutputFileError naming the flag, its value and what is allowed."""
    from pydantic import ValidationError

    from ikmo.agents.inputs import check_text, parse_keyframe_arg
    from ikmo.agents.state import MAX_IMAGES, MotionRequest
    from ikmo.motion_model.constraints import MAX_DURATION_S
    from ikmo.motion_model.errors import UsageError, validation_message
    from ikmo.motion_model.fileio import ensure_output_dir

    if not text.strip():
        raise UsageError("--text is empty; say what the motion should be, e.g. --text 'walk forward 3 meters'")
    check_text(text, "--text")
    if len(keyframes) > MAX_IMAGES:
        raise UsageError(f"--keyframe given {len(keyframes)} times; a request takes at most {MAX_IMAGES} photos")
    images = [parse_keyframe_arg(k) for k in keyframes]
    try:
        req = MotionRequest(text=text, images=images, duration_s=duration, seed=0 if seed is None else seed,
                            out_dir=str(out.resolve()))
    except ValidationError as e:
        raise UsageError(validation_message(e, _REQUEST_FLAGS, allowed={
            "duration_s": f"0 < seconds <= {MAX_DURATION_S:g}"})) from None
    ensure_output_dir(out)
    return req


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("generate")
    def generate(
        text: Annotated[str, typer.Option("--text", "-t", help="what the motion should be, in words")],
        out: Annotated[Path, typer.Option("--out", "-o", help="output folder (the only place written)")],
        keyframe: Annotated[list[str] | None, typer.Option(
            "--keyframe", "-k", help="photo of a pose, IMAGE or IMAGE@SECONDS; repeatable")] = None,
        duration: Annotated[float | None, typer.Option(
            help="seconds (≤ 120; beyond 9.8 s made in overlapping windows); default from the text")] = None,
        provider: Annotated[str | None, typer.Option(help=PROVIDER_HELP)] = None,
        model: Annotated[str | None, typer.Option(help="model name for openai-compatible")] = None,
        base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL")] = None,
        seed: Annotated[int | None, typer.Option(min=0, max=MAX_SEED, help="random seed (same seed, same motion)")
                        ] = None,
        weights: Annotated[Path | None, typer.Option(help="motion model folder; default the bundled weights")] = None,
        critique_rounds: Annotated[int | None, typer.Option(min=0, max=10)] = None,
        progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
        threads: Annotated[int, typer.Option(min=1, help="torch CPU threads (1 is fastest for this model size)")] = 1,
        tool_process: Annotated[bool | None, typer.Option(
            help="run the motion model, photo fits and exports in a child process that loads while the agents "
                 "start (env IKMO_TOOL_PROCESS) [default: on]")] = None,
    ) -> None:
        """Words (+ photos) → motion: BVH, SMPL, joints, preview, plus agent_spec.json and the transcript."""
        _pause_gc_for_imports()
        tools = None
        try:
            tools = _start_tool_process(tool_process, threads, warm_pose=bool(keyframe))
            req = _check_request(text, keyframe or [], duration, seed, out)  # the child is stopped if this fails
            from ikmo.config import resolve

            settings = resolve(provider=provider, model=model, base_url=base_url, seed=seed, weights=weights,
                               critique_rounds=critique_rounds, tool_process=tool_process)
            tools = _toolbox(settings, threads, tools)
            from ikmo.agents.context import Context
            from ikmo.agents.run import raise_if_failed, run_request

            req = req.model_copy(update={"seed": settings.seed})  # one home: the resolved settings' seed
            ctx = Context(settings=settings, toolbox=tools)
            _resume_gc()
            bar = _Progress(progress)
            try:
                final = run_request(req, ctx, on_event=bar)
            finally:
                bar.close()
        finally:
            if tools is not None:
                tools.close()
            _resume_gc()  # the process ends after this command: spare its last collection the run's objects
        for note in final.get("notes") or []:
            log.info("note: %s", note)
        result = raise_if_failed(final)
        log.info("%s", final.get("answer"))
        log.info("files in %s: %s", out, ", ".join(sorted(Path(p).name for p in result.files.values())))

    @groups["bench"].command("agents")
    def bench_agents(
        repeats: Annotated[int, typer.Option(min=1, help="runs per case (median reported)")] = 3,
        weights: Annotated[Path | None, typer.Option(help="motion model folder; default the bundled weights")] = None,
        out: Annotated[Path, typer.Option(help="JSON result")] = Path("runs/bench_agents.json"),
        threads: Annotated[int, typer.Option(min=1, help="torch CPU threads (as `ikmo generate --threads`)")] = 1,
        critique_rounds: Annotated[int | None, typer.Option(
            min=0, max=10, help="the critic's retry budget (0: one generation per request) [default: ikmo "
                                "generate's]")] = None,
    ) -> None:
        """End-to-end `ikmo generate` time (offline provider, model load included): text, text + 2 photos."""
        from ikmo.eval.bench_agents import format_table, run

        results = run(repeats=repeats, weights=weights, out_json=out, threads=threads, critique_rounds=critique_rounds)
        typer.echo(format_table(results))
        log.info("written %s", out)

    @app.command("serve")
    def serve(
        host: Annotated[str, typer.Option(help="address to listen on; keyframe paths are read only on loopback")]
        = "127.0.0.1",
        port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free one)")] = 8765,
        out: Annotated[Path, typer.Option(help="each request writes into OUT/<run id>")] = Path("runs/serve"),
        provider: Annotated[str | None, typer.Option(help=PROVIDER_HELP)] = None,
        model: Annotated[str | None, typer.Option(help="model name for openai-compatible")] = None,
        base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL")] = None,
        weights: Annotated[Path | None, typer.Option(help="motion model folder; default the bundled weights")] = None,
        threads: Annotated[int, typer.Option(min=1, help="torch CPU threads per worker")] = 1,
        workers: Annotated[int, typer.Option(min=1, max=32, help="model workers (each loads the model once); "
                                                                 "more requests wait in the queue")] = 1,
        max_queue: Annotated[int, typer.Option(min=0, max=10000, help="requests that may wait for a worker; "
                                                                      "beyond that 503")] = 64,
        time_limit: Annotated[float, typer.Option(
            min=1, max=86400, help="seconds POST /v1/generate waits for its run, queue included (then 504; the "
                                   "run goes on)")] = 600.0,
        timeout: Annotated[float, typer.Option(
            min=0.1, max=3600, help="seconds a client may take to send a request (or stay idle between "
                                    "requests) before its connection is closed")] = 30.0,
        db: Annotated[Path | None, typer.Option(help="SQLite file of the studio's threads [OUT/studio.sqlite]; "
                                                     "IKMO_DATABASE_URL=postgresql://... to share them")] = None,
    ) -> None:
        """Serve the agents over HTTP with the model loaded once: the studio page at /, POST /v1/generate,
        /v1/jobs (server-sent progress), GET /v1/runs/ID/FILE, GET /v1/health, /docs. Ctrl-C stops it."""
        from ikmo.agents.context import Context
        from ikmo.config import resolve
        from ikmo.motion_model.fileio import ensure_output_dir
        from ikmo.server import MotionService, is_loopback, make_server
        from ikmo.studio import Studio
        from ikmo.web import bind_socket

        ensure_output_dir(out)
        sock = bind_socket(host, port)  # a port in use or a bad host: said before loading
        _pause_gc_for_imports()
        try:
            # Each worker keeps its model in this process: a warm in-process model answers without the
            # pipe's round trips.
            settings = resolve(provider=provider, model=model, base_url=base_url, weights=weights, tool_process=False)
            contexts = [Context(settings=settings, toolbox=_toolbox(settings, threads, load_now=True))
                        for _ in range(workers)]
            service = MotionService(contexts, out, allow_paths=is_loopback(host), max_queue=max_queue,
                                    time_limit_s=time_limit)
            studio = Studio(service, db)
            server = make_server(service, host, port, timeout_s=timeout, studio=studio, sock=sock)
        except BaseException:
            sock.close()
            raise
        finally:
            _resume_gc()
        log.info("IKMo serving on %s/v1 (the studio: %s/ ; outputs in %s; %d worker(s); Ctrl-C stops)", server.url,
                 server.url, out, workers)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            log.info("stopped after %d request(s)", service.requests)
        finally:
            service.close()
            studio.close()
            server.server_close()

    @app.command("chat")
    def chat(
        thread: Annotated[str | None, typer.Option(help="resume this conversation thread")] = None,
        db: Annotated[Path | None, typer.Option(help="SQLite file of the threads [~/.ikmo/chat.sqlite]")] = None,
        out: Annotated[Path, typer.Option(help="outputs go to OUT/<thread>/turnNNN")] = Path("runs/chat"),
        provider: Annotated[str | None, typer.Option(help=PROVIDER_HELP)] = None,
        model: Annotated[str | None, typer.Option()] = None,
        base_url: Annotated[str | None, typer.Option()] = None,
        weights: Annotated[Path | None, typer.Option()] = None,
        tool_process: Annotated[bool | None, typer.Option(
            help="run the torch-bound tools in a child process (env IKMO_TOOL_PROCESS) [default: on]")] = None,
    ) -> None:
        """Talk to IKMo: describe a motion, then refine it ("make it slower", "add a wave at the end",
        "use pose.jpg for the last pose"). Type /quit to leave; --thread ID resumes after a restart."""
        _pause_gc_for_imports()
        tools = None
        try:
            tools = _start_tool_process(tool_process, threads=1)
            from ikmo.agents.context import Context
            from ikmo.agents.inputs import check_thread_id
            from ikmo.config import resolve
            from ikmo.motion_model.fileio import ensure_output_dir

            if thread is not None:
                check_thread_id(thread)  # a name, never a path: every file stays under --out
            ensure_output_dir(out)
            settings = resolve(provider=provider, model=model, base_url=base_url, weights=weights,
                               tool_process=tool_process)
            tools = _toolbox(settings, 1, tools)
            from ikmo.agents.run import Conversation
            from ikmo.motion_model.errors import IKMoError

            tid = thread or uuid.uuid4().hex[:12]
            db = db or Path.home() / ".ikmo" / "chat.sqlite"
            conv = Conversation(db, tid, Context(settings=settings, toolbox=tools), out / tid)
        except BaseException:
            if tools is not None:
                tools.close()
            raise
        finally:
            _resume_gc()
        typer.echo(f"thread {tid} (resume with --thread {tid}); /quit to leave")
        if (q := conv.pending_question()) is not None:
            typer.echo(f"ikmo> {q}")
        try:
            while True:
                try:
                    line = input("you> ").strip()
                except EOFError:
                    break
                if line in ("/quit", "/exit", "quit", "exit"):
                    break
                if not line:
                    continue
                bar = _Progress(True)
                try:
                    final = conv.say(line, on_event=bar)
                except IKMoError as e:
                    typer.echo(f"ikmo> {e}")
                    continue
                finally:
                    bar.close()
                if "__interrupt__" in final:
                    typer.echo(f"ikmo> {conv.pending_question()}")
                else:
                    typer.echo(f"ikmo> {final.get('answer')}")
                    if final.get("request") is not None:  # where this turn's BVH, SMPL, joints, preview are
                        typer.echo(f"      files in {final['request'].out_dir}")
        finally:
            conv.close()
            if tools is not None:
                tools.close()
