"""Load test of `ikmo serve` on 127.0.0.1: N requests from C concurrent clients against a real
server process, every answer checked, latency percentiles and the queue depth it showed.

    python benchmarks/bench_serve.py                          # 20 requests, 4 clients, 1 worker, bundled weights
    python benchmarks/bench_serve.py --workers 2 --json runs/bench_serve.json

Each client sends its requests one after another (POST /v1/generate, a different seed each), so up
to C requests are in flight; a poller reads GET /v1/health every 50 ms and keeps the largest
queue it saw. One warm-up request is not counted. A request is *lost* when it gets no reply or a
reply that is not 200 with a motion. Standard library only (urllib), so it needs nothing the
package does not.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

TEXTS = ["walk forward 2 meters", "walk in an arc to the left", "wave with the right hand",
         "walk forward 3 meters then turn around", "run forward 4 meters"]


def _post(url: str, body: dict[str, Any], timeout: float) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return dict(json.loads(r.read()))


def start_server(args: argparse.Namespace, out: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """A real `ikmo serve --port 0` process; its URL from the log line that names the bound port."""
    log = out / "serve.log"
    cmd = [sys.executable, "-m", "ikmo.cli", "serve", "--port", "0", "--workers", str(args.workers),
           "--out", str(out / "runs")] + (["--weights", str(args.weights)] if args.weights else [])
    env = {**os.environ, "IKMO_PREVIEW": "false", "IKMO_CRITIQUE_ROUNDS": str(args.critique_rounds)}
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if m := re.search(r"serving on (http://[^\s/]+)", log.read_text(errors="replace")):
            return proc, m.group(1), log
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server did not start:\n{log.read_text(errors='replace')[-3000:]}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        proc, url, _ = start_server(args, Path(tmp))
        try:
            _post(url + "/v1/generate", {"text": TEXTS[0], "seed": 0}, args.timeout)  # warm-up, not counted
            results: list[dict[str, Any]] = []
            lock, stop = threading.Lock(), threading.Event()
            peak = {"queued": 0, "busy": 0}

            def poll() -> None:
                while not stop.is_set():
                    q = _get(url + "/v1/health")["queue"]
                    peak["queued"], peak["busy"] = max(peak["queued"], q["queued"]), max(peak["busy"], q["busy"])
                    time.sleep(0.05)

            def client(c: int) -> None:
                for k in range(c, args.requests, args.clients):
                    t0 = time.perf_counter()
                    try:
                        status, reply = _post(url + "/v1/generate", {"text": TEXTS[k % len(TEXTS)], "seed": k + 1},
                                              args.timeout)
                    except OSError as e:  # no reply at all
                        status, reply = 0, {"error": str(e)}
                    with lock:
                        results.append({"k": k, "status": status, "id": reply.get("id"), "seconds":
                                        time.perf_counter() - t0, "bvh": "motion.bvh" in (reply.get("files") or {})})

            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            t_start = time.perf_counter()
            threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t_start
            stop.set()
            poller.join()
            health = _get(url + "/v1/health")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    lat = sorted(r["seconds"] for r in results)
    ok = [r for r in results if r["status"] == 200 and r["bvh"]]
    return {"requests": args.requests, "clients": args.clients, "workers": args.workers,
            "answered": len(results), "ok": len(ok), "lost": args.requests - len(ok),
            "distinct_ids": len({r["id"] for r in ok}), "statuses": sorted({r["status"] for r in results}),
            "p50_s": statistics.median(lat), "p90_s": lat[min(len(lat) - 1, int(round(0.9 * (len(lat) - 1))))],
            "max_s": lat[-1], "wall_s": wall, "throughput_per_s": len(ok) / wall,
            "max_queued_seen": peak["queued"], "max_busy_seen": peak["busy"], "health_after": health}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--weights", type=Path, default=None, help="motion model folder (default: bundled)")
    p.add_argument("--critique-rounds", type=int, default=0)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    res = run(args)
    print(f"ikmo serve load: {res['requests']} requests from {res['clients']} clients, {res['workers']} worker(s)")
    print(f"  answered {res['answered']}, ok {res['ok']}, lost {res['lost']}, statuses {res['statuses']}")
    print(f"  latency p50 {res['p50_s']:.2f} s, p90 {res['p90_s']:.2f} s, max {res['max_s']:.2f} s; "
          f"{res['throughput_per_s']:.2f} motions/s over {res['wall_s']:.1f} s")
    print(f"  queue seen in /v1/health: up to {res['max_queued_seen']} waiting, {res['max_busy_seen']} busy")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
