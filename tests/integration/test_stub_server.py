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
from helpers import cached_reading, make_context
from test_graph_offline import cached_pose_fn

from ikmo.agents.context import Context
from ikmo.agents.errors import ProviderError
from ikmo.agents.providers import make_chat_model, parse_provider
from ikmo.agents.run import raise_if_failed, run_request
from ikmo.agents.state import Attempt, ImageRef, MotionRequest
from ikmo.agents.structured import StructuredOutputError, ask_structured
from ikmo.motion_model.constraints import MotionDescription, TrajectoryPlan

pytestmark = pytest.mark.integration

GOOD_DESC = {"text": "a person dances happily.", "duration_s": 4.0,
             "segments": [{"action": "dance", "start_s": 0.0, "end_s": 4.0, "text": "dances"}], "style": "happy"}
GOOD_PLAN = {"primitives": [{"kind": "stand", "duration_s": 4.0}]}


class StubServer:
    """Answers POST /v1/chat/completions from a script: each item is ("content", str), ("tool", dict)
    or ("status", int). Records every request body. `routes` (system-prompt substring → its own
    script) serves agents that run in parallel branches in a fixed order per agent."""

    def __init__(self) -> None:
        self.script: list[tuple[str, Any]] = []
        self.routes: dict[str, list[tuple[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.requests.append(body)
                    system = str(body["messages"][0].get("content", ""))
                    script = next((v for k, v in stub.routes.items() if k in system), stub.script)
                    kind, value = script.pop(0) if script else ("status", 503)
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


def chat(stub: StubServer, model=None, **kw: Any) -> Context:  # noqa: ANN001
    return make_context(model, provider="openai-compatible", model="stub-model", base_url=stub.url,
                        request_timeout_s=10, **kw)


def test_valid_answer_is_used(stub: StubServer) -> None:
    stub.script = [("content", json.dumps(GOOD_DESC))]
    out = ask_structured(make_chat_model(chat(stub)), MotionDescription, "system", "dance", label="stub")
    assert out.text == "a person dances happily." and out.style == "happy"
    assert stub.requests[0]["model"] == "stub-model"
    assert stub.requests[0]["response_format"] == {"type": "json_object"}  # constrained JSON where supported
    assert stub.requests[0]["max_tokens"] == 1024  # the limit llama.cpp & co. read (not max_completion_tokens)


def test_invalid_json_and_schema_violations_are_retried_with_feedback(stub: StubServer) -> None:
    stub.script = [("content", "Sure! here is your motion: {not json"),
                   ("content", json.dumps({**GOOD_DESC, "duration_s": 500})),
                   ("content", "```json\n" + json.dumps(GOOD_DESC) + "\n```")]
    out = ask_structured(make_chat_model(chat(stub)), MotionDescription, "system", "dance", max_retries=2)
    assert out.duration_s == 4.0 and len(stub.requests) == 3
    assert "That answer is invalid" in stub.user_texts(1)[-1]
    assert "duration_s" in stub.user_texts(2)[-1] and "120" in stub.user_texts(2)[-1]  # the pydantic error


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
    dead = make_context(provider="openai-compatible", base_url="http://127.0.0.1:9/v1", request_timeout_s=2)
    with pytest.raises(ProviderError, match="cannot reach the server"):
        ask_structured(make_chat_model(dead), MotionDescription, "s", "u")
    with pytest.raises(ProviderError, match="needs a server URL"):
        make_chat_model(make_context(provider="openai-compatible"))
    with pytest.raises(ProviderError, match="unknown provider"):
        parse_provider("gpt5")
    with pytest.raises(ProviderError, match="OPENAI_API_KEY"):
        make_chat_model(make_context(provider="openai:gpt-4o-mini", api_key=None))


def test_graph_uses_the_llm_and_generates(stub: StubServer, model, tmp_path: Path) -> None:
    stub.script = [("content", json.dumps(GOOD_DESC)), ("content", json.dumps(GOOD_PLAN))]
    req = MotionRequest(text="do a happy little dance", out_dir=str(tmp_path / "o"))
    final = run_request(req, chat(stub, model, critique_rounds=0, preview=False))
    result = raise_if_failed(final)
    assert result.spec.description.text == "a person dances happily."
    assert json.loads((tmp_path / "o" / "agent_spec.json").read_text())["provider"] == "openai-compatible:stub-model"
    # the prompt carries the corpus vocabulary and the injected JSON schema
    system = stub.requests[0]["messages"][0]["content"]
    assert "wave-right-hand" in system and '"duration_s"' in system and "{schema}" not in system


def test_a_field_the_model_keeps_getting_wrong_falls_back_to_offline(stub: StubServer, model, tmp_path: Path
                                                                     ) -> None:
    bad = {**GOOD_DESC, "style": "happy", "segments": "dance!"}  # segments never valid
    stub.script = [("content", json.dumps(bad))] * 3 + [("content", json.dumps({"primitives": []}))] * 3
    req = MotionRequest(text="run forward 5 meters then kick", out_dir=str(tmp_path / "o"))
    final = run_request(req, chat(stub, model, critique_rounds=0, max_retries=2, preview=False))
    result = raise_if_failed(final)
    desc = result.spec.description
    assert desc.style == "happy"  # the model's valid field kept
    notes = " ".join(final["notes"])
    assert "fields" in notes and "from the offline agent" in notes
    assert [p.kind for p in result.spec.trajectory.plan.primitives] == ["line", "stand"]  # offline plan


def test_provider_down_falls_back_or_fails_clearly(model, tmp_path: Path) -> None:
    dead = dict(provider="openai-compatible", base_url="http://127.0.0.1:9/v1", request_timeout_s=2,
                critique_rounds=0, preview=False)
    final = run_request(MotionRequest(text="walk 2 m", out_dir=str(tmp_path / "a")), make_context(model, **dead))
    assert raise_if_failed(final).spec.description.segments[0].action == "walk"
    assert any("used the offline agent instead" in n for n in final["notes"])
    final = run_request(MotionRequest(text="walk 2 m", out_dir=str(tmp_path / "b")),
                        make_context(model, **dead, fallback_offline=False))
    assert final["status"] == "failed" and "cannot reach the server" in final["error"]


def test_vision_critic_sees_a_contact_sheet(stub: StubServer, tmp_path: Path) -> None:
    import numpy as np
    from langgraph.runtime import Runtime

    from ikmo.agents import nodes
    from ikmo.motion_model.constraints import GenerationOptions
    from ikmo.motion_model.data.synthetic import synthetic_walk

    attempt = tmp_path / "attempts" / "00"
    attempt.mkdir(parents=True)
    np.save(attempt / "joints.npy", synthetic_walk(40, 1.0, 0.0).astype(np.float32))
    stub.script = [("content", json.dumps({"action": "reseed", "reason": "the legs look stiff"}))]
    st = {"request": MotionRequest(text="walk", out_dir=str(tmp_path)), "spec": None, "critique_round": 0,
          "options": GenerationOptions(seed=0),
          "attempts": [Attempt(attempt=0, dir=str(attempt), metrics={"traj_err_mean": 0.9},
                               options=GenerationOptions())]}
    out = nodes.critique(st, Runtime(context=chat(stub, vision=True), stream_writer=lambda e: None))  # type: ignore
    assert out["decision"] == "reseed" and out["options"].seed != 0
    parts = stub.requests[0]["messages"][-1]["content"]
    assert parts[1]["type"] == "image_url" and parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert (attempt / "contact_sheet.png").is_file()


FLIP = {"ok": False, "problem": "left_right_flip", "note": "the person raises the right arm, the fit its left"}


def _photo_run(stub: StubServer, model, photo: Path, out: Path, checks: list[tuple[str, Any]],
               **kw: Any) -> dict[str, Any]:
    """One photo (the right arm raised) through the real pose tools, the LLM path and a vision check."""
    stub.routes = {"pose checker": checks}
    stub.script = [("content", json.dumps(GOOD_DESC)), ("content", json.dumps(GOOD_PLAN))]
    req = MotionRequest(text="do a happy little dance and strike this pose at the end",
                        images=[ImageRef(path=str(photo))], out_dir=str(out))
    return run_request(req, chat(stub, model, critique_rounds=0, preview=False, vision=True, **kw))


def _check_requests(stub: StubServer) -> list[dict[str, Any]]:
    return [r for r in stub.requests if "pose checker" in r["messages"][0]["content"]]


def test_vision_check_through_the_tool_process(stub: StubServer, model, weights_dir: Path, photos,
                                               tmp_path: Path) -> None:
    """`ikmo generate`'s tool process reads the photo: the provider still sees the photo and the fit's
    check image (rendered in the child), and its flip verdict still mirrors the pose."""
    from ikmo.tools.toolbox import ToolSettings
    from ikmo.tools.worker import ToolProcess

    out = tmp_path / "o"
    with ToolProcess(threads=1) as tp:
        tp.load(ToolSettings(weights=weights_dir))
        final = _photo_run(stub, model, photos[1], out, [("content", json.dumps(FLIP))], toolbox=tp)
    result = raise_if_failed(final)
    kf = result.spec.keyframes[0].joints  # mirrored: the left wrist is up
    assert kf[20][1] > kf[16][1] and kf[21][1] < kf[17][1]
    (req,) = _check_requests(stub)
    parts = req["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url"]
    assert (out / "keyframes" / "image_01_check.png").is_file()
    assert Path(result.files["bvh"]).is_file()  # generated and exported in the child


def test_vision_check_of_a_flipped_fit_mirrors_it(stub: StubServer, model, photos, tmp_path: Path) -> None:
    out = tmp_path / "o"
    final = _photo_run(stub, model, photos[1], out, [("content", json.dumps(FLIP))])
    result = raise_if_failed(final)
    as_read = cached_pose_fn(photos[1], 0.0).joints  # the pose tools' own fit: the right wrist is up
    assert as_read[21][1] > as_read[17][1] and as_read[20][1] < as_read[16][1]
    kf = result.spec.keyframes[0].joints  # mirrored: the left wrist is up
    assert kf[20][1] > kf[16][1] and kf[21][1] < kf[17][1]
    assert any("flags left right flip" in n and "mirrored" in n for n in result.notes)
    assert "Pose check flagged photo 1: left right flip (mirrored)" in final["answer"]
    check = json.loads((out / "agent_spec.json").read_text())["keyframe_checks"][0]
    assert check["mirrored"] and check["verdict"] == {**FLIP, "by": "openai-compatible:stub-model"}
    assert check["offline"]["ok"]  # the measurements alone saw nothing wrong
    (req,) = _check_requests(stub)
    system, parts = req["messages"][0]["content"], req["messages"][-1]["content"]
    assert '"left_right_flip"' in system and "{schema}" not in system
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url"] and "Photo 1" in parts[0]["text"]
    assert parts[1]["image_url"]["url"].startswith("data:image/jpeg") and parts[2]["image_url"]["url"].startswith(
        "data:image/png")
    assert (out / "keyframes" / "image_01_check.png").is_file()
    events = [e for e in json.loads((out / "transcript.json").read_text()) if e["node"] == "keyframe_pose"]
    assert "left_right_flip (mirrored)" in events[0]["message"]


def test_vision_check_answering_garbage_keeps_the_fit(stub: StubServer, model, photos, tmp_path: Path
                                                      ) -> None:
    garbage = [("content", "Looks great to me!"),
               ("content", json.dumps({"ok": True, "problem": "left_right_flip"})),
               ("content", json.dumps({"ok": "maybe", "problem": "flip"}))]
    final = _photo_run(stub, model, photos[1], tmp_path / "o", garbage, max_retries=2)
    result = raise_if_failed(final)
    kf = result.spec.keyframes[0].joints
    assert kf[21][1] > kf[17][1]  # kept as read: the right wrist is still up
    requests = _check_requests(stub)
    assert len(requests) == 3 and not stub.routes["pose checker"]  # 1 + max_retries, then no more
    assert "ok must be true exactly when" in requests[2]["messages"][-1]["content"]  # the error fed back
    assert any("gave no valid verdict in 3 tries" in n and "kept as read" in n for n in result.notes)
    check = json.loads((tmp_path / "o" / "agent_spec.json").read_text())["keyframe_checks"][0]
    assert check["verdict"]["by"] == "offline" and check["vision"] is None and not check["mirrored"]
    assert "gave no valid verdict" in check["vision_error"]


def test_vision_check_with_a_failing_server_keeps_the_fit(stub: StubServer, model, photos,
                                                         tmp_path: Path) -> None:
    final = _photo_run(stub, model, photos[1], tmp_path / "o", [("status", 500)] * 2)
    result = raise_if_failed(final)
    assert result.spec.keyframes[0].joints[21][1] > result.spec.keyframes[0].joints[17][1]
    assert any(n.startswith("keyframe check of image 1: provider openai-compatible:stub-model: the server failed")
               and n.endswith("the fit is kept as read") for n in result.notes)


def test_a_replan_reuses_the_photo_check_instead_of_asking_again(stub: StubServer, photos, tmp_path: Path
                                                                 ) -> None:
    import os
    import shutil

    from ikmo.agents.fit_check import check_fit, photo_stamp
    from ikmo.agents.nodes import route_after_describe
    from ikmo.agents.state import KeyframeTask

    photo = tmp_path / "pose.png"
    shutil.copy(photos[1], photo)
    reading = cached_reading(photos[1], 0.0, with_images=True)
    kf = reading.keyframe
    stub.routes = {"pose checker": [("content", json.dumps(FLIP))]}  # one answer: a second ask would fail
    task = KeyframeTask(index=0, image=ImageRef(path=str(photo)), time_s=1.0, feedback=None, text="pose")
    _, first, _ = check_fit(reading, kf, task, chat(stub, vision=True))
    assert first["vision"] == FLIP and len(_check_requests(stub)) == 1

    state = {"request": MotionRequest(text="strike this pose at 1 s", images=[ImageRef(path=str(photo), time_s=1.0)],
                                      out_dir=str(tmp_path / "o")),
             "description": MotionDescription(text="a person stands.", duration_s=2.0), "keyframe_checks": {"0": first}}
    (send, _) = route_after_describe(state)  # type: ignore[arg-type]
    assert send.arg["earlier_check"] == first
    kf2, again, notes = check_fit(reading, kf, send.arg, chat(stub, vision=True))
    assert again["vision_reused"] and again["verdict"]["problem"] == "left_right_flip" and again["mirrored"]
    assert len(_check_requests(stub)) == 1  # not asked again
    assert any("mirrored" in n for n in notes) and kf2.joints != kf.joints

    os.utime(photo, ns=(1, 1))  # the file changed: its check is not reused
    assert photo_stamp(str(photo)) != first["photo"]
    (send, _) = route_after_describe(state)  # type: ignore[arg-type]
    assert "earlier_check" not in send.arg
