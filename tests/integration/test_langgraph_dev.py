"""`langgraph dev` (langgraph-cli's in-memory server) serves the graph of `langgraph.json` on
127.0.0.1, and one request runs through its API to a motion on disk.

langgraph-cli[inmem] needs protobuf >= 5 and mediapipe 0.10.21 (the photo reader) needs protobuf < 5,
so the two cannot share IKMo's virtual environment: the test runs the `langgraph` executable named
by IKMO_LANGGRAPH, else the side environment `scripts/install_langgraph_dev.sh` makes over IKMo's
(`.langgraph-env/`, which scripts/install.sh builds), else one on PATH; skipped when there is none.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SIDE_ENV = REPO / ".langgraph-env" / "bin" / "langgraph"  # scripts/install_langgraph_dev.sh (install.sh runs it)
LANGGRAPH = os.environ.get("IKMO_LANGGRAPH") or (str(SIDE_ENV) if SIDE_ENV.is_file() else shutil.which("langgraph"))


@pytest.mark.skipif(not LANGGRAPH, reason="no `langgraph` executable (IKMO_LANGGRAPH): langgraph-cli[inmem] needs "
                                          "protobuf>=5, mediapipe protobuf<5; see the README's `langgraph dev`")
def test_langgraph_dev_runs_one_request(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "langgraph.log"
    with open(log, "w") as f:
        # cwd=REPO: langgraph.json resolves its graph there; the server keeps its in-memory store in
        # REPO/.langgraph_api/, which .gitignore leaves out.
        proc = subprocess.Popen([str(LANGGRAPH), "dev", "--host", "127.0.0.1", "--port", str(port), "--no-browser",
                                 "--no-reload"], cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                                env={**os.environ, "IKMO_PREVIEW": "false", "LANGSMITH_TRACING": "false"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(url + "/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.5)
        thread = httpx.post(url + "/threads", json={}, timeout=30).json()["thread_id"]
        out = tmp_path / "run"
        request = {"text": "walk forward 2 meters then wave", "out_dir": str(out)}
        r = httpx.post(f"{url}/threads/{thread}/runs/wait", timeout=600,
                       json={"assistant_id": "ikmo", "input": {"request": request}})
        assert r.status_code == 200, r.text
        final = r.json()
        assert final.get("status") == "ok", str(final)[:2000]
        assert "walks forward" in final["answer"] and (out / "motion.bvh").is_file()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
