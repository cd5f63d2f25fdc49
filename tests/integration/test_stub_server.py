"""The OpenAI-compatible provider path through the real langchain-openai client against a scripted
stub server on 127.0.0.1: valid answers, invalid JSON, schema violations, tool calls, server errors
and a dead server — proving the bounded retries with error feedback, the per-field offline
fallback and the clear failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_graph_offline import cached_pose_fn, model, weights_dir  # noqa: F401  (fixtures)

from ikmo.agents.context import Context
from ikmo.agents.providers import make_chat_model, parse_provider
from ikmo.agents.run import raise_if_failed, run_request
from ikmo.agents.state import MotionRequest
from ikmo.agents.structured import StructuredOutputError, ask_structured
from ikmo.motion_model.constraints import MotionDescription, TrajectoryPlan
from ikmo.motion_model.errors import ProviderError

pytestmark = pytest.mark.integration

GOOD_DESC = {"text": "a person dances happily.", "duration_s": 4.0,
             "segments": [{"action": "dance", "start_s": 0.0, "end_s": 4.0, "text": "dances"}], "style": "happy"}
GOOD_PLAN = {"primitives": [{"kind": "stand", "duration_s": 4.0}]}


class StubServer:
    """Answers POST /v1/chat/completions from a script: each item is ("content", str), ("tool", dict)
    or ("status", int). Records every request body."""

    def __init__(self) -> None:
        self.script: list[tuple[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                kind, value = stub.script.pop(0) if stub.script else ("status", 503)
                if kind == "status":
                    self._send(value, {"error": {"message": "scripted failure", "type": "server_error"}})
                    return
                msg: dict[str, Any] = {"role": "assistant", "content": value if kind == "content" else None}
                if kind == "tool":
                    msg["tool_calls"] = [{"id": "call_1", "type": "function",
                                          "function": {"name": "answer", "arguments": json.dumps(value)}}]
                self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model"),
                                 "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

            def _send(self, status: int, obj: dict[str, Any]) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def user_texts(self, i: int) -> list[str]:
        return [m["content"] for m in self.requests[i]["messages"] if m["role"] == "user"]


@pytest.fixture
def stub() -> Iterator[StubServer]:
    s = StubServer()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def chat(stub: StubServer, **kw: Any) -> Context:
    return Context(provider="openai-compatible", model="stub-model", base_url=stub.url, request_timeout_s=10,
                   **kw)


def test_valid_answer_is_used(stub: StubServer) -> None:
    stub.script = [("content", json.dumps(GOOD_DESC))]
    out = ask_structured(make_chat_model(chat(stub)), MotionDescription, "system", "dance", label="stub")
    assert out.text == "a person dances happily." and out.style == "happy"
    assert stub.requests[0]["model"] == "stub-model"
    assert stub.requests[0]["response_format"] == {"type": "json_object"}  # constrained JSON where supported
    assert stub.requests[0]["max_tokens"] == 1024  # the limit llama.cpp & co. read (not max_completion_tokens)


def test_invalid_json_and_schema_violations_are_retried_with_feedback(stub: StubServer) -> None:
    stub.script = [("content", "Sure! here is your motion: {not json"),
                   ("content", json.dumps({**GOOD_DESC, "duration_s": 50})),
                   ("content", "```json\n" + json.dumps(GOOD_DESC) + "\n```")]
    out = ask_structured(make_chat_model(chat(stub)), MotionDescription, "system", "dance", max_retries=2)
    assert out.duration_s == 4.0 and len(stub.requests) == 3
    assert "That answer is invalid" in stub.user_texts(1)[-1]
    assert "duration_s" in stub.user_texts(2)[-1] and "9.8" in stub.user_texts(2)[-1]  # the pydantic error


def test_tool_call_answers_are_read(stub: StubServer) -> None:
    stub.script = [("tool", GOOD_PLAN)]
    out = ask_structured(make_chat_model(chat(stub)), TrajectoryPlan, "system", "plan")
    assert out.primitives[0].kind == "stand"


def test_retries_are_bounded(stub: StubServer) -> None:
    stub.script = [("content", json.dumps({**GOOD_DESC, "duration_s": -1}))] * 5
    with pytest.raises(StructuredOutputError, match="gave no valid MotionDescription in 2 tries") as e:
        ask_structured(make_chat_model(chat(stub)), MotionDescription, "s", "u", max_retries=1)
    assert len(stub.requests) == 2 and e.value.last_data["duration_s"] == -1


def test_server_errors_and_dead_server_are_clear(stub: StubServer) -> None:
    stub.script = [("status", 401), ("status", 401)]
    with pytest.raises(ProviderError, match="API key was rejected"):
        ask_structured(make_chat_model(chat(stub)), MotionDescription, "s", "u")
    dead = Context(provider="openai-compatible", base_url="http://127.0.0.1:9/v1", request_timeout_s=2)
    with pytest.raises(ProviderError, match="cannot reach the server"):
        ask_structured(make_chat_model(dead), MotionDescription, "s", "u")
    with pytest.raises(ProviderError, match="needs a server URL"):
        make_chat_model(Context(provider="openai-compatible"))
    with pytest.raises(ProviderError, match="unknown provider"):
        parse_provider("gpt5")
    with pytest.raises(ProviderError, match="OPENAI_API_KEY"):
        make_chat_model(Context(provider="openai:gpt-4o-mini", api_key=None))


def test_graph_uses_the_llm_and_generates(stub: StubServer, model, tmp_path: Path) -> None:  # noqa: F811
    stub.script = [("content", json.dumps(GOOD_DESC)), ("content", json.dumps(GOOD_PLAN))]
    req = MotionRequest(text="do a happy little dance", out_dir=str(tmp_path / "o"))
    final = run_request(req, chat(stub, motion_model=model, critique_rounds=0, preview=False))
    result = raise_if_failed(final)
    assert result.spec.description.text == "a person dances happily."
    assert json.loads((tmp_path / "o" / "agent_spec.json").read_text())["provider"] == "openai-compatible:stub-model"
    # the prompt carries the corpus vocabulary and the injected JSON schema
    system = stub.requests[0]["messages"][0]["content"]
    assert "wave-right-hand" in system and '"duration_s"' in system and "{schema}" not in system


def test_a_field_the_model_keeps_getting_wrong_falls_back_to_offline(stub: StubServer, model, tmp_path: Path  # noqa: F811
                                                                     ) -> None:
    bad = {**GOOD_DESC, "style": "happy", "segments": "dance!"}  # segments never valid
    stub.script = [("content", json.dumps(bad))] * 3 + [("content", json.dumps({"primitives": []}))] * 3
    req = MotionRequest(text="run forward 5 meters then kick", out_dir=str(tmp_path / "o"))
    final = run_request(req, chat(stub, motion_model=model, critique_rounds=0, max_retries=2, preview=False))
    result = raise_if_failed(final)
    desc = result.spec.description
    assert desc.style == "happy"  # the model's valid field kept
    notes = " ".join(final["notes"])
    assert "fields" in notes and "from the offline agent" in notes
    assert [p.kind for p in result.spec.trajectory.plan.primitives] == ["line", "stand"]  # offline plan


def test_provider_down_falls_back_or_fails_clearly(model, tmp_path: Path) -> None:  # noqa: F811
    dead = dict(provider="openai-compatible", base_url="http://127.0.0.1:9/v1", request_timeout_s=2,
                motion_model=model, critique_rounds=0, preview=False)
    final = run_request(MotionRequest(text="walk 2 m", out_dir=str(tmp_path / "a")), Context(**dead))
    assert raise_if_failed(final).spec.description.segments[0].action == "walk"
    assert any("used the offline agent instead" in n for n in final["notes"])
    final = run_request(MotionRequest(text="walk 2 m", out_dir=str(tmp_path / "b")),
                        Context(**dead, fallback_offline=False))
    assert final["status"] == "failed" and "cannot reach the server" in final["error"]


def test_vision_critic_sees_a_contact_sheet(stub: StubServer, tmp_path: Path) -> None:
    import numpy as np
    from langgraph.runtime import Runtime

    from ikmo.agents import nodes
    from ikmo.motion_model.constraints import GenerationOptions
    from ikmo.motion_model.synthetic import synthetic_walk

    attempt = tmp_path / "attempts" / "00"
    attempt.mkdir(parents=True)
    np.save(attempt / "joints.npy", synthetic_walk(40, 1.0, 0.0).astype(np.float32))
    stub.script = [("content", json.dumps({"action": "reseed", "reason": "the legs look stiff"}))]
    st = {"request": MotionRequest(text="walk", out_dir=str(tmp_path)), "spec": None, "critique_round": 0,
          "options": GenerationOptions(seed=0),
          "attempts": [{"attempt": 0, "dir": str(attempt), "metrics": {"traj_err_mean": 0.9}, "options": {}}]}
    out = nodes.critique(st, Runtime(context=chat(stub, vision=True), stream_writer=lambda e: None))  # type: ignore
    assert out["decision"] == "reseed" and out["options"].seed != 0
    parts = stub.requests[0]["messages"][-1]["content"]
    assert parts[1]["type"] == "image_url" and parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert (attempt / "contact_sheet.png").is_file()
