"""`ikmo serve` under load and its progress stream, on 127.0.0.1 with the tiny model:
`benchmarks/bench_serve.py` (20 requests from 4 clients against a real server process, one
worker) answers every request with a motion, loses none, and the waiting requests show in
/v1/health; a job's server-sent events carry every stage of the graph."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_twenty_requests_from_four_clients(weights_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_serve.py"), "--weights", str(weights_dir),
                           "--requests", "20", "--clients", "4", "--workers", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(out.read_text())
    assert res["answered"] == res["ok"] == res["distinct_ids"] == 20 and res["lost"] == 0, res
    assert res["statuses"] == [200]
    assert res["max_queued_seen"] >= 1 and res["max_busy_seen"] == 1, res  # four clients, one worker: a queue
    q = res["health_after"]["queue"]
    assert q["submitted"] == q["done"] == 21 and q["failed"] == 0 and q["queued"] == q["busy"] == 0  # + the warm-up
    assert "p50" in proc.stdout and "p90" in proc.stdout


def test_progress_streams_as_server_sent_events(server_process, weights_dir: Path, tmp_path: Path,
                                                photos: list[Path]) -> None:
    srv = server_process(["serve", "--port", "0", "--out", str(tmp_path / "runs")],
                         env={"IKMO_WEIGHTS": str(weights_dir), "IKMO_CRITIQUE_ROUNDS": "0", "IKMO_PREVIEW": "true"})
    r = httpx.post(srv.url + "/v1/jobs", json={"text": "walk forward 2 meters and strike this pose at 1 s",
                                                "keyframes": [{"path": str(photos[1]), "time_s": 1.0}]}, timeout=30)
    assert r.status_code == 202, r.text
    job = r.json()
    events: list[tuple[str, dict]] = []
    with httpx.stream("GET", srv.url + job["events"], timeout=120) as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in s.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name or "", json.loads(line[6:])))
    stages = [d.get("stage") for n, d in events if n == "progress"]
    for stage in ("queued", "started", "describe", "keyframe_pose", "trajectory", "generate", "critique", "export"):
        assert stage in stages, stages
    steps = [d for n, d in events if n == "progress" and d.get("stage") == "generate" and d.get("total")]
    assert len(steps) >= 2 and steps[-1]["step"] == steps[-1]["total"]  # each sampling step
    name, done = events[-1]
    assert name == "done" and done["status"] == 200 and "preview.mp4" in done["reply"]["files"]
    state = httpx.get(f"{srv.url}/v1/jobs/{job['id']}", timeout=10).json()
    assert state["state"] == "done" and state["reply"]["id"] == job["id"]
