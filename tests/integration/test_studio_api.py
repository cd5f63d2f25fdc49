"""The studio's routes (`ikmo.studio`) over HTTP on a real server in a thread (the tiny model, the
real pose tools): photo readings, threads and turns, the player's data, and the studio's bad
inputs (not an image, a path off the floor, an unknown photo or thread), each one clear message."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from helpers import make_context
from web_fixtures import serve_in_thread, wait_for_job

from ikmo.server import MotionService, build_app
from ikmo.studio import Studio

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def url(model, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    service = MotionService(make_context(model, critique_rounds=0, preview=False), tmp_path_factory.mktemp("studio"))
    studio = Studio(service)
    with serve_in_thread(build_app(service, studio)) as server:
        yield server.url
    service.close()
    studio.close()



def test_photo_thread_and_player(url: str, photos: list[Path]) -> None:
    r = httpx.post(url + "/v1/photos", content=photos[1].read_bytes(), timeout=120)
    assert r.status_code == 200, r.text
    photo = r.json()
    assert set(photo["verdict"]) >= {"ok", "problem", "note"} and len(photo["joints"]) == 22
    overlay = httpx.get(url + photo["overlay"], timeout=10)
    assert overlay.status_code == 200 and overlay.content.startswith(b"\x89PNG")
    tid = httpx.post(url + "/v1/threads", timeout=10).json()["id"]
    body = {"text": "walk along my path and strike this pose at 1 s", "photos": [{"id": photo["id"], "time_s": 1.0}],
            "path_xz": [[0.3, 0.5], [0.6, 1.2], [0.5, 2.0]], "duration_s": 3.0}
    r = httpx.post(f"{url}/v1/threads/{tid}/messages", json=body, timeout=30)
    assert r.status_code == 202, r.text
    done = wait_for_job(url, r.json()["job"])
    assert done["status"] == 200, done
    reply = done["reply"]
    assert "the trajectory is the path you drew (3 points)" in reply["notes"]
    player = httpx.get(f"{url}/v1/player/{reply['id']}", timeout=30).json()
    assert len(player["joints"]) == 60 and len(player["joints"][0]) == 22  # 3 s at 20 fps (duration_to_frames)
    end = player["target"]["positions"][-1]
    assert abs(end[0] - 0.5) < 1e-3 and abs(end[2] - 2.0) < 1e-3  # the drawn path is the target
    assert any(abs(k["time_s"] - 1.0) < 1e-6 for k in player["keyframes"]) and player["attempts"][0]["chosen"]
    thread = httpx.get(f"{url}/v1/threads/{tid}", timeout=10).json()
    assert thread["turns"][0]["message"] == body["text"] and thread["turns"][0]["status"] == 200
    assert any(t["id"] == tid and t["turns"] == 1 for t in httpx.get(url + "/v1/threads", timeout=10).json()["threads"])


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), [
    ("POST", "/v1/photos", b"this is not an image", 422, "try another photo"),
    ("POST", "/v1/photos", b"", 400, "send a photo of 1 byte to"),
    ("GET", "/v1/threads/t000000000000", None, 404, "no thread 't000000000000'"),
    ("GET", "/v1/player/0001-abcdef", None, 404, "no motion in run '0001-abcdef'"),
    ("GET", "/v1/photos/p0000000000000000/x.png", None, 404, "no file 'x.png'"),
])
def test_studio_bad_requests(url: str, method: str, path: str, body: bytes | None, status: int,
                             message: str) -> None:
    r = httpx.request(method, url + path, content=body, timeout=60)
    assert r.status_code == status and message in r.json()["error"], r.text


@pytest.mark.parametrize(("body", "message"), [
    ({"text": "walk", "path_xz": [[0, 0], [100.0, 3.0]]}, "must lie on the floor within 25 m of the start"),
    ({"text": "walk", "path_xz": [[1, 1]]}, "path_xz: list should have at least 2 items"),
    ({"text": "walk", "photos": [{"id": "p1234567890abcdef"}]}, "no photo 'p1234567890abcdef' on this server"),
    ({"text": ""}, "text = '': string should have at least 1 character"),
    ({"text": "walk", "duration_s": 200}, "duration_s = 200: input should be less than or equal to 120"),
])
def test_bad_messages_are_refused_before_running(url: str, body: dict, message: str) -> None:
    tid = httpx.post(url + "/v1/threads", timeout=10).json()["id"]
    r = httpx.post(f"{url}/v1/threads/{tid}/messages", json=body, timeout=30)
    assert r.status_code == 400 and message in r.json()["error"], r.text
    assert httpx.get(f"{url}/v1/threads/{tid}", timeout=10).json()["turns"] == []  # nothing started
