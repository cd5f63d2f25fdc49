"""The agent evaluation runner (`ikmo eval agents`): every case × provider × repeat through the
real graph (`run_request`, or `Conversation` for chat cases) with the real tools, checked by
`expectations.check_case`, one JSON line per finished run in `<out>/results.jsonl`.

- Resumable: a run whose (case, provider, repeat) is already in results.jsonl is skipped.
- Parallel: `jobs` worker processes, each loading the motion model (and the evaluator) once and
  sharing it between its runs; one process with `jobs=1`.
- Recorded: every provider call goes through vcrpy, one cassette per case × provider × repeat in
  `<out>/cassettes/`; `replay=DIR` re-runs an evaluation from DIR's cassettes and run.json with no
  network (record mode "none"): the same calls get the same answers, so the scores are the same.
- Local providers (`smollm2`, `gemma3`) are started on 127.0.0.1 by the runner
  (`agents.local_llm.LlamaServer`), unless given with `@URL` of a running server.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ikmo.agents.errors import ProviderError
from ikmo.agents.local_llm import LOCAL_MODELS, LlamaServer
from ikmo.agents.providers import parse_provider
from ikmo.motion_model.errors import IKMoError, InputFileError
from ikmo.motion_model.motion_metrics import foot_skating_ratio
from ikmo.motion_model.representation.skeleton import FPS

from ..metrics import real_skating_level
from .cases import Case, Expectations
from .expectations import Outcome, PhotoTruth, check_case, facing_vs_travel, walks_forward

log = logging.getLogger(__name__)

RESULTS = "results.jsonl"
RUN_INFO = "run.json"
CASSETTES = "cassettes"
# A weak local model pads JSON until its context ends: bound it (as tests/integration/test_llama_cpp.py does).
LOCAL_MAX_OUTPUT_TOKENS = 384
SECRET_HEADERS = ["authorization", "x-api-key", "api-key", "openai-organization"]


@dataclass
class ProviderConfig:
    """One provider of an evaluation, as `--provider` names it.

    `offline`; `smollm2` / `gemma3` (a local llama.cpp server the runner starts, or `NAME@URL` for a
    running one); `openai-compatible:MODEL@URL`; `openai:MODEL`, `anthropic:MODEL`, `ollama:MODEL`
    (keys from the environment, as `ikmo generate` reads them).
    """

    label: str
    provider: str = "offline"
    model: str | None = None
    base_url: str | None = None
    local: str | None = None

    @property
    def offline(self) -> bool:
        return self.provider == "offline"

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.label)

    def settings(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"provider": self.provider, "model": self.model, "base_url": self.base_url}
        if self.local is not None:
            kw.update(max_output_tokens=LOCAL_MAX_OUTPUT_TOKENS, request_timeout_s=300.0)
        return kw


def parse_provider_arg(arg: str) -> ProviderConfig:
    """`--provider` → ProviderConfig. Raises ProviderError with the accepted forms."""
    arg = arg.strip()
    name, _, url = arg.partition("@")
    if name in LOCAL_MODELS:
        return ProviderConfig(label=name, provider="openai-compatible", model=name, base_url=url or None, local=name)
    if name.startswith("openai-compatible"):
        _, _, model = name.partition(":")
        if not url:
            raise ProviderError(f"--provider {arg}: an OpenAI-compatible provider needs its URL: "
                                "openai-compatible:MODEL@http://127.0.0.1:8000/v1")
        return ProviderConfig(label=f"openai-compatible:{model or 'default'}", provider="openai-compatible",
                              model=model or "default", base_url=url)
    spec = parse_provider(name)  # raises for unknown kinds and missing model names
    return ProviderConfig(label=spec.label, provider=spec.kind if spec.kind == "offline" else spec.label,
                          model=None, base_url=url or None)


# --------------------------------------------------------------------------- worker state


@dataclass
class Worker:
    """What one worker loads once and shares between its runs: the motion model and the evaluator."""

    weights: Path | None = None
    threads: int = 1
    critique_rounds: int | None = None
    exact_projection: bool = True  # false: stage 1 as gradient steps only (`ToolSettings.exact_projection`)
    _model: Any = None
    _evaluator: Any = None
    _evaluator_failed: bool = False

    @property
    def model(self) -> Any:
        if self._model is None:
            import torch

            from ikmo.motion_model.sampling import load_model

            torch.set_num_threads(self.threads)
            self._model = load_model(self.weights, "cpu")
        return self._model

    def similarity(self, text: str, features: np.ndarray | None) -> float | None:
        """Cosine of the evaluator's embeddings of `text` and the motion features (L, 263); None when
        the evaluator is unavailable."""
        if features is None or len(features) < 2 or self._evaluator_failed:
            return None
        if self._evaluator is None:
            from ..evaluator import load_evaluator

            try:
                self._evaluator = load_evaluator()
            except IKMoError as e:
                log.warning("text-motion similarity off: %s", e)
                self._evaluator_failed = True
                return None
        t = self._evaluator.embed_texts([text])[0]
        m = self._evaluator.embed_motions([features.astype(np.float32)])[0]
        return float(np.dot(t, m))


_WORKER: Worker | None = None


def _init_worker(weights: str | None, threads: int, critique_rounds: int | None, exact_projection: bool = True
                 ) -> None:
    global _WORKER
    from ikmo.tools.worker import filter_native_stderr

    # mediapipe's native start-up lines (TFLite, absl) go to the DEBUG log, as in the tool process;
    # the pool talks to this worker over its own pipes, never fd 1/2.
    filter_native_stderr()
    _WORKER = Worker(Path(weights) if weights else None, threads, critique_rounds, exact_projection)
    _WORKER.model  # noqa: B018 — load once, before the first task


# --------------------------------------------------------------------------- one run


@dataclass
class Task:
    case: dict[str, Any]
    provider: dict[str, Any]
    repeat: int
    out: str
    cassette: str | None
    replay: bool

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.case["id"], self.provider["label"], self.repeat)


@dataclass
class CallStats:
    """Provider calls of one run, read from its cassette (so a replay reports the same)."""

    calls: int = 0
    first_answers: int = 0
    first_invalid: int = 0
    structured_retries: int = 0
    tokens_in: int | None = None
    tokens_out: int | None = None


def call_stats(interactions: Sequence[tuple[Any, Any]]) -> CallStats:
    """Count calls, first answers (2 messages sent), retries after invalid output (more messages:
    `agents.structured.ask_structured` appends the answer and the error) and tokens from `usage`."""
    st = CallStats()
    tin = tout = 0
    seen_usage = False
    for req, resp in interactions:
        st.calls += 1
        try:
            body = json.loads(req.body or b"{}")
        except (ValueError, TypeError):
            body = {}
        n = len(body.get("messages") or [])
        if n == 2:
            st.first_answers += 1
        elif n == 4:
            st.first_invalid += 1
        if n > 2:
            st.structured_retries += 1
        try:
            usage = json.loads((resp.get("body") or {}).get("string") or b"{}").get("usage") or {}
        except (ValueError, TypeError, AttributeError):
            usage = {}
        if usage:
            seen_usage = True
            tin += int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
            tout += int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
    if seen_usage:
        st.tokens_in, st.tokens_out = tin, tout
    return st


@contextmanager
def _recording(path: str | None, replay: bool) -> Iterator[Any]:
    """A vcrpy cassette around a run (None: the offline provider, nothing to record)."""
    if path is None:
        yield None
        return
    import vcr

    rec = vcr.VCR(record_mode="none" if replay else "all", match_on=("method", "scheme", "host", "port", "path"),
                  filter_headers=SECRET_HEADERS, decode_compressed_response=True)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with rec.use_cassette(path, allow_playback_repeats=False) as cass:
        yield cass


def _outcome(final: dict[str, Any], case: Case, question: str | None, worker: Worker, text: str) -> Outcome:
    """The user's view of a finished run (final graph state), with the motion's files read back."""
    result = final.get("result")
    spec = result.spec if result is not None else final.get("spec")
    joints = features = None
    if result is not None:
        jp, fp = result.files.get("joints"), result.files.get("features")
        joints = np.load(jp) if jp and Path(jp).is_file() else None
        features = np.load(fp) if fp and Path(fp).is_file() else None
    kfs = final.get("keyframes") or {}
    photos = []
    for i, ph in enumerate(case.request.photos):
        tp = case.truth_path(ph)
        if tp.is_file():
            kf = kfs.get(str(i))
            photos.append(PhotoTruth(np.load(tp), kf.time_s if kf is not None else None, ph.joints))
    notes = list(result.notes) if result is not None else list(final.get("notes") or [])
    status = "question" if question is not None else ("ok" if final.get("status") == "ok" and result else "failed")
    return Outcome(status=status, answer=final.get("answer"), error=final.get("error"), question=question,
                   notes=notes, spec=spec, plan=final.get("plan"), joints=joints, features=features,
                   metrics=dict(result.metrics) if result is not None else {}, photos=photos,
                   text_similarity=worker.similarity(text, features) if result is not None else None)


def _run_turns(case: Case, ctx: Any, run_dir: Path, worker: Worker) -> list[tuple[Expectations, Outcome]]:
    from ikmo.agents.run import Conversation, run_request
    from ikmo.agents.state import ImageRef, MotionRequest

    req = case.request
    images = [ImageRef(path=str(case.photo_path(p)), time_s=p.time_s) for p in req.photos]
    if not req.conversation:
        mreq = MotionRequest(text=req.text, images=images, duration_s=req.duration_s, seed=ctx.settings.seed,
                             out_dir=str(run_dir / "out"))
        final = run_request(mreq, ctx)
        return [(case.expect, _outcome(final, case, None, worker, req.text))]
    conv = Conversation(run_dir / "chat.sqlite", "eval", ctx, run_dir / "chat")
    try:
        first = req.text + "".join(f" {case.photo_path(p)}" + (f"@{p.time_s:g}" if p.time_s is not None else "")
                                   for p in req.photos)
        out: list[tuple[Expectations, Outcome]] = []
        prev: Outcome | None = None
        for text, expect in [(first, case.expect), *((t.text, t.expect) for t in req.turns)]:
            final = conv.say(text)
            q = conv.pending_question() if "__interrupt__" in final else None
            o = _outcome(final, case, q, worker, req.text)
            o.previous = prev
            out.append((expect, o))
            prev = o
        return out
    finally:
        conv.close()


def _one_line(e: Exception) -> str:
    """An error as the one line a user reads (pydantic's as `field: message`)."""
    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:3])
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def run_folder(out: Path, provider_slug: str, case_id: str, repeat: int) -> Path:
    """Where one case × provider × repeat runs; the motion the user got is in its `out/`."""
    return out / "runs" / provider_slug / case_id / f"r{repeat}"


