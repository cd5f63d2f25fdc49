"""Benchmark of the local LLM server's prompt cache (`agents.local_llm.LlamaServer(prompt_cache=...)`).

    python benchmarks/bench_llm_cache.py [--model smollm2|gemma3] [--requests 3] [--threads 1]

The agents call the model in turns with their own long system prompts; this sends what they send
for each of a few requests (the description agent's prompt, then the trajectory agent's, each with
its JSON schema and the request as the user message) to a server without and then with the cache,
both started here on 127.0.0.1, and prints seconds per call and the ratio. The first request of each
server pays the full prompt either way; the ratio is over the requests after it.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
import urllib.request

from ikmo.agents.local_llm import LlamaServer
from ikmo.agents.structured import render_prompt
from ikmo.motion_model.constraints import MotionDescription, TrajectoryPlan

log = logging.getLogger("bench_llm_cache")
REQUESTS = ["walk forward 3 meters", "jump twice then wave", "run in a circle", "walk backwards slowly",
            "walk in an arc to the left, then bow"]


def ask(url: str, system: str, user: str, max_tokens: int) -> float:
    """Seconds for one chat completion (JSON mode, greedy, as the agents ask)."""
    body = {"messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "max_tokens": max_tokens, "temperature": 0, "response_format": {"type": "json_object"}}
    req = urllib.request.Request(f"{url}/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=1800) as r:
        json.loads(r.read())
    return time.perf_counter() - t0


def run(model: str, cache: bool, requests: list[str], threads: int, max_tokens: int) -> list[float]:
    """Seconds per request (both agents' calls together) on a fresh server."""
    prompts = [render_prompt("describe_v1", MotionDescription), render_prompt("trajectory_v1", TrajectoryPlan)]
    out = []
    with LlamaServer(model, threads=threads, prompt_cache=cache) as server:
        for text in requests:
            dt = sum(ask(server.url, p, text, max_tokens) for p in prompts)
            log.info("cache=%s %-40s %.1f s", cache, text, dt)
            out.append(dt)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--requests", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=64)
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    reqs = REQUESTS[:max(2, a.requests)]
    base = run(a.model, False, reqs, a.threads, a.max_tokens)
    ours = run(a.model, True, reqs, a.threads, a.max_tokens)
    b, o = statistics.median(base[1:]), statistics.median(ours[1:])
    print(f"| {a.model}, {len(reqs)} requests, describe + trajectory prompts | no cache | prompt cache | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| first request (s) | {base[0]:.1f} | {ours[0]:.1f} | {base[0] / ours[0]:.2f} |")
    print(f"| later requests, median (s) | {b:.1f} | {o:.1f} | **{b / o:.2f}×** |")


if __name__ == "__main__":
    main()
