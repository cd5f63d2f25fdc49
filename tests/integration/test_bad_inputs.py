"""The bad-input corpus (`tests/bad_inputs/*.yaml`): every mistake a user can make, tried for real.

CLI cases run `python -m ikmo.cli ...` in a subprocess, cwd a fresh folder; HTTP cases go to a real
`ikmo serve` on 127.0.0.1 (a free port, the tiny model) through httpx. Each case states the exit
code or HTTP status and a substring of the message. Any case fails on a traceback, an exit code 1,
a 5xx, or a file written outside the case's output folder; the server's run folders are checked
too (a 400 leaves nothing, a 422 only its transcript).

Case keys (CLI): `argv` (list; items may be {repeat: TEXT, times: N}), `exit`, `message`, optional
`stdin`, `env`, `allowed` (folders under the case's cwd that may be written; default [out]),
`nonroot` (a permission case: skipped when running as root, who may write anywhere).
HTTP: `method`, `path`, one of `json` / `body` (text) / `body_hex` / `body_gen` ({nested: N} or
{digits: N}), `headers`, `status`, `message`. Placeholders: {in} (the fixture files), {repo}, {root},
{weights}, {busy_port}, {photo_b64}, {notimage_b64}, {long} (a 20,000-character message).
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parents[1] / "bad_inputs"
CLI_CASES = [c for f in sorted(CORPUS.glob("cli*.yaml")) for c in yaml.safe_load(f.read_text())]
HTTP_CASES = [c for f in sorted(CORPUS.glob("http*.yaml")) for c in yaml.safe_load(f.read_text())]
# The server's output root; what a failed request may leave in its run folder.
KEPT_ON_FAILURE = {"transcript.json", "transcript.md", "agent_spec.json"}


def _png(size: int = 8) -> bytes:
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.new("RGB", (size, size), (200, 180, 160)).save(buf, format="PNG")
    return buf.getvalue()


def _make_inputs(d: Path) -> None:
    """The files the cases name, made once: good and broken photos, specs, joints, databases."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "photo.png").write_bytes(_png())
    (d / "notimage.png").write_text("this is not an image\n")
    (d / "empty.png").write_bytes(b"")
    (d / "binary.json").write_bytes(bytes(range(128, 256)) * 4)
    (d / "afile").write_text("a regular file\n")
    (d / "notsqlite.db").write_text("not a database, just text\n" * 20)
    (d / "a@b.png").write_bytes(_png())
    spec = {"description": {"text": "a person walks forward.", "duration_s": 3.0}, "n_frames": 61}
    (d / "spec.json").write_text(json.dumps(spec))
    bad_specs = {
        "spec_notjson.json": "{this is not json",
        "spec_list.json": "[1, 2, 3]",
        "spec_empty.json": "",
        "spec_nested.json": "[" * 100_000,
        "spec_bigseed.json": json.dumps({**spec, "options": {"seed": 2**64}}),
        "spec_hugeseed.json": json.dumps(spec)[:-1] + ', "options": {"seed": ' + "9" * 5000 + "}}",
        "spec_negseed.json": json.dumps({**spec, "options": {"seed": -1}}),
        "spec_duration0.json": json.dumps({**spec, "description": {"text": "walk", "duration_s": 0}}),
        "spec_duration999.json": json.dumps({**spec, "description": {"text": "walk", "duration_s": 999}}),
        "spec_nan.json": json.dumps(spec)[:-1] + ', "fps": NaN}',
        "spec_fps0.json": json.dumps({**spec, "fps": 0}),
        "spec_frames1.json": json.dumps({**spec, "n_frames": 1}),
        "spec_frames9999.json": json.dumps({**spec, "n_frames": 9999}),
        "spec_extra.json": json.dumps({**spec, "colour": "blue"}),
        "spec_notext.json": json.dumps({**spec, "description": {"duration_s": 3.0}}),
        "spec_guidance.json": json.dumps({**spec, "options": {"guidance_scale": 1e9}}),
        "spec_optsteps.json": json.dumps({**spec, "options": {"optimization_steps": 10**9}}),
        "spec_kf_late.json": json.dumps({**spec, "keyframes": [
            {"time_s": 8.0, "joints": [[0.0, 0.0, 0.0]] * 22}]}),
        "spec_kf_shape.json": json.dumps({**spec, "keyframes": [{"time_s": 1.0, "joints": [[0.0, 0.0]]}]}),
        "spec_traj_len.json": json.dumps({**spec, "trajectory": {"positions": [[0, 0.9, 0]] * 5,
                                                                  "mask": [True] * 5}}),
        "spec_traj_fast.json": json.dumps({**spec, "trajectory": {
            "positions": [[0, 0.9, 0]] + [[100.0, 0.9, 100.0]] * 60, "mask": [True] * 61}}),
    }
    for name, text in bad_specs.items():
        (d / name).write_text(text)
    joints = np.zeros((20, 22, 3), np.float32)
    joints[:, :, 1] = np.linspace(0, 1.6, 22)
    np.save(d / "joints.npy", joints)
    np.save(d / "joints_1e30.npy", joints + np.float32(1e30))
    np.save(d / "joints_nan.npy", np.where(np.arange(20)[:, None, None] == 3, np.nan, joints).astype(np.float32))
    np.save(d / "joints_2d.npy", np.zeros((20, 22), np.float32))
    np.save(d / "joints_empty.npy", np.zeros((0, 22, 3), np.float32))
    np.save(d / "joints_str.npy", np.array([["a"] * 3] * 22))
    np.save(d / "joints_obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (d / "joints_bad.npy").write_bytes(b"\x93NUMPY garbage")
    (d / "config_bad.yaml").write_text("provider: [unclosed\n")
    (d / "traj.npy").write_bytes(b"garbage")


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            try:
                st = p.lstat()
            except OSError:
                continue
            out[str(p.relative_to(root))] = (st.st_size if p.is_file() else -1, st.st_mtime_ns if p.is_file() else 0)
    return out


def _written_outside(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]],
                     allowed: list[str]) -> list[str]:
    def inside(rel: str) -> bool:
        return any(rel == a or rel.startswith(a + "/") or a.startswith(rel + "/") for a in allowed)

    return sorted(rel for rel, meta in after.items() if before.get(rel) != meta and not inside(rel))


