"""The torch-bound tools in a child process: `ToolProcess` (the agents' side) and `serve` (the child).

Why a second process: `ikmo generate` used to spend most of its time importing, one module after
the other on one core (the GIL allows no more): torch (~1 s) and the motion model, then
langgraph, pydantic and the agents (~1 s). The tools that need torch (the motion model, the SMPL fit
of a photo, the exports) now run in a child started first thing, so the two halves import side by
side on two cores while the agents plan; the agents' process never imports torch.

Protocol: pickled tuples over the child's stdin (requests) and a private copy of its stdout
(replies); the child points its fd 1 at stderr so that a library printing to stdout cannot corrupt
the stream. The child imports torch as soon as it starts; the first request, ("load", {weights,
device}), comes once the caller has resolved its configuration, and is answered ("ready", info)
when the model is loaded. Then a request names one of `CALLS` (the `Toolbox` calls: names, never
code) with keyword
arguments; the replies are ("event", progress) while a call runs, then ("ok", value) or ("error",
exception). An error a user can cause arrives as the same `IKMoError` subclass
that the in-process tools raise. If the child dies, the caller gets a `ToolProcessError` that says
how to run the tools in-process instead (`IKMO_TOOL_PROCESS=false`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from ikmo.motion_model.errors import IKMoError
from ikmo.tools.local import LocalToolbox
from ikmo.tools.toolbox import OnStep, PhotoReading, ToolSettings

if TYPE_CHECKING:
    from ikmo.motion_model.constraints import MotionResult, MotionSpec

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 10.0


class ToolProcessError(IKMoError):
    """The tool process stopped or answered something that is not a reply."""


class ToolProcess:
    """The tools of a run (a `tools.toolbox.Toolbox`), in a child process that imports torch and
    loads the model once.

    Start it as early as possible (it imports torch at once), then `load` the model when the
    configuration is known; every call blocks until the child answers (the model load included,
    the first time). Thread-safe: the agent graph's photo branches call it from several threads, and
    the calls are served one at a time.

        tools = ToolProcess(threads=1, warm_pose=True)
        tools.load(ToolSettings())
        reading = tools.read_photo(Path("a.jpg"), 2.0)
        result = tools.generate_motion(spec, out_dir, formats=("joints",), on_step=print)
        tools.close()
    """

    def __init__(self, threads: int = 1, warm_pose: bool = False, log_level: int | None = None) -> None:
        """threads: torch intra-op threads in the child; warm_pose: also load BlazePose and the body
        model before they are asked for (the request has photos)."""
        self.settings = ToolSettings()
        level = log_level if log_level is not None else logging.getLogger().getEffectiveLevel()
        cmd = [sys.executable, "-m", "ikmo.tools.worker", "--threads", str(threads), "--log-level", str(level)]
        if warm_pose:
            cmd.append("--warm-pose")
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._to: IO[bytes] = self._proc.stdin
        self._from: IO[bytes] = self._proc.stdout
        self._lock = threading.Lock()
        self._loading = False
        self.ready_info: dict[str, Any] | None = None
        self._load_error: BaseException | None = None

    def load(self, settings: ToolSettings) -> None:
        """Tell the child which model to load and how to sample and export (returns at once; calls
        wait for it, and a load error reaches them)."""
        self.settings = settings
        with self._lock:
            self._send("load", {"settings": settings})
            self._loading = True

    # ------------------------------------------------------------------------------------- the tools

    def read_photo(self, path: Path, time_s: float, *, with_images: bool = False) -> PhotoReading:
        result: PhotoReading = self._call("read_photo", path=Path(path), time_s=time_s, with_images=with_images)
        return result

    def generate_motion(self, spec: MotionSpec, out_dir: Path, *, formats: Sequence[str],
                        on_step: OnStep | None = None) -> MotionResult:
        """`on_step(step, total)` is called here as the child's diffusion advances."""
        def on_event(ev: dict[str, Any]) -> None:
            if on_step is not None:
                on_step(int(ev["step"]), int(ev["total"]))

        result: MotionResult = self._call("generate_motion", on_event=on_event, spec=spec, out_dir=Path(out_dir),
                                          formats=tuple(formats))
        return result

    def write_motion_files(self, joints: np.ndarray, out_dir: Path, *, spec: MotionSpec,
                           formats: Sequence[str]) -> dict[str, str]:
        files: dict[str, str] = self._call("write_motion_files", joints=np.asarray(joints), out_dir=Path(out_dir),
                                           spec=spec, formats=tuple(formats))
        return files

    def describe(self) -> dict[str, Any]:
        weights = self.settings.weights
        return {"weights": None if weights is None else str(weights), "process": "child",
                "pid": self._proc.pid}

    def wait_ready(self) -> dict[str, Any]:
        """Block until the model is loaded; returns {"load_s": ..., "pid": ...} or raises its load error."""
        with self._lock:
            self._read_ready()
        assert self.ready_info is not None
        return self.ready_info

    def close(self) -> None:
        """Ask the child to exit and wait for it (its CPU time is then counted as this process's child's).
        A child never told to load has nothing to finish: it is stopped at once. Closing twice is fine."""
        if self._to.closed:
            return
        if self._proc.poll() is None and not self._loading:
            self._proc.kill()
        elif self._proc.poll() is None:
            with self._lock, contextlib.suppress(ToolProcessError):  # it died meanwhile: nothing to ask
                self._send("close", {})
        try:
            self._proc.wait(timeout=CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for f in (self._to, self._from):
            with contextlib.suppress(OSError):  # a request still buffered for a child that died: nobody reads it
                f.close()

    def __enter__(self) -> ToolProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------- plumbing

    def _send(self, name: str, kwargs: dict[str, Any]) -> None:
        try:
            pickle.dump((name, kwargs), self._to, protocol=pickle.HIGHEST_PROTOCOL)
            self._to.flush()
        except (BrokenPipeError, OSError) as e:
            raise self._died(f"while sending {name}") from e

    def _call(self, name: str, on_event: Callable[[dict[str, Any]], None] | None = None, **kwargs: Any) -> Any:
        with self._lock:
            self._read_ready()
            self._send(name, kwargs)
            while True:
                kind, payload = self._recv(name)
                if kind == "event":
                    if on_event is not None:
                        on_event(payload)
                elif kind == "ok":
                    return payload
                elif kind == "error":
                    raise payload
                else:
                    raise ToolProcessError(f"the tool process answered {kind!r} to {name}")

    def _read_ready(self) -> None:
        if self._load_error is not None:
            raise self._load_error
        if self.ready_info is not None:
            return
        if not self._loading:
            raise ToolProcessError("the tool process was not told which model to load; call load() first")
        kind, payload = self._recv("loading the model")
        if kind == "error":
            self._load_error = payload
            raise payload
        if kind != "ready":
            raise ToolProcessError(f"the tool process started with {kind!r} instead of 'ready'")
        self.ready_info = payload

    def _recv(self, during: str) -> tuple[str, Any]:
        try:
            msg = pickle.load(self._from)
        except (EOFError, OSError, pickle.UnpicklingError) as e:
            raise self._died(f"while {during}") from e
        kind, payload = msg
        return str(kind), payload

    def _died(self, during: str) -> ToolProcessError:
        code = self._proc.poll()
        if code is None:
            try:
                code = self._proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                code = None
        return ToolProcessError(f"the tool process stopped {during} (exit code {code}); its messages are above. "
                                "Run again with IKMO_TOOL_PROCESS=false to run the tools in this process")


# ----------------------------------------------------------------------------------------- the child


CALLS = ("read_photo", "generate_motion", "write_motion_files")


def _picklable_error(e: BaseException) -> BaseException:
    """The exception itself when it survives pickling (ours do), else a ToolProcessError with its text."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        return ToolProcessError(f"{type(e).__name__}: {e}")


def serve(inp: IO[bytes], out: IO[bytes], threads: int, warm_pose: bool) -> None:
    """The child's loop: import torch, load the model the first request names, say ready, answer
    requests until "close" or end of input."""
    def send(kind: str, payload: Any) -> None:
        pickle.dump((kind, payload), out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()

    t0 = time.perf_counter()
    gc.disable()  # ~10^6 long-lived objects from torch: collections would walk them for nothing
    try:
        import torch

        # Small tensors (batch 2, d_model 128): intra-op threads mostly spin-wait (see ikmo generate --threads).
        torch.set_num_threads(threads)
        if warm_pose:  # the request has photos: BlazePose's graph and the body model, before they are asked for
            from ikmo.tools.body_model import load_body_model
            from ikmo.tools.pose_estimation import shared_detector

            shared_detector()
            load_body_model()
        try:
            name, kwargs = pickle.load(inp)
        except EOFError:
            return
        if name != "load":
            return  # "close" before anything was asked
        server = LocalToolbox(kwargs["settings"], threads=threads)
        server.model  # noqa: B018  (load now: "ready" means the model is loaded)
    except Exception as e:  # noqa: BLE001  (every load failure must reach the caller)
        if not isinstance(e, IKMoError):
            log.error("tool process: loading failed:\n%s", traceback.format_exc())
        send("error", _picklable_error(e))
        return
    finally:
        gc.freeze()
        gc.enable()
    send("ready", {"load_s": round(time.perf_counter() - t0, 3), "pid": os.getpid()})
    while True:
        try:
            name, kwargs = pickle.load(inp)
        except EOFError:
            return
        if name == "close":
            return
        if name not in CALLS:
            send("error", ToolProcessError(f"the tool process has no call {name!r}; it serves {', '.join(CALLS)}"))
            continue
        try:
            if name == "generate_motion":
                value = server.generate_motion(
                    on_step=lambda step, total: send("event", {"step": step, "total": total}), **kwargs)
            else:
                value = getattr(server, name)(**kwargs)
        except Exception as e:  # noqa: BLE001  (any failure is the caller's to report; the child stays up)
            if not isinstance(e, IKMoError):
                log.error("tool process: %s failed:\n%s", name, traceback.format_exc())
            send("error", _picklable_error(e))
        else:
            send("ok", value)


def main(argv: list[str] | None = None) -> None:
    import argparse

    from ikmo.tools.logging_setup import setup_logging

    p = argparse.ArgumentParser(prog="python -m ikmo.tools.worker", description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warm-pose", action="store_true")
    p.add_argument("--log-level", type=int, default=logging.INFO)
    args = p.parse_args(argv)
    out = os.fdopen(os.dup(1), "wb")
    stderr_filter = filter_native_stderr()  # fd 1 and 2 now lead through the filter, never into the replies
    setup_logging(args.log_level)
    try:
        serve(sys.stdin.buffer, out, args.threads, args.warm_pose)
    finally:
        out.flush()
        stderr_filter()
    # Skip the interpreter's teardown: it walks every torch object once more (~0.4 s) for nothing.
    os._exit(0)


def filter_native_stderr() -> Callable[[], None]:
    """Lead this process's file descriptors 1 and 2 through a thread that drops mediapipe's native
    start-up chatter (`pose_estimation.NATIVE_CHATTER`, to the DEBUG log) and passes every other line
    to the real stderr; Python's own `sys.stdout` / `sys.stderr` write to the real stderr directly.
    Returns the function that flushes and stops the filter."""
    from ikmo.tools.pose_estimation import NATIVE_CHATTER

    real = os.dup(2)
    sys.stdout = sys.stderr = os.fdopen(os.dup(real), "w", buffering=1, errors="replace")
    read_end, write_end = os.pipe()
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as pipe, os.fdopen(real, "wb", buffering=0) as dest:
            for line in pipe:
                if NATIVE_CHATTER.match(line.decode(errors="replace")):
                    log.debug("native: %s", line.decode(errors="replace").rstrip())
                else:
                    dest.write(line)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()

    def stop() -> None:
        sys.stderr.flush()
        os.close(1)
        os.close(2)
        thread.join(timeout=2.0)

    return stop


if __name__ == "__main__":
    # Run the imported module's main, not this `__main__` copy: the classes it pickles (PhotoReading,
    # ToolProcessError) must be named `ikmo.tools.worker.*` for the caller to rebuild them.
    from ikmo.tools.worker import main as _main

    _main()