def run_task(task: Task, worker: Worker | None = None) -> dict[str, Any]:
    """One case × provider × repeat: run, check, and return its result record (never raises for a
    failure of the run itself: that is a result too)."""
    from ikmo.agents.context import Context
    from ikmo.agents.settings import AgentSettings
    from ikmo.tools.local import LocalToolbox

    worker = worker or _WORKER
    assert worker is not None, "run_task needs a Worker (or a pool initialised by _init_worker)"
    case = Case.model_validate(task.case)
    prov = ProviderConfig(**task.provider)
    run_dir = run_folder(Path(task.out), prov.slug, case.id, task.repeat)
    extra: dict[str, Any] = {}
    if worker.critique_rounds is not None:
        extra["critique_rounds"] = worker.critique_rounds
    if not worker.exact_projection:
        extra["exact_projection"] = False
    if task.replay and not prov.offline:
        extra["api_key"] = "replay"  # never sent anywhere: the cassette answers
    settings = AgentSettings(**prov.settings(), seed=case.request.seed + task.repeat, preview=False,
                             weights=worker.weights, **extra)
    ctx = Context(settings=settings, toolbox=LocalToolbox(settings, model=worker.model))
    record: dict[str, Any] = {"case": case.id, "category": case.category, "provider": prov.label,
                              "repeat": task.repeat, "seed": settings.seed}
    t0 = time.perf_counter()
    turns: list[tuple[Expectations, Outcome]] = []
    crash: str | None = None
    stats = CallStats()
    try:
        with _recording(task.cassette, task.replay) as cass:
            try:
                turns = _run_turns(case, ctx, run_dir, worker)
            except (IKMoError, ValueError) as e:  # a request the graph refuses before it starts
                turns = [(case.expect, Outcome(status="failed", error=_one_line(e)))]
            if cass is not None:
                stats = call_stats(list(cass.data))
    except Exception as e:  # a crash is a result (the case fails and says why), not the end of the evaluation
        crash = f"{type(e).__name__}: {e}"
        log.warning("case %s (%s, repeat %d) crashed: %s\n%s", case.id, prov.label, task.repeat, crash,
                    traceback.format_exc())
    latency = time.perf_counter() - t0
    checks = []
    for k, (expect, o) in enumerate(turns):
        for c in check_case(expect, o):
            d = c.to_dict()
            if len(turns) > 1:
                d["name"] = f"turn{k}.{d['name']}"
            checks.append(d)
    if crash is not None:
        checks.append({"name": "crash", "ok": False, "expected": "the run finishes", "got": crash[:500]})
    last = turns[-1][1] if turns else None
    notes = [n for _, o in turns for n in o.notes]
    record.update(
        passed=bool(checks) and all(c["ok"] for c in checks), checks=checks,
        status=[o.status for _, o in turns], latency_s=round(latency, 3),
        answer=(last.answer or last.error or last.question) if last else crash,
        # "…; used the offline agent instead" / "fields … from the offline agent" (agents/llm.py)
        fallbacks=sum(1 for n in notes if "offline agent instead" in n or "from the offline agent" in n),
        critique_rounds=_critique_rounds(run_dir), validation_retries=_validation_retries(run_dir),
        text_similarity=None if last is None or last.text_similarity is None else round(last.text_similarity, 4),
        motion=motion_measures(last) if last is not None else None,
        **asdict(stats),
    )
    return record


