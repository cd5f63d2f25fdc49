"""The graph's nodes: begin, describe, keyframe_pose (one branch per image), trajectory, validate,
ask / fail, generate, critique, respond, and the routes between them.

Each node reads the state and `Runtime[Context]`, calls an agent, a tool (`Context.tools`) or a
policy (`critic`, `validation`, `fit_check`), and returns a partial state update with its transcript
events; it streams custom progress events (`{"stage": ..., ...}`). Errors a user can cause never
escape as tracebacks: they become a failed validation (back to the agent at fault, a question in a
conversation, or a clear error in batch).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Send, interrupt
from pydantic import ValidationError

from ikmo.motion_model.constraints import (
    GenerationOptions,
    MotionDescription,
    MotionResult,
    MotionSpec,
    TrajectoryPlan,
    Waypoints,
    duration_to_frames,
)
from ikmo.motion_model.errors import ConstraintError, IKMoError
from ikmo.tools import trajectory as traj_tools

from . import critic, offline_planner
from .context import Context
from .errors import ProviderError
from .extension import continuation
from .fit_check import check_fit, photo_stamp, wants_images
from .gesture_poses import gesture_keyframes
from .llm import llm_or_fallback, provider_label
from .offline_parser import apply_followup, parse_request, parsed_from_dict, parsed_to_dict, vocabulary
from .providers import is_offline
from .state import Attempt, Event, GraphState, KeyframeTask, MotionRequest, Validation, restart
from .structured import render_prompt
from .validation import check_spec, fault_of
from .vision import vision_content

# What each generation attempt writes (with spec.json, config.json and report.json): the critic needs
# only the measurements and the joints. The other formats (features, BVH, SMPL, preview: ~1.5 s, the
# preview most of it) are written once, for the chosen attempt, by `respond`.
ATTEMPT_FORMATS = ("joints",)


def _emit(runtime: Runtime[Context], stage: str, **data: Any) -> None:
    runtime.stream_writer({"stage": stage, **data})


# --------------------------------------------------------------------------- begin


def begin(state: GraphState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Start a run (or a conversation turn): reset per-run fields, keep what a follow-up edits.

    A request given as JSON (the LangGraph server of `langgraph dev`, which passes the input as
    it came) is read into its `MotionRequest` here, once, for every later node."""
    req = MotionRequest.model_validate(state["request"])
    old_kf = state.get("keyframes") or {}
    drop = {k: None for k in old_kf if int(k) >= len(req.images)}
    _emit(runtime, "begin")
    return {
        "request": req,
        "options": GenerationOptions(seed=req.seed, guidance_scale=runtime.context.settings.guidance_scale),
        "critique_round": 0, "retries": {"describe": 0, "trajectory": 0, "keyframe_pose": 0},
        "feedback": {"describe": "", "trajectory": "", "keyframe_pose": ""},
        "failures": {k: "" for k in (state.get("failures") or {})}, "keyframes": drop,
        "validation": None, "result": None, "best_attempt": None,
        "previous_result": state.get("result") if state.get("followup") else None,
        "decision": None, "status": "running",
        "error": None, "answer": None, "spec": None,
        "attempts": restart(), "notes": restart(),
        "transcript": restart(Event.now("user", req.text, images=[i.model_dump() for i in req.images],
                                        duration_s=req.duration_s, followup=state.get("followup"))),
    }


# --------------------------------------------------------------------------- describe


