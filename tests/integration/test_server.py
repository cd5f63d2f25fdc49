"""`ikmo serve`'s HTTP API: a real server on 127.0.0.1 (a free port), the real graph with the tiny
model and the real pose tools, a real HTTP client (httpx); and the `ikmo serve` command itself."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers import make_context

from ikmo.server import MotionService, make_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(model, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, MotionService]]:
    service = MotionService(make_context(model, critique_rounds=0, preview=False),
                            tmp_path_factory.mktemp("serve"))
    server = make_server(service, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", service
    server.shutdown()
    server.server_close()


def test_generate_with_an_inline_photo_and_fetch_the_files(api, photos: list[Path]) -> None:
    url, service = api
    body = {"text": "walk forward 2 meters in 5 seconds and strike this pose at the end", "seed": 2,
            "keyframes": [{"image_base64": base64.b64encode(photos[1].read_bytes()).decode(), "time_s": 4.0}]}
    r = httpx.post(f"{url}/v1/generate", json=body, timeout=120)
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["status"] == "ok" and "walks forward" in reply["answer"] and reply["seconds"] > 0
    assert {"motion.bvh", "joints.npy", "motion_smpl.npz", "agent_spec.json"} <= set(reply["files"])
    assert np.isfinite(reply["metrics"]["keyframe_mpjpe"])
    bvh = httpx.get(url + reply["files"]["motion.bvh"], timeout=30)
    assert bvh.status_code == 200 and bvh.content.startswith(b"HIERARCHY")
    run_dir = Path(reply["dir"])
    assert bvh.content == (run_dir / "motion.bvh").read_bytes()
    assert (run_dir / "inputs" / "keyframe_01.png").read_bytes() == photos[1].read_bytes()
    assert run_dir.parent == service.out_root  # every run in its own folder under the root
    # the same request again: a new run, the same motion (same seed)
    again = httpx.post(f"{url}/v1/generate", json=body, timeout=120).json()
    assert again["id"] != reply["id"]
    assert np.array_equal(np.load(Path(again["dir"]) / "joints.npy"), np.load(run_dir / "joints.npy"))
    health = httpx.get(f"{url}/v1/health", timeout=10).json()
    assert health["status"] == "ok" and health["provider"] == "offline" and health["requests"] >= 2
    from ikmo.motion_model.limits import MAX_DURATION_S

    assert health["max_duration_s"] == MAX_DURATION_S  # the studio's length field reads its bound from here


def test_a_local_path_keyframe(api, photos: list[Path]) -> None:
    url, _ = api
    r = httpx.post(f"{url}/v1/generate", json={"text": "wave", "keyframes": [{"path": str(photos[0])}]}, timeout=120)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"{not json", 400, "not JSON"),
    (b'["a list"]', 400, "JSON object"),
    (b'{"text": "walk", "colour": "red"}', 400, "colour"),
    (b'{"text": "walk", "duration_s": 300}', 400, "duration_s"),
    (b'{"text": "walk", "keyframes": [{"image_base64": "!!!"}]}', 400, "not valid base64"),
    (b'{"text": "walk", "keyframes": [{"time_s": 1}]}', 400, "exactly one of image_base64 or path"),
    (b'{"text": "blorp fnord zzz"}', 422, "no motion found"),
    (b'{"text": "run 100 meters in 3 seconds"}', 422, "pelvis speed"),
])
def test_bad_requests_get_a_clear_answer(api, body: bytes, status: int, message: str) -> None:
    url, _ = api
    r = httpx.post(f"{url}/v1/generate", content=body, headers={"Content-Type": "application/json"}, timeout=120)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    if status == 422:  # the run is recorded even when it cannot be made
        assert "transcript.md" in r.json()["files"]


def test_files_outside_a_run_are_not_served(api) -> None:
    url, _ = api
    for path in ("/v1/runs/0001-zzzzzz/motion.bvh", "/v1/runs/../../etc/passwd", "/v1/runs/0001-abcdef/..%2Fx",
                 "/v1/nothing"):
        assert httpx.get(url + path, timeout=10).status_code == 404
    assert httpx.post(f"{url}/v1/other", json={}, timeout=10).status_code == 404


def test_paths_are_refused_beyond_loopback(model, photos: list[Path], tmp_path: Path) -> None:
    service = MotionService(make_context(model, critique_rounds=0, preview=False), tmp_path,
                            allow_paths=False)
    from ikmo.server import BadRequestError

    with pytest.raises(BadRequestError, match="image_base64"):
        service.generate({"text": "wave", "keyframes": [{"path": str(photos[0])}]})


def test_ikmo_serve_command(weights_dir: Path, tmp_path: Path) -> None:
    """The real command on a free port: it says where it listens, answers, and stops on SIGINT."""
    proc = subprocess.Popen([sys.executable, "-m", "ikmo.cli", "serve", "--port", "0", "--weights", str(weights_dir),
                             "--out", str(tmp_path / "runs")], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "IKMO_PREVIEW": "false", "IKMO_CRITIQUE_ROUNDS": "0"})
    try:
        assert proc.stderr is not None
        deadline, url = time.time() + 120, None
        while url is None and time.time() < deadline:
            line = proc.stderr.readline()
            if m := re.search(r"serving on (http://\S+)/v1", line):
                url = m.group(1)
        assert url is not None, "the server never said where it listens"
        r = httpx.post(f"{url}/v1/generate", json={"text": "walk forward 2 meters"}, timeout=120)
        assert r.status_code == 200 and (tmp_path / "runs" / r.json()["id"] / "motion.bvh").is_file()
    finally:
        proc.send_signal(2)
        proc.wait(timeout=30)
    assert proc.returncode == 0
