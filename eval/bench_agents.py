"""End-to-end timing of `ikmo generate` with the offline provider (model load included).

Cases: a text-only request and a text + 2 photos request, both 6 s motions. For each case:
- `cli`: wall time of the `ikmo generate` process (imports, model load, agents, pose tools,
  sampling, exports) as a user runs it, the torch-bound tools in their own process
  (`ikmo.tools.worker`) — the number a user waits; target ≤ 5 s median on 2 cores;
- `cli_inproc`: the same command with `IKMO_TOOL_PROCESS=false`, everything in one process: the
  baseline of the tool process, in the same run (ratio `inproc/cli`);
- `serve`: a POST /v1/generate to a running `ikmo serve` (started once by the benchmark on a free
  loopback port, model loaded once): the agent graph warm, plus HTTP and JSON — what a game engine
  or script waits per request; its CPU seconds are the server process's;
- `tool`: `tools.generate_motion` alone on the same spec, in the same run.
Ratios serve/tool and cli/tool say what the agents and the process start cost. Stage timings
come from the run's transcript (per node) and the model's report.json. Beside each wall time the
CPU seconds (user + system; of the child process for `cli`, ffmpeg's encoder included) are
recorded, and the load average before and after: on a machine shared with other jobs wall time
inflates, CPU time much less, so the pair says how much was waiting.

All three modes write the whole output contract (joints, features, BVH, SMPL, preview.mp4, spec,
config, report). `critique_rounds` defaults to `ikmo generate`'s own default (2, what a user gets);
0 gives the latency of a request whose first motion is accepted; each retry of the critic adds one
sampling (~0.3-0.6 s, no exports).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CASES: dict[str, tuple[str, int]] = {
    "text": ("walk in an arc to the left, then wave, in 6 seconds", 0),
    "text+2img": ("walk forward 3 meters in 6 seconds, strike this pose at 2 s and this one at the end", 2),
}


def render_photos(out_dir: Path) -> list[Path]:
    """Two mannequin photos (arms down; right arm up) rendered by the pose room's renderer."""
    from PIL import Image

    from ikmo.tools.body_model import load_body_model
    from ikmo.tools.mannequin_render import Camera, render_pose

    bm = load_body_model()
    paths = []
    for name, (l_sh, r_sh) in {"arms_down": (-1.2, 1.2), "right_up": (-1.2, -1.0)}.items():
        pose = np.zeros((21, 3))
        pose[15, 2], pose[16, 2] = l_sh, r_sh
        img, _ = render_pose(bm, np.zeros(3), pose, Camera(), size=(384, 384))
        Image.fromarray(img).save(out_dir / f"{name}.png")
        paths.append(out_dir / f"{name}.png")
    return paths


def _stage_times(out: Path) -> dict[str, float]:
    """Seconds per graph node (from transcript.json) and per model stage (report.json)."""
    events = json.loads((out / "transcript.json").read_text())
    stages: dict[str, float] = {}
    for prev, cur in zip(events, events[1:], strict=False):
        stages[cur["node"]] = stages.get(cur["node"], 0.0) + cur["t"] - prev["t"]
    report = out / "report.json"
    if report.is_file():
        for k, v in json.loads(report.read_text()).get("timings_s", {}).items():
            stages[f"model.{k}"] = float(v)
    return {k: round(v, 3) for k, v in stages.items()}


