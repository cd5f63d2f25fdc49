"""The agent evaluation end to end: a quick subset of the suite through the real graph with the
offline provider and the bundled motion model, scored as the committed baseline says; and a
replay of a recorded SmolLM2 run (vcrpy cassettes, no server) giving the recorded scores.

When the offline agents change what they answer, regenerate the baseline with the command in
`scripts/make_agent_eval_baseline.py` and review the diff: it is the change in what users get."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ikmo.eval.agents.cases import load_cases
from ikmo.eval.agents.report import summarise, write_reports
from ikmo.eval.agents.runner import EvalConfig, ProviderConfig, read_results, replay_providers, run_eval
from ikmo.eval.metrics import REAL_SKATING, REAL_SKATING_TRAVELLING

pytestmark = pytest.mark.integration

BASELINE = Path(__file__).resolve().parents[2] / "eval" / "cases" / "agents" / "baseline"


def _scores(records: list[dict]) -> dict[str, tuple[bool, list[str]]]:
    return {f"{r['provider']}/{r['case']}/{r['repeat']}": (r["passed"], sorted(c["name"] for c in r["checks"]
                                                                              if not c["ok"])) for r in records}


def test_quick_subset_on_the_offline_provider_matches_the_baseline(tmp_path: Path) -> None:
    base = json.loads((BASELINE / "offline_quick.json").read_text())
    cases = load_cases(case_ids=sorted(base["cases"]))
    records = run_eval(EvalConfig(cases=cases, providers=[ProviderConfig("offline")], out=tmp_path))
    got = {r["case"]: {"passed": r["passed"], "failed": sorted(c["name"] for c in r["checks"] if not c["ok"])}
           for r in records}
    assert got == base["cases"]
    # resumable: a rerun finds every run done and runs nothing
    again = run_eval(EvalConfig(cases=cases, providers=[ProviderConfig("offline")], out=tmp_path))
    assert len(read_results(tmp_path / "results.jsonl")) == len(cases) == len(again)
    paths = write_reports(records, tmp_path, ["offline"])
    assert all(p.is_file() for p in paths.values())
    summary = summarise(records)["offline"]
    assert summary["pass_rate"] == pytest.approx(base["pass_rate"])
    # every motion carries the real level of its kind; a travelling one is held to the looser level, so
    # the kind-aware share is never below the all-clips one
    motions = [r["motion"] for r in records if r.get("motion")]
    assert motions and all(m["skating_level"] in (REAL_SKATING, REAL_SKATING_TRAVELLING) for m in motions)
    assert summary["skating_within_kind"] >= summary["skating_within_real"]
    assert "real clips of their kind" in (tmp_path / "report.md").read_text()


def test_the_suite_runs_with_stage_one_as_gradient_steps_only(tmp_path: Path) -> None:
    """`exact_projection=False` (`ikmo eval agents --no-exact-projection`) reaches the sampler of every
    run: the motion the user got was made by L-BFGS without the projection, and still meets its path."""
    cases = load_cases(case_ids=["shape-arc-left"])
    records = run_eval(EvalConfig(cases=cases, providers=[ProviderConfig("offline")], out=tmp_path,
                                  exact_projection=False))
    assert records[0]["passed"], records[0]
    out = tmp_path / "runs" / "offline" / "shape-arc-left" / "r0" / "out"
    opt = json.loads((out / "config.json").read_text())["sampler"]["optimization"]
    assert opt["projection"] is False and opt["optimizer"] == "lbfgs"
    report = json.loads((out / "report.json").read_text())
    assert report["metrics"]["traj_err_mean"] < 0.05


def test_replay_of_a_recorded_local_llm_run_gives_its_scores(tmp_path: Path) -> None:
    rec = BASELINE / "local_llm_run"
    recorded = read_results(rec / "results.jsonl")
    cases = load_cases(case_ids=sorted({r["case"] for r in recorded}))
    out = tmp_path / "replay"
    records = run_eval(EvalConfig(cases=cases, providers=replay_providers(rec), out=out, replay=rec))
    assert _scores(records) == _scores(recorded)
    keys = ("calls", "first_answers", "first_invalid", "structured_retries", "tokens_in", "tokens_out", "fallbacks")
    assert [[r[k] for k in keys] for r in sorted(records, key=lambda r: (r["case"], r["provider"]))] == \
        [[r[k] for k in keys] for r in sorted(recorded, key=lambda r: (r["case"], r["provider"]))]


def test_replay_without_a_recording_is_a_clear_error(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    shutil.copytree(BASELINE / "local_llm_run", rec)
    shutil.rmtree(rec / "cassettes")
    r = subprocess.run([sys.executable, "-m", "ikmo.cli", "eval", "agents", "--replay", str(rec), "--case",
                        "dist-3-meters", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2 and "recording(s) missing" in r.stderr


def test_list_and_a_bad_cases_folder(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "ikmo.cli", "eval", "agents", "--list", "--category", "turns"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "turn-left" in r.stdout and "dist-3-meters" not in r.stdout
    (tmp_path / "bad.yaml").write_text("cases:\n  - {id: a, category: turns, request: {txt: walk}}\n")
    r = subprocess.run([sys.executable, "-m", "ikmo.cli", "eval", "agents", "--list", "--cases", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "bad.yaml" in r.stderr and "request.text" in r.stderr


def test_a_local_server_that_dies_stops_the_evaluation_and_keeps_what_finished(tmp_path: Path) -> None:
    """A dead llama.cpp server must not turn into runs of the offline fallback scored as the provider's."""
    import os
    import signal

    pytest.importorskip("llama_cpp")
    from ikmo.agents.errors import ProviderError
    from ikmo.eval.agents.runner import parse_provider_arg

    cases = load_cases(case_ids=["dist-3-meters", "style-happy-walk"])

    def kill_server(_rec: dict) -> None:  # the runner's own llama.cpp child, killed as the OOM killer would
        pids = subprocess.run(["pgrep", "-P", str(os.getpid()), "-f", "llama_cpp.server"], capture_output=True,
                              text=True).stdout.split()
        assert pids, "the runner started no llama.cpp server"
        for pid in pids:
            os.kill(int(pid), signal.SIGKILL)

    with pytest.raises(ProviderError, match=r"died \(exit -9.*rerun the same command to resume"):
        run_eval(EvalConfig(cases=cases, providers=[parse_provider_arg("smollm2")], out=tmp_path),
                 on_result=kill_server)
    kept = read_results(tmp_path / "results.jsonl")
    assert [r["case"] for r in kept] == ["dist-3-meters"] and kept[0]["calls"] > 0


def test_a_resumed_evaluation_keeps_the_url_a_local_provider_was_recorded_under(tmp_path: Path) -> None:
    """A rerun that starts no server for a finished local provider must not forget the URL its
    cassettes were recorded under (a replay matches on it)."""
    import json

    from ikmo.eval.agents.runner import ProviderConfig, _keep_recorded_urls

    info = tmp_path / "run.json"
    info.write_text(json.dumps({"providers": [
        {"label": "smollm2", "provider": "openai-compatible", "model": "smollm2",
         "base_url": "http://127.0.0.1:55425/v1", "local": "smollm2"}]}))
    now = [ProviderConfig(label="smollm2", provider="openai-compatible", model="smollm2", local="smollm2"),
           ProviderConfig(label="gemma3", provider="openai-compatible", model="gemma3", local="gemma3")]
    _keep_recorded_urls(info, now)
    assert now[0].base_url == "http://127.0.0.1:55425/v1" and now[1].base_url is None