# Actions whose travel is not where the body faces: their frames say nothing about facing the path.
def motion_measures(o: Outcome) -> dict[str, float | None] | None:
    """The motion-level figures of one run's motion (None without one): foot skating and the real clips'
    level for its kind (travelling or in place, `eval.metrics.real_skating_level`), the body facing
    its direction of travel (mean |facing − travel| on frames faster than 0.3 m/s, only for motions
    that walk forwards), the heading, trajectory and keyframe errors the model reports."""
    if o.joints is None:
        return None
    facing, moving = facing_vs_travel(o.joints, FPS)
    forward = o.spec is not None and walks_forward(s.action for s in o.spec.description.segments)
    m = o.metrics
    return {"foot_skating": round(foot_skating_ratio(o.joints), 4),
            "skating_level": real_skating_level(o.joints, FPS),
            "facing_vs_travel_deg": round(facing, 2) if facing is not None and forward and moving >= 10 else None,
            **{k: round(float(m[k]), 4) if m.get(k) is not None else None
               for k in ("heading_err_mean_deg", "traj_err_mean", "keyframe_mpjpe")}}


def _agent_specs(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(run_dir.rglob("agent_spec.json"))]


def _critique_rounds(run_dir: Path) -> int:
    """Generation attempts beyond the first, over the run's turns (each is one critique round)."""
    return sum(max(len(s.get("attempts") or []) - 1, 0) for s in _agent_specs(run_dir))


