"""The Blender add-on (blender_addon/ikmo_blender), zipped by scripts/zip_blender_addon.py, installed
into a headless Blender and driven through its operators against a real `ikmo serve` process on
127.0.0.1 (tests/blender/run_addon.py, one Blender process)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from external_tools import run_blender

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "blender" / "run_addon.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`ikmo serve` as a user starts it (the tiny test model), on a free loopback port."""
    port = _free_port()
    out = tmp_path_factory.mktemp("serve")
    proc = subprocess.Popen([sys.executable, "-m", "ikmo.cli", "serve", "--port", str(port), "--weights",
                             str(weights_dir), "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "IKMO_PREVIEW": "false",
                                                            "IKMO_CRITIQUE_ROUNDS": "0"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, "ikmo serve exited before answering"
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("ikmo serve did not answer /v1/health within 180 s")
    yield url
    proc.send_signal(2)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def report(server: str, photos: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("addon")
    zipped = d / "ikmo_blender.zip"
    subprocess.run([sys.executable, str(REPO / "scripts" / "zip_blender_addon.py"), "--out", str(zipped)], check=True)
    run_blender(SCRIPT, str(zipped), server, str(photos[1]), str(d / "out.json"),
                env={"BLENDER_USER_SCRIPTS": str(d / "scripts")})
    return json.loads((d / "out.json").read_text())


def test_generate_imports_a_new_armature_with_the_answer(report: dict[str, Any]) -> None:
    assert report["module"] == [True, True]  # installed from the zip and enabled
    first = report["first"]
    assert first["result"] == ["FINISHED"], first
    assert first["error"] == "" and "walks forward" in first["answer"]
    assert first["armatures"] == ["IKMo"] and first["active"] == "IKMo" and first["active_format"] == "glb"
    assert first["meshes"] == ["mannequin"] and first["active_run"] == first["run_id"]
    assert first["frames"] == 4 * 20 and first["scene_fps"] == 20  # 4 s at 20 fps
    assert "imported as a new armature" in first["notes"]
    assert first["downloads"] == [f"{first['run_id']}_motion.glb"]  # into the folder the panel names


def test_a_selected_ikmo_armature_gets_the_new_motion(report: dict[str, Any]) -> None:
    new, onto = report["bvh_new"], report["bvh_onto"]
    assert new["result"] == onto["result"] == ["FINISHED"]
    # the GLB armature was selected: a BVH does not fit it, so the BVH came in as its own armature
    assert len(new["armatures"]) == 2 and new["active_format"] == "bvh" and "not an IKMo bvh armature" in new["notes"]
    assert new["frames"] == 3 * 20
    # that BVH armature selected: the next motion replaces its animation, no new object
    assert onto["armatures"] == new["armatures"] and onto["active"] == new["active"]
    assert onto["active_run"] == onto["run_id"] != new["run_id"] and "replaced the animation" in onto["notes"]
    assert onto["answer"] and onto["frames"] == 3 * 20


def test_server_errors_are_shown_in_the_panel(report: dict[str, Any]) -> None:
    bad = report["unmakeable"]
    assert bad["result"] == ["CANCELLED"] and "422" in bad["error"] and "no motion found" in bad["error"]
    assert bad["answer"] == ""
    down = report["no_server"]
    assert down["result"] == ["CANCELLED"] and "cannot reach the IKMo server" in down["error"]
    assert len(down["armatures"]) == 2  # nothing imported, nothing lost