def describe(state: GraphState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Text (and a follow-up) → MotionDescription in the corpus vocabulary; keeps the offline parse."""
    ctx, req = runtime.context, state["request"]
    _emit(runtime, "describe")
    notes: list[str] = []
    followup = state.get("followup")
    if followup and state.get("parsed"):
        parsed, changes = apply_followup(parsed_from_dict(state["parsed"]), followup)
        notes.append(f"follow-up {followup!r}: {', '.join(changes) or 'nothing recognised'}")
    else:
        parsed = parse_request(req.text)
    if parsed.ignored:
        notes.append(f"ignored (not a motion): {'; '.join(repr(s) for s in parsed.ignored)}")
    offline_desc: MotionDescription | None = None
    offline_err: str | None = None
    try:
        offline_desc = offline_planner.describe(parsed, req.duration_s, len(req.images))
    except (ConstraintError, ValidationError, ValueError) as e:
        offline_err = str(e)
    notes.extend(parsed.notes)
    out: dict[str, Any] = {"parsed": parsed_to_dict(parsed), "followup": None, "failures": {"describe": ""}}
    desc = offline_desc
    if not is_offline(ctx):
        try:
            desc, more = _describe_llm(state, ctx, parsed.text, offline_desc)
            notes.extend(more)
        except ProviderError as e:  # no fallback allowed (or none possible): the validator decides
            desc, offline_err = None, str(e)
    if desc is None:
        out.update(failures={"describe": offline_err or "no description"},
                   transcript=[Event.now("describe", f"failed: {offline_err}")], notes=notes, description=None)
        return out
    out.update(description=desc, notes=notes,
               transcript=[Event.now("describe", desc.text, description=desc.model_dump(), notes=notes)])
    return out


def _describe_llm(state: GraphState, ctx: Context, text: str, fallback: MotionDescription | None
                  ) -> tuple[MotionDescription | None, list[str]]:
    voc = vocabulary()
    system = render_prompt(
        "describe_v1", MotionDescription,
        actions="\n".join(f"- {k}: {v['phrase']}" for k, v in voc["actions"].items()),
        styles=", ".join(voc["styles"]), cmu="; ".join(voc["cmu_descriptions"]),
    )
    user = f"Request: {text}\nNumber of keyframe photos: {len(state['request'].images)}"
    if state["request"].duration_s:
        user += f"\nRequired duration: {state['request'].duration_s} s"
    if fb := (state.get("feedback") or {}).get("describe"):
        user += f"\nYour previous description was rejected: {fb}"
    return llm_or_fallback(ctx, MotionDescription, system, user, fallback, "describe")


# --------------------------------------------------------------------------- keyframes


def keyframe_pose(task: KeyframeTask, runtime: Runtime[Context]) -> dict[str, Any]:
    """One image → KeyframePose at its time, checked (`fit_check.check_fit`). Errors (missing,
    unreadable, no person) become a failure."""
    ctx = runtime.context
    i, image, t = task["index"], task["image"], task["time_s"]
    _emit(runtime, "keyframe_pose", image=image.path, index=i)
    key = f"keyframe_pose:{i}"
    try:
        reading = ctx.tools.read_photo(Path(image.path), t, with_images=wants_images(ctx))
    except IKMoError as e:
        return {"failures": {key: f"image {i + 1} ({image.path}): {e}"}, "keyframes": {str(i): None},
                "transcript": [Event.now("keyframe_pose", f"image {i + 1} failed: {e}")]}
    except (OSError, ValueError) as e:
        return {"failures": {key: f"image {i + 1} ({image.path}) cannot be used: {e}; give a readable photo "
                                  "of one person"}, "keyframes": {str(i): None},
                "transcript": [Event.now("keyframe_pose", f"image {i + 1} failed: {e}")]}
    kf = reading.keyframe.model_copy(update={"time_s": t})
    kf, check, notes = check_fit(reading, kf, task, ctx)
    verdict = check["verdict"]
    said = "ok" if verdict["ok"] else f"{verdict['problem']}{' (mirrored)' if check['mirrored'] else ''}"
    return {"keyframes": {str(i): kf}, "failures": {key: ""}, "keyframe_checks": {str(i): check}, "notes": notes,
            "transcript": [Event.now("keyframe_pose", f"image {i + 1} → pose at {t:.2f}s ({sum(kf.joint_mask)} "
                                                      f"joints); check by {verdict['by']}: {said}",
                                     image=image.path, time_s=t, notes=kf.notes, check=check)]}


# --------------------------------------------------------------------------- trajectory


def trajectory(state: GraphState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Text + description → TrajectoryPlan (closed set of primitives) → dense pelvis path at 20 fps."""
    ctx, desc = runtime.context, state.get("description")
    _emit(runtime, "trajectory")
    assert desc is not None
    parsed = parsed_from_dict(state["parsed"])
    notes: list[str] = []
    drawn = state["request"].path_xz
    if drawn:  # the user's own path (drawn in the studio) is the plan: no agent second-guesses it
        plan: TrajectoryPlan | None = TrajectoryPlan(primitives=[Waypoints(points_xz=list(drawn))])
        notes.append(f"the trajectory is the path you drew ({len(drawn)} points)")
    else:
        try:
            plan = offline_planner.plan_trajectory(parsed, desc)
        except (ConstraintError, ValidationError, ValueError) as e:
            plan, notes = None, [f"offline trajectory failed: {e}"]
    if not is_offline(ctx) and not drawn:
        system = render_prompt("trajectory_v1", TrajectoryPlan)
        user = f"Request: {state['request'].text}\nDescription: {desc.model_dump_json()}"
        if fb := (state.get("feedback") or {}).get("trajectory"):
            user += f"\nYour previous plan was rejected: {fb}"
        try:
            plan, more = llm_or_fallback(ctx, TrajectoryPlan, system, user, plan, "trajectory")
            notes.extend(more)
        except ProviderError as e:
            return {"failures": {"trajectory": str(e)}, "transcript": [Event.now("trajectory", f"failed: {e}")],
                    "notes": notes}
    if plan is None:
        return {"failures": {"trajectory": notes[-1]}, "transcript": [Event.now("trajectory", notes[-1])]}
    try:
        dense = traj_tools.densify(plan, duration_to_frames(desc.duration_s))
    except (ConstraintError, ValidationError, ValueError) as e:
        return {"failures": {"trajectory": str(e)}, "plan": plan, "trajectory": None,
                "transcript": [Event.now("trajectory", f"failed: {e}", plan=plan.model_dump())]}
    pos = dense.positions_array()
    length, vmax = traj_tools.path_length(pos), float(traj_tools.speeds(pos).max(initial=0.0))
    return {"plan": plan, "trajectory": dense, "failures": {"trajectory": ""}, "notes": notes,
            "transcript": [Event.now("trajectory", f"{', '.join(p.kind for p in plan.primitives)}: {length:.2f} m, "
                                                   f"max {vmax:.2f} m/s", plan=plan.model_dump())]}


# --------------------------------------------------------------------------- validate


def validate(state: GraphState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Schema and physics (`validation.check_spec`); decides the next step."""
    ctx = runtime.context
    _emit(runtime, "validate")
    failures = {k: v for k, v in (state.get("failures") or {}).items() if v}
    error: str | None = None
    fault = "describe"
    spec: MotionSpec | None = None
    if failures:
        key = sorted(failures)[0]
        error, fault = "; ".join(failures[k] for k in sorted(failures)), key.split(":")[0]
    else:
        desc = state["description"]
        assert desc is not None
        photos = list((state.get("keyframes") or {}).values())
        parsed = parsed_from_dict(state["parsed"]) if state.get("parsed") else None
        words = gesture_keyframes(desc, parsed, [k.time_s for k in photos])
        kfs = sorted([*photos, *words], key=lambda k: k.time_s)
        try:
            spec = MotionSpec.from_description(desc, keyframes=kfs, trajectory=state.get("trajectory"),
                                               options=state.get("options") or GenerationOptions())
            spec.prefix = continuation(state.get("previous_result"), desc, spec.n_frames, spec.trajectory)
            check_spec(spec)
        except ConstraintError as e:
            error, fault = str(e), fault_of(str(e))
        except (ValidationError, ValueError) as e:
            error, fault = f"invalid specification: {e}", "describe"
    if error is None:
        assert spec is not None
        kept = "" if spec.prefix is None else (f"; continues the previous motion (its {spec.prefix.n_frames} "
                                               "frames kept, the last second blended into what follows)")
        return {"spec": spec, "validation": Validation(ok=True), "notes": [kept[2:]] if kept else [],
                "transcript": [Event.now("validate", f"ok: {spec.n_frames} frames, {len(spec.keyframes)} keyframes"
                                         f"{kept}")]}
    retries = (state.get("retries") or {}).get(fault, 0)
    # Offline agents are deterministic: sending the error back would return the same answer.
    can_retry = not is_offline(ctx) and fault != "keyframe_pose" and retries < ctx.settings.max_retries
    action = "retry" if can_retry else ("ask" if ctx.interactive else "fail")
    v = Validation(ok=False, error=error, fault=fault, action=action)  # type: ignore[arg-type]
    out: dict[str, Any] = {"validation": v, "spec": None,
                           "transcript": [Event.now("validate", f"{action}: {error}", fault=fault)]}
    if action == "retry":
        out["retries"] = {fault: retries + 1}
        out["feedback"] = {fault: error}
    return out


def route_after_describe(state: GraphState) -> list[Send | str] | str:
    """Fan out: one keyframe_pose branch per image (Send) and the trajectory agent, in parallel."""
    desc = state.get("description")
    if (state.get("failures") or {}).get("describe") or desc is None:
        return "validate"
    req = state["request"]
    times = offline_planner.keyframe_times(req, desc, state.get("parsed"))
    fb = (state.get("feedback") or {}).get("keyframe_pose") or None
    checks = state.get("keyframe_checks") or {}
    sends: list[Send | str] = []
    for i, im in enumerate(req.images):
        task = KeyframeTask(index=i, image=im, time_s=times[i], feedback=fb, text=req.text, out_dir=req.out_dir)
        if (prev := checks.get(str(i))) is not None and prev.get("photo") == photo_stamp(im.path):
            task["earlier_check"] = prev  # a re-plan must not pay for the provider's look again
        sends.append(Send("keyframe_pose", task))
    return [*sends, "trajectory"]


def route_after_validate(state: GraphState) -> str:
    v = state.get("validation")
    if v is None or v.ok:
        return "generate"
    if v.action == "retry":
        return "describe" if v.fault in ("describe", "keyframe_pose") else "trajectory"
    return "ask" if v.action == "ask" else "fail"


# --------------------------------------------------------------------------- ask / fail


def ask(state: GraphState, runtime: Runtime[Context]) -> dict[str, Any]:
    """In a conversation: put the problem to the user (interrupt) and treat the answer as a follow-up."""
    v = state["validation"]
    assert v is not None
    question = f"I can't make that motion: {v.error}. How should I change it?"
    answer = interrupt({"question": question, "error": v.error, "fault": v.fault})
    return {"followup": str(answer), "validation": None, "retries": {"describe": 0, "trajectory": 0},
            "failures": {k: "" for k in (state.get("failures") or {})},
            "transcript": [Event.now("ask", question), Event.now("user", str(answer))]}


def fail(state: GraphState, runtime: Runtime[Context]) -> dict[str, Any]:
    v = state["validation"]
    assert v is not None
    return {"status": "failed", "error": v.error, "transcript": [Event.now("fail", str(v.error), fault=v.fault)]}


# --------------------------------------------------------------------------- generate


def generate(state: GraphState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Call the motion model tool on the validated spec; each attempt writes into attempts/<k>/."""
    ctx = runtime.context
    spec = state["spec"]
    assert spec is not None
    options = state.get("options") or GenerationOptions()
    spec = spec.model_copy(update={"options": options})
    k = len(state.get("attempts") or [])
    out_dir = Path(state["request"].out_dir) / "attempts" / f"{k:02d}"
    _emit(runtime, "generate", attempt=k, step=0, total=None)

    def on_step(step: int, total: int) -> None:
        _emit(runtime, "generate", attempt=k, step=step, total=total)

    # `change`: what the critic changed for this attempt (None for the first one of a run).
    change = state.get("decision") if k > 0 else None
    t0 = time.perf_counter()
    try:
        result = ctx.tools.generate_motion(spec, out_dir, formats=ATTEMPT_FORMATS, on_step=on_step)
    except IKMoError as e:
        return {"status": "failed", "error": f"generation failed: {e}",
                "transcript": [Event.now("generate", f"failed: {e}")],
                "attempts": [Attempt(attempt=k, dir=str(out_dir), options=options, change=change, error=str(e))]}
    secs = time.perf_counter() - t0
    # NaN means "not measured" (no keyframes, no trajectory): leave it out of the records.
    metrics = {m: float(v) for m, v in result.metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
    limits = critic.limits_of(ctx.settings)
    sampler: dict[str, Any] = result.config.get("sampler") or {}  # type: ignore[assignment]
    attempt = Attempt(attempt=k, dir=str(out_dir), options=options, change=change, metrics=metrics,
                      problems=critic.measured_problems(metrics, limits), score=critic.attempt_score(metrics, limits),
                      seconds=round(secs, 3), guidance_scale=sampler.get("guidance_scale"),
                      optimization_steps=(sampler.get("optimization") or {}).get("iterations"))
    return {"result": result, "attempts": [attempt],
            "transcript": [Event.now("generate", f"attempt {k}: {secs:.2f}s", metrics=metrics)]}


# --------------------------------------------------------------------------- critique


def critique(state: GraphState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Accept, or retry with a change (seed, guidance) when one can plausibly help (`critic.decide`),
    bounded by `critique_rounds`; the best attempt by `critic.attempt_score` is the one kept. A
    provider may overrule the rules (seeing a contact sheet of the motion with `vision`)."""
    ctx = runtime.context
    _emit(runtime, "critique")
    limits = critic.limits_of(ctx.settings)
    attempts = [a for a in state.get("attempts") or [] if a.ok]
    last = attempts[-1]
    problems = critic.measured_problems(last.metrics, limits)
    rnd = state.get("critique_round", 0)
    best = critic.best_attempt(attempts, limits)
    decision = critic.decide(attempts, ctx.settings, rnd)
    notes: list[str] = []
    if not is_offline(ctx) and problems and rnd < ctx.settings.critique_rounds:
        system = render_prompt("critique_v1", critic.CritiqueDecision)
        spec = state["spec"]
        text = (f"Request: {state['request'].text}\nSpecification: {spec.description.model_dump_json() if spec else ''}"
                f"\nMeasured: {last.metrics}\nLimits: {limits}\nProblems: {problems}"
                f"\nThe measurement rules suggest: {decision.action} ({decision.reason})")
        user: str | list[dict[str, Any]] = text
        if ctx.settings.vision and (sheet := _contact_sheet(Path(last.dir))) is not None:
            user = vision_content(text, [sheet])
        decision, more = llm_or_fallback(ctx, critic.CritiqueDecision, system, user, decision, "critique")
        notes.extend(more)
    if decision.action == "accept" and problems:
        kept = critic.measured_problems(best.metrics, limits)
        if kept:  # the user hears what is off in the motion they get
            notes.append(f"accepted with: {'; '.join(kept)} (attempt {best.attempt})")
    update: dict[str, Any] = {"decision": decision.action, "best_attempt": best.attempt, "critique_round": rnd + 1,
                              "notes": notes,
                              "transcript": [Event.now("critique", f"{decision.action}: {decision.reason}",
                                                       problems=problems, best_attempt=best.attempt)]}
    options = state.get("options") or GenerationOptions()
    if decision.action in ("reseed", "stronger_guidance"):
        update["options"] = critic.next_options(decision, options, last, rnd)
    elif decision.action == "replan":
        update["feedback"] = {"describe": decision.reason}
    return update


def _contact_sheet(attempt_dir: Path) -> Any:
    """The attempt's joints as a contact sheet (a PIL image, also saved beside them as PNG), or None."""
    joints_path = attempt_dir / "joints.npy"
    if not joints_path.is_file():
        return None
    import numpy as np

    from ikmo.tools.preview import contact_sheet

    img = contact_sheet(np.load(joints_path), n=6)
    img.save(attempt_dir / "contact_sheet.png")
    return img


def route_after_critique(state: GraphState) -> str:
    d = state.get("decision")
    if d in ("reseed", "stronger_guidance"):
        return "generate"
    if d == "replan":
        return "describe"
    return "respond"


# --------------------------------------------------------------------------- respond


def respond(state: GraphState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Promote the best attempt's files into the output folder and write the run's records
    (`tools.outputs`); the answer says what was made, or why not."""
    from ikmo.tools.outputs import promote_attempt, write_run_records

    ctx = runtime.context
    _emit(runtime, "respond")
    req = state["request"]
    out_dir = Path(req.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    attempts = list(state.get("attempts") or [])
    # dict.fromkeys: a validation retry re-runs the photo branches, whose notes would repeat
    notes = list(dict.fromkeys(state.get("notes") or []))
    update: dict[str, Any] = {}
    events: list[Event] = []
    result: MotionResult | None = None
    chosen_id: int | None = None
    base = state.get("result")
    if state.get("status") != "failed" and base is not None:
        best = state.get("best_attempt")
        chosen = next(a for a in attempts if a.attempt == (attempts[-1].attempt if best is None else best))
        chosen_spec = base.spec.model_copy(update={"options": chosen.options})
        _emit(runtime, "export")
        t0 = time.perf_counter()
        try:
            written = promote_attempt(Path(chosen.dir), out_dir, chosen_spec, ctx.tools, preview=ctx.settings.preview)
        except IKMoError as e:  # e.g. the output folder is not writable: a clear answer, attempts kept
            update["error"] = f"writing the motion files failed: {e}"
        else:
            secs = time.perf_counter() - t0
            names = ", ".join(sorted(Path(f).name for f in written.values()))
            events.append(Event.now("export", f"attempt {chosen.attempt}: {names} in {secs:.2f}s",
                                    seconds=round(secs, 3)))
            chosen_id = chosen.attempt
            result = MotionResult(files=written, metrics=chosen.metrics, spec=chosen_spec, config=base.config,
                                  attempts=[a.model_dump(mode="json") for a in attempts], notes=[*base.notes, *notes])
            update["status"] = "ok"
            update["answer"] = _summary(result, state)
    if result is None:
        update["status"] = "failed"
        error = update.get("error") or state.get("error") or "unknown error"
        update["answer"] = f"Sorry, I could not make that motion: {error}"
    spec = result.spec if result is not None else state.get("spec")
    description, plan = state.get("description"), state.get("plan")
    agent_spec = {
        "request": req.model_dump(), "provider": provider_label(ctx),
        "description": description.model_dump() if description else None,
        "plan": plan.model_dump() if plan else None,
        "spec": spec.model_dump() if spec is not None else None,
        "attempts": [a.model_dump(mode="json") for a in attempts],
        "chosen_attempt": chosen_id, "keyframe_checks": _keyframe_checks(state), "notes": notes,
        "status": update["status"], "error": update.get("error") or state.get("error"),
    }
    events.append(Event.now("respond", update["answer"]))
    transcript = [e.model_dump(exclude_none=True) for e in [*(state.get("transcript") or []), *events]]
    files = write_run_records(out_dir, agent_spec, transcript, result, dict(result.files) if result else {})
    update["result"] = result.model_copy(update={"files": files}) if result is not None else None
    update["transcript"] = events
    return update


def _keyframe_checks(state: GraphState) -> list[dict[str, Any]]:
    """The fit check of each photo of this request, in photo order."""
    checks = state.get("keyframe_checks") or {}
    n = len(state["request"].images)
    return [checks[k] for k in sorted(checks, key=int) if int(k) < n]


def _summary(result: MotionResult, state: GraphState) -> str:
    spec = result.spec
    m = ", ".join(f"{k}={v:.3g}" for k, v in sorted(result.metrics.items()) if isinstance(v, int | float))
    flagged = [f"photo {c['image'] + 1}: {c['verdict']['problem'].replace('_', ' ')}"
               f"{' (mirrored)' if c['mirrored'] else ''}" for c in _keyframe_checks(state) if not c["verdict"]["ok"]]
    checks = f" Pose check flagged {'; '.join(flagged)} (see the notes)." if flagged else ""
    words = sum(k.source.startswith("words:") for k in spec.keyframes)
    poses = f"{len(spec.keyframes) - words} keyframe(s)" + (f", {words} key pose(s) from the words" if words else "")
    return (f"Made a {spec.n_frames / spec.fps:.1f}s motion: {spec.description.text} "
            f"({poses}, {len(result.attempts)} attempt(s)). {m}{checks}")