def _validation_retries(run_dir: Path) -> int:
    """Times validation sent a provider's answer back to it (from the transcripts)."""
    n = 0
    for p in run_dir.rglob("transcript.json"):
        n += sum(1 for e in json.loads(p.read_text()) if e.get("node") == "validate"
                 and str(e.get("message", "")).startswith("retry:"))
    return n


# --------------------------------------------------------------------------- the evaluation


@dataclass
class EvalConfig:
    cases: list[Case]
    providers: list[ProviderConfig]
    out: Path
    repeats: int = 1
    jobs: int = 1
    weights: Path | None = None
    threads: int = 1
    critique_rounds: int | None = None
    exact_projection: bool = True
    replay: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)


def read_results(path: Path) -> list[dict[str, Any]]:
    """The records of results.jsonl (a line cut by a kill is skipped)."""
    out = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                log.warning("%s: skipping an incomplete line", path)
    return out


def replay_providers(replay: Path) -> list[ProviderConfig]:
    info = replay / RUN_INFO
    if not info.is_file():
        raise InputFileError(f"{replay} holds no {RUN_INFO}: give --replay the --out folder of a recorded evaluation")
    return [ProviderConfig(**p) for p in json.loads(info.read_text())["providers"]]


def _keep_recorded_urls(info: Path, providers: list[ProviderConfig]) -> None:
    """A local provider not started this time (all its runs were done) keeps the URL an earlier part of
    the evaluation recorded its calls under: a replay matches the cassettes on that URL."""
    if not info.is_file():
        return
    earlier = {p["label"]: p.get("base_url") for p in json.loads(info.read_text()).get("providers", [])}
    for p in providers:
        if p.local is not None and p.base_url is None and earlier.get(p.label):
            p.base_url = earlier[p.label]


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def run_eval(cfg: EvalConfig, on_result: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run every case × provider × repeat not yet in `<out>/results.jsonl`; return all records of
    the evaluation's cases and providers (earlier ones included)."""
    from ikmo.motion_model.fileio import write_json

    cfg.out.mkdir(parents=True, exist_ok=True)
    results_path = cfg.out / RESULTS
    done = {(r["case"], r["provider"], r["repeat"]) for r in read_results(results_path)}
    cassettes = (cfg.replay if cfg.replay is not None else cfg.out) / CASSETTES
    labels = [p.label for p in cfg.providers]
    if len(set(labels)) != len(labels):
        raise ProviderError(f"a provider is named twice: {labels}")
    tasks = [Task(case=c.model_dump(), provider=asdict(p), repeat=r, out=str(cfg.out),
                  cassette=None if p.offline else str(cassettes / p.slug / f"{c.id}__r{r}.yaml"),
                  replay=cfg.replay is not None)
             for p in cfg.providers for c in cfg.cases for r in range(cfg.repeats)]
    if cfg.replay is not None:
        missing = [t.cassette for t in tasks if t.cassette and not Path(t.cassette).is_file()]
        if missing:
            raise InputFileError(f"{len(missing)} recording(s) missing under {cassettes}, e.g. {missing[0]}")
    todo = [t for t in tasks if t.key not in done]
    log.info("%d run(s): %d done earlier, %d to do", len(tasks), len(tasks) - len(todo), len(todo))
    servers: dict[str, LlamaServer] = {}
    with ExitStack() as stack:
        if cfg.replay is None:
            for p in cfg.providers:
                if p.local is not None and p.base_url is None and any(t.provider["label"] == p.label for t in todo):
                    server = stack.enter_context(LlamaServer(p.local))
                    servers[p.label] = server
                    p.base_url = server.url
                    for t in todo:
                        if t.provider["label"] == p.label:
                            t.provider["base_url"] = server.url
        if cfg.replay is None:
            _keep_recorded_urls(cfg.out / RUN_INFO, cfg.providers)
        write_json(cfg.out / RUN_INFO, {**cfg.info, "providers": [asdict(p) for p in cfg.providers],
                                        "repeats": cfg.repeats, "n_cases": len(cfg.cases),
                                        "replay_of": str(cfg.replay) if cfg.replay else None})

        def finished(rec: dict[str, Any]) -> None:
            server = servers.get(rec["provider"])
            if server is not None and server.proc.poll() is not None:
                # Its runs would fall back to the offline agent and score as the provider's: keep none of
                # them; what finished before is kept and a rerun resumes.
                raise ProviderError(
                    f"the llama.cpp server for {rec['provider']} died (exit {server.proc.returncode}; -9 is "
                    f"usually the system out of memory) during case {rec['case']}; the results before it are "
                    f"kept in {results_path}: rerun the same command to resume")
            _append(results_path, rec)
            if on_result is not None:
                on_result(rec)

        if cfg.jobs <= 1 or len(todo) <= 1:
            worker = Worker(cfg.weights, cfg.threads, cfg.critique_rounds, cfg.exact_projection)
            for t in todo:
                finished(run_task(t, worker))
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=cfg.jobs, mp_context=mp.get_context("spawn"),
                                     initializer=_init_worker,
                                     initargs=(str(cfg.weights) if cfg.weights else None, cfg.threads,
                                               cfg.critique_rounds, cfg.exact_projection)) as pool:
                pending: set[Future[dict[str, Any]]] = {pool.submit(run_task, t) for t in todo}
                while pending:
                    ready, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in ready:
                        finished(fut.result())
    wanted = {t.key for t in tasks}
    return [r for r in read_results(results_path) if (r["case"], r["provider"], r["repeat"]) in wanted]
