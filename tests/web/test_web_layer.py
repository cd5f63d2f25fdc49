"""The shared web layer (`ikmo.web`) on a real uvicorn server on 127.0.0.1: the error contract,
the limits, the send timeout, the static files (three.js served from our own copy) and a real
browser loading a page that imports three.js through the import map."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from fastapi import APIRouter, Request
from web_fixtures import count_ink, serve_in_thread

from ikmo.motion_model.errors import UsageError
from ikmo.web import STATIC_DIR, THREE_IMPORT_MAP, ApiError, WebServer, create_app, read_json_object

pytestmark = pytest.mark.integration


def _app():  # noqa: ANN202
    app = create_app("test app", usage="use POST /echo")
    router = APIRouter()

    @router.post("/echo")
    async def echo(request: Request) -> dict:
        body = await read_json_object(request, max_bytes=1000)
        if body.get("fail"):
            raise ApiError(422, "cannot be made: because")
        return {"got": body}

    @router.get("/boom")
    def boom() -> dict:
        raise RuntimeError("a bug")

    app.include_router(router)
    return app


@pytest.fixture(scope="module")
def server():  # noqa: ANN201
    with serve_in_thread(_app(), timeout_s=1.0, max_body_bytes=1000) as srv:
        yield srv


def _raw(port: int, data: bytes) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("latin-1")


def test_port_zero_reports_the_real_port_and_a_taken_port_is_one_clear_line(server) -> None:  # noqa: ANN001
    assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
    with pytest.raises(UsageError, match=f"port {server.port} on 127.0.0.1 is in use"):
        WebServer(_app(), "127.0.0.1", server.port)


@pytest.mark.parametrize(("method", "path", "content", "status", "message"), [
    ("POST", "/echo", b'{"a": 1}', 200, '"got"'),
    ("POST", "/echo", b"", 400, "send a JSON body of 1 byte to 1000 bytes with its Content-Length"),
    ("POST", "/echo", b"x" * 2000, 400, "(this one announced '2000')"),
    ("POST", "/echo", b"[1]", 400, "the body must be a JSON object"),
    ("POST", "/echo", b'{"a": NaN}', 400, "NaN is not a JSON number"),
    ("POST", "/echo", b'{"fail": true}', 422, "cannot be made: because"),
    ("GET", "/echo", None, 404, "no such endpoint: GET /echo"),
    ("GET", "/nowhere?x=1", None, 404, "no such endpoint: GET /nowhere?x=1"),
    ("PUT", "/echo", b"{}", 405, "PUT is not supported; use POST /echo"),
    ("GET", "/boom", None, 500, "internal error: RuntimeError: a bug"),
    ("GET", "/static/nothing.js", None, 404, "error"),
])
def test_error_contract(server, method: str, path: str, content: bytes | None, status: int,  # noqa: ANN001
                        message: str) -> None:
    r = httpx.request(method, server.url + path, content=content, timeout=10)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json" and message in r.text
    assert set(r.json()) == ({"got"} if status == 200 else {"error"})


@pytest.mark.parametrize(("raw", "status", "message"), [
    (b"BREW /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405, "Unsupported method 'BREW'"),
    (b"GET /echo HTTP/1.1 extra\r\n\r\n", 400, "Bad request syntax"),
    (b"GET /echo HTTP/7.0\r\n\r\n", 400, "Invalid HTTP version (7.0)"),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400,
     "send a body of 1 byte to 1000 bytes with its Content-Length"),
    (b"GET /docs HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120)) + b"\r\n", 431,
     "Too many headers"),
])
def test_malformed_requests_get_a_json_answer(server, raw: bytes, status: int, message: str) -> None:  # noqa: ANN001
    reply = _raw(server.port, raw)
    assert reply.startswith(f"HTTP/1.1 {status} ") and message in reply, reply
    assert json.loads(reply.split("\r\n\r\n", 1)[1])["error"]


def test_a_client_that_stops_sending_is_cut_off_but_a_slow_answer_is_not(server) -> None:  # noqa: ANN001
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\": ")
        t0 = time.monotonic()
        assert s.recv(1024) == b""  # closed, nothing answered
        assert 0.5 < time.monotonic() - t0 < 8
    assert httpx.get(server.url + "/docs", timeout=10).status_code == 200  # OpenAPI docs, and still serving


def test_static_three_js_is_our_own_copy(server) -> None:  # noqa: ANN001
    version = (STATIC_DIR / "vendor" / "three" / "VERSION").read_text()
    assert version.startswith("three 0.187.0") and (STATIC_DIR / "vendor" / "three" / "LICENSE").is_file()
    for url in THREE_IMPORT_MAP["imports"].values():
        if url.endswith(".js"):
            r = httpx.get(server.url + url, timeout=10)
            assert r.status_code == 200 and "javascript" in r.headers["content-type"] and "REVISION" in r.text


def test_a_browser_draws_with_the_vendored_three_js(live_app, page, page_log, tmp_path) -> None:  # noqa: ANN001
    """A page importing three and OrbitControls through the import map renders a cube on a canvas."""
    from fastapi.responses import HTMLResponse

    app = create_app("three test")

    @app.get("/")
    def index() -> HTMLResponse:
        return HTMLResponse(f"""<!doctype html><html><body style="margin:0;background:#fff">
<script type="importmap">{json.dumps(THREE_IMPORT_MAP)}</script>
<script type="module">
import * as THREE from "three";
import {{ OrbitControls }} from "three/addons/controls/OrbitControls.js";
const r = new THREE.WebGLRenderer({{antialias: true}}); r.setSize(300, 300); r.setClearColor(0xffffff);
document.body.appendChild(r.domElement);
const scene = new THREE.Scene(), cam = new THREE.PerspectiveCamera(50, 1, 0.1, 10);
cam.position.set(2, 2, 2); cam.lookAt(0, 0, 0); new OrbitControls(cam, r.domElement);
scene.add(new THREE.Mesh(new THREE.BoxGeometry(1, 1, 1), new THREE.MeshBasicMaterial({{color: 0xd04020}})));
r.render(scene, cam); document.body.dataset.ready = THREE.REVISION;
</script></body></html>""")

    url = live_app(app)
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='187']", timeout=20000)
    png = page.screenshot(clip={"x": 0, "y": 0, "width": 300, "height": 300})
    (tmp_path / "three.png").write_bytes(png)
    assert count_ink(png) > 5000, "the canvas is blank"
    assert not page_log