def _fill(value: Any, subs: dict[str, str]) -> Any:
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: subs.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict) and set(value) == {"repeat", "times"}:
        return str(value["repeat"]) * int(value["times"])
    if isinstance(value, list):
        return [_fill(v, subs) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, subs) for k, v in value.items()}
    return value


def _check_clean(text: str, where: str) -> None:
    assert "Traceback (most recent call last)" not in text, f"traceback in {where}:\n{text[-3000:]}"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bad_inputs") / "in"
    _make_inputs(d)
    return d


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    yield s.getsockname()[1]
    s.close()


def _subs(inputs: Path, root: Path, weights: Path, busy_port: int) -> dict[str, str]:
    return {"in": str(inputs), "root": str(root), "repo": str(Path(__file__).resolve().parents[2]),
            "weights": str(weights), "busy_port": str(busy_port),
            "photo_b64": base64.b64encode((inputs / "photo.png").read_bytes()).decode(),
            "notimage_b64": base64.b64encode((inputs / "notimage.png").read_bytes()).decode(),
            "long": "walk " * 4000, "many_headers": "".join(f"X-{i}: {i}\r\n" for i in range(150))}


@pytest.mark.parametrize("case", CLI_CASES, ids=[c["id"] for c in CLI_CASES])
def test_cli_bad_input(case: dict[str, Any], inputs: Path, weights_dir: Path, busy_port: int,
                       tmp_path: Path) -> None:
    if case.get("nonroot") and os.geteuid() == 0:
        pytest.skip("a permission case: root may write anywhere")
    root = tmp_path / "root"
    cwd = root / "a" / "work"  # two levels down, so a path escaping `out` by '../..' stays inside `root`
    cwd.mkdir(parents=True)
    (root / "home").mkdir()
    (root / "tmp").mkdir()
    subs = _subs(inputs, root, weights_dir, busy_port)
    for setup in case.get("setup") or []:
        subprocess.run(_fill(setup, subs), shell=True, cwd=cwd, check=True)
    argv = [str(a) for a in _fill(case["argv"], subs)]
    env = {**os.environ, "HOME": str(root / "home"), "TMPDIR": str(root / "tmp"), "IKMO_TOOL_PROCESS": "false",
           "IKMO_WEIGHTS": str(weights_dir), "IKMO_PREVIEW": "false", "IKMO_CRITIQUE_ROUNDS": "0",
           "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "120", **_fill(case.get("env") or {}, subs)}
    env.pop("IKMO_CONFIG", None)
    before = _snapshot(root)
    proc = subprocess.run([sys.executable, "-m", "ikmo.cli", *argv], cwd=cwd, env=env, capture_output=True,
                          input=_fill(case.get("stdin"), subs), text=True, errors="replace",
                          timeout=case.get("timeout", 120))
    after = _snapshot(root)
    output = proc.stdout + proc.stderr
    _check_clean(output, "the output")
    assert proc.returncode != 1, f"exit 1 (an unhandled error):\n{output[-3000:]}"
    assert proc.returncode == case["exit"], f"exit {proc.returncode}, expected {case['exit']}:\n{output[-3000:]}"
    assert _fill(case["message"], subs) in output, f"expected {case['message']!r} in:\n{output[-3000:]}"
    allowed = [str((cwd / a).relative_to(root)) for a in case.get("allowed", ["out"])]
    assert not _written_outside(before, after, allowed), f"written outside {allowed}: " \
        f"{_written_outside(before, after, allowed)}"


# --------------------------------------------------------------------------------------------- HTTP


@pytest.fixture(scope="module")
def server(weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real `ikmo serve` on 127.0.0.1 (a free port), the tiny model, a short client timeout."""
    root = tmp_path_factory.mktemp("serve_root")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "IKMO_WEIGHTS": str(weights_dir), "IKMO_PREVIEW": "false", "IKMO_CRITIQUE_ROUNDS": "0",
           "HOME": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    stderr = root.parent / "serve_root.stderr"
    with open(stderr, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ikmo.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                                 "--out", "out", "--timeout", "2"], cwd=root, env=env, stdout=err, stderr=err)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, stderr.read_text()
        time.sleep(0.2)
    yield {"url": url, "root": root, "out": root / "out", "stderr": stderr, "port": port}
    proc.terminate()
    proc.wait(timeout=30)
    _check_clean(stderr.read_text(), "the server's stderr")


def _body(case: dict[str, Any], subs: dict[str, str]) -> bytes | None:
    if "json" in case:
        return json.dumps(_fill(case["json"], subs)).encode()
    if "body" in case:
        return str(_fill(case["body"], subs)).encode("utf-8", "surrogatepass")
    if "body_hex" in case:
        return bytes.fromhex(case["body_hex"])
    if "body_gen" in case:
        gen = case["body_gen"]
        if "nested" in gen:
            return b"[" * int(gen["nested"])
        if "nested_obj" in gen:
            return b'{"text": ' + b'{"a": ' * int(gen["nested_obj"])
        return b'{"text": "walk", "seed": ' + b"9" * int(gen["digits"]) + b"}"
    return None


def _raw_request(port: int, data: bytes) -> tuple[int, str]:
    """Send `data` as it is and read the reply until the server closes (or 15 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    reply = b"".join(chunks).decode("utf-8", "replace")
    # A request line http.server cannot parse gets its error page without a status line (HTTP/0.9).
    m = re.match(r"HTTP/1\.[01] (\d{3})", reply) or re.search(r"Error code: (\d{3})", reply)
    return (int(m.group(1)) if m else 0), reply


@pytest.mark.parametrize("case", HTTP_CASES, ids=[c["id"] for c in HTTP_CASES])
def test_http_bad_input(case: dict[str, Any], server: dict[str, Any], inputs: Path, weights_dir: Path) -> None:
    subs = _subs(inputs, server["root"], weights_dir, 0)
    body = _body(case, subs)
    headers = {"Content-Type": "application/json", **_fill(case.get("headers") or {}, subs)}
    runs_before = set(os.listdir(server["out"]))
    root_before = _snapshot(server["root"])
    if "raw" in case:  # bytes no well-behaved client sends: over a plain socket
        status, text = _raw_request(server["port"], str(_fill(case["raw"], subs)).encode("latin-1"))
    else:
        r = httpx.request(case.get("method", "POST"), server["url"] + _fill(case.get("path", "/v1/generate"), subs),
                          content=body, headers=headers, timeout=120)
        status, text = r.status_code, r.text
    assert status < 500, f"{status}: {text[:2000]}"
    assert status == case["status"], f"{status}, expected {case['status']}: {text[:2000]}"
    assert case["message"] in text, f"expected {case['message']!r} in {text[:2000]}"
    new_runs = set(os.listdir(server["out"])) - runs_before
    if status == 422:
        for run in new_runs:
            left = set(os.listdir(server["out"] / run))
            assert left <= KEPT_ON_FAILURE, f"a 422 left {sorted(left - KEPT_ON_FAILURE)} in {run}"
    elif status != 200:
        assert not new_runs, f"a {r.status_code} left run folders {sorted(new_runs)}"
    assert not _written_outside(root_before, _snapshot(server["root"]), ["out"])
    _check_clean(server["stderr"].read_text(), "the server's stderr")


def test_a_half_sent_request_loses_its_connection(server: dict[str, Any]) -> None:
    """`--timeout 2`: a client that announces a body and stops sending is cut off, and the server
    goes on answering others (a thread is not held forever)."""
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=30) as s:
        s.sendall(b"POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"text\": ")
        t0 = time.monotonic()
        assert s.recv(1024) == b""  # closed by the server
        assert time.monotonic() - t0 < 20
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=30) as s:
        s.sendall(b"GET /v1/hea")  # half a request line
        assert s.recv(1024) == b""
    assert httpx.get(server["url"] + "/v1/health", timeout=10).status_code == 200
