"""Fixtures for tests of IKMo's web apps: real servers on 127.0.0.1 and a real browser.

Registered for every test by `tests/conftest.py` (`pytest_plugins`); the helpers are importable
(`from web_fixtures import serve_in_thread, count_ink`).

- `live_app(app) -> url`: a FastAPI app (`ikmo.web.create_app`) served by `ikmo.web.WebServer` in a
  thread on 127.0.0.1, a free port; stopped after the test.
- `server_process(argv, env=..., cwd=...) -> ServerProcess`: a real `python -m ikmo.cli ...` process
  started with `--port 0` in argv; `.url` read from its "serving on http://HOST:PORT" log line;
  stopped (SIGINT) after the test, its stderr checked for tracebacks.
- `chromium`: Playwright's sync API driving Debian's /usr/bin/chromium, headless (session-wide;
  skipped with the reason when chromium or playwright is missing; never `playwright install`).
- `page`: a fresh browser context and page (1400x900, downloads accepted); `page_log` lists every
  console error and uncaught page error of that page ("console.error: ...", "pageerror: ...").
- `wait_for_job(url, job_id)`: poll an `ikmo serve` job (GET /v1/jobs/ID) until it is done; its state.
- `count_ink(png, box)`: pixels of a screenshot that differ from its background (its most common
  colour): a canvas that drew nothing has none.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("IKMO_CHROMIUM", "/usr/bin/chromium"))
SERVING = re.compile(r"serving on (http://[^\s/]+)")


@contextmanager
def serve_in_thread(app: Any, **server_kw: Any) -> Iterator[Any]:
    """`ikmo.web.WebServer(app, "127.0.0.1", 0, **server_kw)` serving in a thread; yields the server
    (`.url`, `.port`)."""
    from ikmo.web import WebServer

    server = WebServer(app, "127.0.0.1", 0, **server_kw).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def live_app() -> Iterator[Callable[..., str]]:
    """Factory: `live_app(app, **WebServer kwargs) -> "http://127.0.0.1:PORT"`, served for this test."""
    stack: list[Any] = []

    def start(app: Any, **server_kw: Any) -> str:
        cm = serve_in_thread(app, **server_kw)
        server = cm.__enter__()
        stack.append(cm)
        return str(server.url)

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


class ServerProcess:
    """A real `python -m ikmo.cli ARGV` server process (give `--port 0`: it picks a free port and logs
    "serving on http://HOST:PORT"). `url` is that address; `stderr` the file its log goes to."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
                 log_file: Path | None = None, ready_timeout_s: float = 180.0) -> None:
        self.stderr = log_file or Path(cwd or ".") / "server.log"
        with open(self.stderr, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "ikmo.cli", *argv], cwd=cwd, stdout=err,
                                         stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        deadline = time.monotonic() + ready_timeout_s
        self.url = ""
        while not self.url:
            if m := SERVING.search(self.stderr.read_text(errors="replace")):
                self.url = m.group(1)
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start:\n{self.stderr.read_text(errors='replace')[-4000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGINT (as Ctrl-C), then the exit code; killed when it does not stop in `timeout_s`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Factory: `server_process(argv, env=None, cwd=None) -> ServerProcess`, stopped after the test; its
    log must hold no traceback."""
    started: list[ServerProcess] = []

    def start(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> ServerProcess:
        log_file = tmp_path / f"server_{len(started)}.log"
        proc = ServerProcess(argv, env=env, cwd=cwd or tmp_path, log_file=log_file)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
        assert "Traceback (most recent call last)" not in proc.log(), proc.log()[-4000:]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Headless Debian chromium through Playwright's sync API (one browser for the session)."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is absent: `bash scripts/install.sh` installs Debian's chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A new page in its own context (1400x900, downloads accepted); its errors in `page_log`."""
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.ikmo_log = []  # read through the page_log fixture
    pg.on("console", lambda msg: msg.type == "error" and pg.ikmo_log.append(f"console.error: {msg.text}"))
    pg.on("pageerror", lambda exc: pg.ikmo_log.append(f"pageerror: {exc}"))
    yield pg
    context.close()


@pytest.fixture
def page_log(page: Any) -> list[str]:
    """The console errors and uncaught errors of `page`, as they happen."""
    return page.ikmo_log  # type: ignore[no-any-return]


def count_ink(png: bytes, box: tuple[int, int, int, int] | None = None, tolerance: int = 24) -> int:
    """Pixels of a PNG screenshot (inside `box` = (left, top, right, bottom) if given) whose colour
    differs from the most common one by more than `tolerance` in some channel."""
    import numpy as np
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    if box is not None:
        img = img.crop(box)
    px = np.asarray(img).reshape(-1, 3).astype(np.int16)
    colours, counts = np.unique(px, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    return int((np.abs(px - background).max(axis=1) > tolerance).sum())


def wait_for_job(url: str, job_id: str, timeout_s: float = 120.0) -> dict[str, Any]:
    """GET {url}/v1/jobs/{job_id} until its state is "done"; the job's state (with status and reply)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
        if state["state"] == "done":
            return dict(state)
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s:g} s")