def run(repeats: int = 3, weights: Path | None = None, out_json: Path | None = None, threads: int = 1,
        critique_rounds: int | None = None) -> dict[str, Any]:
    """Time every case `repeats` times in each mode; return (and optionally write) the table.

    threads: torch intra-op threads in this process and in the `ikmo generate` child (`--threads`);
    critique_rounds: the critic's retry budget in every mode (None: the Settings default).
    """
    import httpx
    import torch

    from ikmo.agents.settings import AgentSettings
    from ikmo.motion_model.constraints import MotionSpec
    from ikmo.motion_model.sampling import load_model
    from ikmo.tools.generate import generate_motion
    from ikmo.tools.toolbox import ToolSettings

    if critique_rounds is None:
        critique_rounds = AgentSettings.model_fields["critique_rounds"].default
    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="ikmo_bench_agents_"))
    photos = render_photos(tmp)
    t0 = time.perf_counter()
    model = load_model(weights, "cpu")
    load_s = time.perf_counter() - t0
    results: dict[str, Any] = {"model_load_s": round(load_s, 3), "cpu_count": os.cpu_count(), "threads": threads,
                               "critique_rounds": critique_rounds, "load_average_before": _load(), "cases": {}}
    # The output contract includes preview.mp4: time it as a user gets it, whatever the caller's env says.
    env = {**os.environ, "IKMO_PREVIEW": "true"}
    modes = {"cli": {**env, "IKMO_TOOL_PROCESS": "true"}, "cli_inproc": {**env, "IKMO_TOOL_PROCESS": "false"}}
    keys = ("cli_s", "cli_inproc_s", "serve_s", "tool_s", "cli_cpu_s", "cli_inproc_cpu_s", "serve_cpu_s", "tool_cpu_s")
    server, base = _start_server(tmp / "serve", weights, threads, {**env, "IKMO_CRITIQUE_ROUNDS": str(critique_rounds)})
    url = f"{base}/v1/generate"
    for name, (text, n_img) in CASES.items():
        row: dict[str, Any] = {k: [] for k in keys}
        for r in range(repeats):
            for mode, mode_env in modes.items():
                out = tmp / f"{name}_{mode}{r}"
                cmd = [sys.executable, "-m", "ikmo.cli", "--log-level", "WARNING", "generate", "--text", text,
                       "--out", str(out), "--no-progress", "--critique-rounds", str(critique_rounds),
                       "--threads", str(threads)]
                cmd += [a for p in photos[:n_img] for a in ("--keyframe", str(p))]
                if weights is not None:
                    cmd += ["--weights", str(weights)]
                t0, c0 = time.perf_counter(), _children_cpu()
                proc = subprocess.run(cmd, capture_output=True, text=True, env=mode_env)
                row[f"{mode}_s"].append(time.perf_counter() - t0)
                row[f"{mode}_cpu_s"].append(_children_cpu() - c0)
                if proc.returncode != 0:
                    raise RuntimeError(f"ikmo generate ({mode}) failed: {proc.stderr[-2000:]}")
                row[f"stages_{mode}"] = _stage_times(out)
            # Same seed, same motion, wherever the tools ran.
            row["modes_identical"] = row.get("modes_identical", True) and bool(np.array_equal(
                np.load(tmp / f"{name}_cli{r}" / "joints.npy"), np.load(tmp / f"{name}_cli_inproc{r}" / "joints.npy")))

            body = {"text": text, "seed": 0, "keyframes": [{"path": str(p)} for p in photos[:n_img]]}
            t0, c0 = time.perf_counter(), _process_cpu(server.pid)
            reply = httpx.post(url, json=body, timeout=600)
            row["serve_s"].append(time.perf_counter() - t0)
            row["serve_cpu_s"].append(_process_cpu(server.pid) - c0)
            if reply.status_code != 200:
                raise RuntimeError(f"ikmo serve answered {reply.status_code}: {reply.text[-2000:]}")
            spec = MotionSpec.model_validate_json((Path(reply.json()["dir"]) / "spec.json").read_text())

            t0, c0 = time.perf_counter(), time.process_time()
            generate_motion(spec, tmp / f"{name}_tool{r}", model=model, settings=ToolSettings(weights=weights))
            row["tool_s"].append(time.perf_counter() - t0)
            row["tool_cpu_s"].append(time.process_time() - c0)
        med = {k: statistics.median(row[k]) for k in keys}
        row.update({f"median_{k}": round(v, 3) for k, v in med.items()})
        row["serve_over_tool"] = round(med["serve_s"] / med["tool_s"], 2)
        row["cli_over_tool"] = round(med["cli_s"] / med["tool_s"], 2)
        row["inproc_over_cli"] = round(med["cli_inproc_s"] / med["cli_s"], 2)
        for k in keys:
            row[k] = [round(x, 3) for x in row[k]]
        results["cases"][name] = row
    server.terminate()
    server.wait(timeout=30)
    results["load_average_after"] = _load()
    if out_json is not None:
        from ikmo.motion_model.fileio import write_json

        write_json(out_json, results)
    return results


def _start_server(out: Path, weights: Path | None, threads: int, env: dict[str, str]
                  ) -> tuple[subprocess.Popen[bytes], str]:
    """`ikmo serve` on a free loopback port, as a user starts it; returns the process and its URL once
    /v1/health answers."""
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "ikmo.cli", "--log-level", "WARNING", "serve", "--port", str(port), "--out", str(out),
           "--threads", str(threads)] + (["--weights", str(weights)] if weights is not None else [])
    proc = subprocess.Popen(cmd, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ikmo serve exited with {proc.returncode} before answering")
        try:
            if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("ikmo serve did not answer /v1/health within 120 s")


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> list[float]:
    """The 1, 5 and 15 minute load averages (how busy the machine was)."""
    return [round(x, 2) for x in os.getloadavg()]


def _children_cpu() -> float:
    """User + system CPU seconds of all waited-for child processes so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def format_table(results: dict[str, Any]) -> str:
    lines = [f"model load {results['model_load_s']:.2f}s, {results['cpu_count']} CPUs, "
             f"{results.get('threads', '?')} torch thread(s), critique rounds {results.get('critique_rounds', 0)}; "
             f"load average {results.get('load_average_before')} before, {results.get('load_average_after')} after",
             f"{'case':<10} {'cli med s':>9} {'(cpu)':>6} {'in-proc s':>9} {'(cpu)':>6} {'inproc/cli':>10} "
             f"{'serve s':>7} {'tool s':>6} {'serve/tool':>10} {'cli/tool':>8} {'same motion':>11}"]
    for name, r in results["cases"].items():
        lines.append(f"{name:<10} {r['median_cli_s']:>9.2f} {r['median_cli_cpu_s']:>6.2f} "
                     f"{r['median_cli_inproc_s']:>9.2f} {r['median_cli_inproc_cpu_s']:>6.2f} "
                     f"{r['inproc_over_cli']:>10.2f} {r['median_serve_s']:>7.2f} {r['median_tool_s']:>6.2f} "
                     f"{r['serve_over_tool']:>10.2f} {r['cli_over_tool']:>8.2f} {str(r['modes_identical']):>11}")
        lines.append("  stages (cli run): " + ", ".join(f"{k}={v:.2f}" for k, v in r["stages_cli"].items()))
    return "\n".join(lines)
