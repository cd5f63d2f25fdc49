"""The graph's nodes: begin, describe, keyframe_pose (one branch per image), trajectory, validate,
ask / fail, generate, critique, respond.

Each node reads the state and `Runtime[Context]`, returns a partial state update, appends to the
transcript and streams custom progress events (`{"stage": ..., ...}`). Errors a user can cause
never escape as tracebacks: they become a failed validation (back to the agent at fault, a
question in a conversation, or a clear error in batch).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from langgraph.runtime import Runtime
from langgraph.types import Send, interrupt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ikmo.motion_model.constraints import (
    GenerationOptions,
    KeyframePose,
    MotionDescription,
    MotionResult,
    MotionSpec,
    TrajectoryPlan,
    duration_to_frames,
)
from ikmo.motion_model.errors import ConstraintError, IKMoError, ProviderError
from ikmo.motion_model.fileio import write_json, write_text
from ikmo.motion_model.representation.skeleton import FPS
from ikmo.tools import trajectory as traj_tools

from . import offline_planner
from .context import MAX_FOOT_SKATING, MAX_KEYFRAME_MPJPE_M, MAX_TRAJ_ERROR_M, Context, PoseReading
from .offline_parser import apply_followup, parse_request, parsed_from_dict, parsed_to_dict, vocabulary
from .providers import is_offline, make_chat_model, parse_provider
from .state import RESET, GraphState, KeyframeTask, Validation
from .structured import StructuredOutputError, ask_structured, fill_from_fallback, render_prompt
from .vision import MAX_IMAGE_SIDE, PoseFitCheck, image_part, offline_fit_check, vision_content

log = logging.getLogger(__name__)

KEYFRAME_ROOT_TOLERANCE_M = 0.5
GUIDANCE_STEP = 1.5
# When a retry can plausibly help (see `retry_plan`):
# - stronger guidance pulls the motion onto its trajectory/keyframes; once a stronger round has not
#   cut the constraint errors (sum of error/limit) by at least this fraction, another will not either;
MIN_GUIDANCE_GAIN = 0.10
# - a new seed changes foot skating only within the model's spread (0.26-0.43 over 5 seeds for the
#   bench's text + 2 photos request, 0.101 for every seed of its text request): one extra draw has a
#   fair chance; more draws are a lottery at ~1 s each.
MAX_SKATING_RESEEDS = 1


def _ev(node: str, message: str, **data: Any) -> dict[str, Any]:
    return {"t": round(time.time(), 3), "node": node, "message": message, **({"data": data} if data else {})}


def _emit(runtime: Runtime[Context], stage: str, **data: Any) -> None:
    runtime.stream_writer({"stage": stage, **data})


def _label(ctx: Context) -> str:
    return "custom" if ctx.chat_model is not None else parse_provider(ctx.provider, ctx.model).label


# --------------------------------------------------------------------------- begin


def begin(state: GraphState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Start a run (or a conversation turn): reset per-run fields, keep what a follow-up edits."""
    req = state["request"]
    seed = req.seed if req.seed is not None else runtime.context.seed
    old_kf = state.get("keyframes") or {}
    drop = {k: None for k in old_kf if int(k) >= len(req.images)}
    _emit(runtime, "begin")
    return {
        "options": GenerationOptions(seed=seed, guidance_scale=runtime.context.guidance_scale,
                                     optimization_steps=None),
        "critique_round": 0, "retries": {"describe": 0, "trajectory": 0, "keyframe_pose": 0},
        "feedback": {"describe": "", "trajectory": "", "keyframe_pose": ""},
        "failures": {k: "" for k in (state.get("failures") or {})}, "keyframes": drop,
        "validation": None, "result": None, "best_attempt": None, "decision": None, "status": "running",
        "error": None, "answer": None, "spec": None,
        "attempts": [RESET], "notes": [RESET],
        "transcript": [RESET, _ev("user", req.text, images=[i.model_dump() for i in req.images],
                                  duration_s=req.duration_s, followup=state.get("followup"))],
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
    duration = req.duration_s if not followup else (req.duration_s if req.duration_s else None)
    offline_desc: MotionDescription | None = None
    offline_err: str | None = None
    try:
        offline_desc = offline_planner.describe(parsed, duration, len(req.images))
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
                   transcript=[_ev("describe", f"failed: {offline_err}")], notes=notes, description=None)
        return out
    out.update(description=desc, notes=notes,
               transcript=[_ev("describe", desc.text, description=desc.model_dump(), notes=notes)])
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
    return _llm_or_fallback(ctx, MotionDescription, system, user, fallback, "describe")


def _llm_or_fallback(ctx: Context, schema: type[BaseModel], system: str, user: str | list[dict[str, Any]],
                     fallback: Any, agent: str) -> tuple[Any, list[str]]:
    """Ask the provider; on repeated invalid output fill bad fields from the offline answer; on provider
    failure use the offline answer when `fallback_offline`, else raise."""
    label = _label(ctx)
    try:
        model = make_chat_model(ctx)
        return ask_structured(model, schema, system, user, max_retries=ctx.max_retries, label=label), []
    except StructuredOutputError as e:
        if fallback is None:
            raise
        obj, fields = fill_from_fallback(schema, e.last_data, fallback)
        return obj, [f"{agent}: {label} kept answering invalid output ({e.errors[-1]}); "
                     f"fields {', '.join(fields)} from the offline agent"]
    except ProviderError as e:
        if ctx.fallback_offline and fallback is not None:
            return fallback, [f"{agent}: {e}; used the offline agent instead"]
        raise


# --------------------------------------------------------------------------- keyframes


def keyframe_times(state: GraphState) -> list[float]:
    """Time (s) of each image: given with the image, else the text's hints in order ("at 3 s", "at the end"),
    else spread in image order over the motion (one image → the end)."""
    req, desc = state["request"], state["description"]
    assert desc is not None
    hints = list((state.get("parsed") or {}).get("keyframe_hints", []))
    end = (duration_to_frames(desc.duration_s) - 1) / FPS  # the time of the last frame
    free = [i for i, im in enumerate(req.images) if im.time_s is None]
    times = [im.time_s for im in req.images]
    for j, i in enumerate(free):
        if hints:
            h = hints.pop(0)
            times[i] = {"start": 0.0, "middle": end / 2, "end": end}[h] if isinstance(h, str) else float(h)
        else:
            times[i] = end * (j + 1) / len(free)
    return [float(t) for t in times if t is not None]


def read_pose(path: Path, time_s: float) -> PoseReading:
    """The local pose tools' whole reading of a photo: mediapipe landmarks (the process's shared
    detector) → SMPL fit → canonical KeyframePose, with the landmarks, the fit and the image."""
    from ikmo.tools.smpl_fit import read_photo

    return read_photo(path, time_s)


def default_pose_fn(path: Path, time_s: float) -> KeyframePose:
    """The local pose tools: mediapipe landmarks → SMPL fit → canonical KeyframePose."""
    return read_pose(path, time_s).keyframe


def keyframe_pose(task: KeyframeTask, runtime: Runtime[Context]) -> dict[str, Any]:
    """One image → KeyframePose at its time, checked (`_check_fit`). Errors (missing, unreadable, no
    person) become a failure."""
    ctx = runtime.context
    i, image, t = task["index"], task["image"], task["time_s"]
    _emit(runtime, "keyframe_pose", image=image.path, index=i)
    pose_fn = ctx.pose_fn or (ctx.tool_process.read_pose if ctx.tool_process is not None else read_pose)
    key = f"keyframe_pose:{i}"
    try:
        read = pose_fn(Path(image.path), t)
    except IKMoError as e:
        return {"failures": {key: f"image {i + 1} ({image.path}): {e}"}, "keyframes": {str(i): None},
                "transcript": [_ev("keyframe_pose", f"image {i + 1} failed: {e}")]}
    except (OSError, ValueError) as e:
        return {"failures": {key: f"image {i + 1} ({image.path}) cannot be used: {e}; give a readable photo "
                                  "of one person"}, "keyframes": {str(i): None},
                "transcript": [_ev("keyframe_pose", f"image {i + 1} failed: {e}")]}
    reading = None if isinstance(read, KeyframePose) else read
    kf = (read if isinstance(read, KeyframePose) else read.keyframe).model_copy(update={"time_s": t})
    kf, check, notes = _check_fit(kf, reading, task, ctx)
    n_joints = sum(kf.joint_mask)
    verdict = check["verdict"]
    said = "ok" if verdict["ok"] else f"{verdict['problem']}{' (mirrored)' if check['mirrored'] else ''}"
    return {"keyframes": {str(i): kf}, "failures": {key: ""}, "keyframe_checks": {str(i): check}, "notes": notes,
            "transcript": [_ev("keyframe_pose", f"image {i + 1} → pose at {t:.2f}s ({n_joints} joints); "
                                                f"check by {verdict['by']}: {said}",
                               image=image.path, time_s=t, notes=kf.notes, check=check)]}


def _check_fit(kf: KeyframePose, reading: PoseReading | None, task: KeyframeTask, ctx: Context
               ) -> tuple[KeyframePose, dict[str, Any], list[str]]:
    """Check one fit: the pose tools' own evidence (`offline_fit_check`), and with a vision provider
    (`Context.vision`) its look at the photo beside the fit's overlay. A flagged fit is kept and said
    in the notes; one called a left/right flip is mirrored (`Context.fix_pose_flips`). A provider that
    keeps answering garbage or is down costs a note, never the keyframe.
    Returns the (maybe mirrored) keyframe, the check record, the notes for the user."""
    i = task["index"]
    offline = offline_fit_check(kf, reading)
    record: dict[str, Any] = {"image": i, "path": task["image"].path, "photo": photo_stamp(task["image"].path),
                              "time_s": task["time_s"], "offline": offline.model_dump(), "vision": None,
                              "mirrored": False}
    verdict, by = offline, "offline"
    notes: list[str] = []
    earlier = (task.get("earlier_check") or {}).get("vision")
    if ctx.vision and not is_offline(ctx) and earlier is not None:
        verdict, by = PoseFitCheck.model_validate(earlier), _label(ctx)
        record.update(vision=earlier, vision_reused=True)
    elif ctx.vision and not is_offline(ctx):
        label = _label(ctx)
        try:
            verdict = _vision_fit_check(kf, reading, task, ctx, offline)
            by = label
            record["vision"] = verdict.model_dump()
        except ProviderError as e:  # StructuredOutputError included: bounded retries already spent
            what = (f"{label} gave no valid verdict in {len(e.errors)} tries ({e.errors[-1]})"
                    if isinstance(e, StructuredOutputError) else str(e))
            record["vision_error"] = what
            notes.append(f"keyframe check of image {i + 1}: {what}; the fit is kept as read")
    if not verdict.ok:
        msg = f"image {i + 1}: the pose check ({by}) flags {verdict.problem.replace('_', ' ')}: {verdict.note}"
        if verdict.problem == "left_right_flip" and ctx.fix_pose_flips:
            from ikmo.tools.smpl_fit import mirror_keyframe

            kf = mirror_keyframe(kf, note=f"mirrored after the pose check ({by}): {verdict.note}"[:300])
            record["mirrored"] = True
            msg += " — the pose was mirrored (left and right swapped)"
        notes.append(msg)
    record["verdict"] = {**verdict.model_dump(), "by": by}
    return kf, record, notes


def _vision_fit_check(kf: KeyframePose, reading: PoseReading | None, task: KeyframeTask, ctx: Context,
                      offline: PoseFitCheck) -> PoseFitCheck:
    """Ask the provider (prompt `keyframe_check_v1`) with the photo and the fit's check image, which is
    saved as `keyframes/image_NN_check.png` in the output folder."""
    from PIL import Image

    from ikmo.tools.overlay import save_overlay, skeleton_views
    from ikmo.tools.pose_estimation import load_image

    i, path = task["index"], Path(task["image"].path)
    photo = Image.fromarray(reading.image if reading is not None else load_image(path))
    if reading is not None:
        check_img = reading.overlay()
        assert isinstance(check_img, Image.Image)
    else:  # a bare keyframe: the photo beside the skeleton's views
        views = skeleton_views(kf.joints_array(), np.asarray(kf.joint_mask, bool), 384)
        small = photo.copy()
        small.thumbnail((10_000, 384))
        check_img = Image.new("RGB", (small.width + views.width, 384))
        check_img.paste(small, (0, 0))
        check_img.paste(views, (small.width, 0))
    if out_dir := task.get("out_dir"):
        save_overlay(Path(out_dir) / "keyframes" / f"image_{i + 1:02d}_check.png", check_img)
    text = (f"Request: {task.get('text', '')}\nPhoto {i + 1}, the pose at {task['time_s']:.2f} s."
            f"\nThe pose tools' own measurements: {offline.note}")
    user = vision_content(text, [image_part(photo, "JPEG", MAX_IMAGE_SIDE), check_img])
    system = render_prompt("keyframe_check_v1", PoseFitCheck)
    return ask_structured(make_chat_model(ctx), PoseFitCheck, system, user, max_retries=ctx.max_retries,
                          label=_label(ctx))


# --------------------------------------------------------------------------- trajectory


def trajectory(state: GraphState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Text + description → TrajectoryPlan (closed set of primitives) → dense pelvis path at 20 fps."""
    ctx, desc = runtime.context, state.get("description")
    _emit(runtime, "trajectory")
    assert desc is not None
    parsed = parsed_from_dict(state["parsed"])
    notes: list[str] = []
    try:
        plan: TrajectoryPlan | None = offline_planner.plan_trajectory(parsed, desc)
    except (ConstraintError, ValidationError, ValueError) as e:
        plan, notes = None, [f"offline trajectory failed: {e}"]
    if not is_offline(ctx):
        system = render_prompt("trajectory_v1", TrajectoryPlan)
        user = f"Request: {state['request'].text}\nDescription: {desc.model_dump_json()}"
        if fb := (state.get("feedback") or {}).get("trajectory"):
            user += f"\nYour previous plan was rejected: {fb}"
        try:
            plan, more = _llm_or_fallback(ctx, TrajectoryPlan, system, user, plan, "trajectory")
            notes.extend(more)
        except ProviderError as e:
            return {"failures": {"trajectory": str(e)}, "transcript": [_ev("trajectory", f"failed: {e}")],
                    "notes": notes}
    if plan is None:
        return {"failures": {"trajectory": notes[-1]}, "transcript": [_ev("trajectory", notes[-1])]}
    try:
        dense = traj_tools.densify(plan, duration_to_frames(desc.duration_s))
    except (ConstraintError, ValidationError, ValueError) as e:
        return {"failures": {"trajectory": str(e)}, "plan": plan, "trajectory": None,
                "transcript": [_ev("trajectory", f"failed: {e}", plan=plan.model_dump())]}
    pos = dense.positions_array()
    length, vmax = traj_tools.path_length(pos), float(traj_tools.speeds(pos).max(initial=0.0))
    return {"plan": plan, "trajectory": dense, "failures": {"trajectory": ""}, "notes": notes,
            "transcript": [_ev("trajectory", f"{', '.join(p.kind for p in plan.primitives)}: {length:.2f} m, "
                                             f"max {vmax:.2f} m/s", plan=plan.model_dump())]}


# --------------------------------------------------------------------------- validate


def _fault_of(message: str) -> str:
    m = message.lower()
    if "keyframe" in m:
        return "keyframe_pose"
    if any(w in m for w in ("trajectory", "speed", "pelvis", "path")):
        return "trajectory"
    return "describe"


def validate(state: GraphState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Schema and physics: MotionSpec.check() plus keyframe roots on the trajectory. Decides the next step."""
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
        kfs = sorted((state.get("keyframes") or {}).values(), key=lambda k: k.time_s)
        try:
            spec = MotionSpec.from_description(desc, keyframes=kfs, trajectory=state.get("trajectory"),
                                               options=state.get("options") or GenerationOptions())
            spec.check()
            _check_keyframe_roots(spec)
        except ConstraintError as e:
            error, fault = str(e), _fault_of(str(e))
        except (ValidationError, ValueError) as e:
            error, fault = f"invalid specification: {e}", "describe"
    if error is None:
        assert spec is not None
        return {"spec": spec, "validation": Validation(ok=True),
                "transcript": [_ev("validate", f"ok: {spec.n_frames} frames, {len(spec.keyframes)} keyframes")]}
    retries = (state.get("retries") or {}).get(fault, 0)
    # Offline agents are deterministic: sending the error back would return the same answer.
    can_retry = not is_offline(ctx) and fault != "keyframe_pose" and retries < ctx.max_retries
    action = "retry" if can_retry else ("ask" if ctx.interactive else "fail")
    v = Validation(ok=False, error=error, fault=fault, action=action)  # type: ignore[arg-type]
    out: dict[str, Any] = {"validation": v, "spec": None,
                           "transcript": [_ev("validate", f"{action}: {error}", fault=fault)]}
    if action == "retry":
        out["retries"] = {fault: retries + 1}
        out["feedback"] = {fault: error}
    return out


def _check_keyframe_roots(spec: MotionSpec) -> None:
    if spec.trajectory is None:
        return
    for i, kf in enumerate(spec.keyframes):
        if kf.root_position is None:
            continue
        p = traj_tools.position_at(spec.trajectory, kf.time_s)
        d = float(np.hypot(p[0] - kf.root_position[0], p[2] - kf.root_position[2]))
        if d > KEYFRAME_ROOT_TOLERANCE_M:
            raise ConstraintError(
                f"keyframe {i} puts the pelvis {d:.2f} m away from the trajectory at {kf.time_s:.2f}s; "
                "move the keyframe in time or change the path"
            )


def route_after_describe(state: GraphState) -> list[Send | str] | str:
    """Fan out: one keyframe_pose branch per image (Send) and the trajectory agent, in parallel."""
    if (state.get("failures") or {}).get("describe") or state.get("description") is None:
        return "validate"
    times = keyframe_times(state)
    fb = (state.get("feedback") or {}).get("keyframe_pose") or None
    checks = state.get("keyframe_checks") or {}
    sends: list[Send | str] = []
    for i, im in enumerate(state["request"].images):
        task = KeyframeTask(index=i, image=im, time_s=times[i], feedback=fb, text=state["request"].text,
                            out_dir=state["request"].out_dir)
        if (prev := checks.get(str(i))) is not None and prev.get("photo") == photo_stamp(im.path):
            task["earlier_check"] = prev  # a re-plan must not pay for the provider's look again
        sends.append(Send("keyframe_pose", task))
    return [*sends, "trajectory"]


def photo_stamp(path: str) -> str:
    """Path, size and modification time of a photo: a check is reused only for the same file."""
    try:
        st = Path(path).stat()
    except OSError:
        return path
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


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
            "transcript": [_ev("ask", question), _ev("user", str(answer))]}


def fail(state: GraphState, runtime: Runtime[Context]) -> dict[str, Any]:
    v = state["validation"]
    assert v is not None
    return {"status": "failed", "error": v.error, "transcript": [_ev("fail", str(v.error), fault=v.fault)]}


# --------------------------------------------------------------------------- generate


# What each generation attempt writes (with spec.json, config.json and report.json): the critic needs
# only the measurements and the joints. The other formats (features, BVH, SMPL, preview: ~1.5 s, the
# preview most of it) are written once, for the chosen attempt, by `respond`.
ATTEMPT_FORMATS = ("joints",)


def default_generate_fn(spec: MotionSpec, out_dir: Path, ctx: Context, on_step: Any) -> MotionResult:
    """The motion model tool (`ikmo.tools.generate.generate_motion`), writing `ATTEMPT_FORMATS`; in the
    tool process when the context has one (its model is loaded there)."""
    options: dict[str, Any] = {"steps": ctx.diffusion_steps, "guidance_scale": ctx.guidance_scale,
                               "settings": ctx.settings, "formats": ATTEMPT_FORMATS, "on_step": on_step}
    if ctx.tool_process is not None:
        return ctx.tool_process.generate_motion(spec, out_dir, **options)
    from ikmo.tools.generate import generate_motion

    return generate_motion(spec, out_dir, model=ctx.motion_model, weights=ctx.weights, device=ctx.device, **options)


def generate(state: GraphState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Call the motion model tool on the validated spec; each attempt writes into attempts/<k>/."""
    ctx = runtime.context
    spec = state["spec"]
    assert spec is not None
    options = state.get("options") or GenerationOptions()
    spec = spec.model_copy(update={"options": options})
    k = len([a for a in state.get("attempts") or [] if isinstance(a, dict)])
    out_dir = Path(state["request"].out_dir) / "attempts" / f"{k:02d}"
    _emit(runtime, "generate", attempt=k, step=0, total=None)

    def on_step(step: int, total: int) -> None:
        _emit(runtime, "generate", attempt=k, step=step, total=total)

    t0 = time.perf_counter()
    fn = ctx.generate_fn or default_generate_fn
    try:
        result = fn(spec, out_dir, ctx, on_step)
    except IKMoError as e:
        return {"status": "failed", "error": f"generation failed: {e}",
                "transcript": [_ev("generate", f"failed: {e}")],
                "attempts": [{"attempt": k, "dir": str(out_dir), "options": options.model_dump(), "error": str(e)}]}
    secs = time.perf_counter() - t0
    # NaN means "not measured" (no keyframes, no trajectory): leave it out of the JSON records.
    metrics = {k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
    # `change`: what the critic changed for this attempt (None for the first one of a run).
    change = state.get("decision") if k > 0 else None
    attempt = {"attempt": k, "dir": str(out_dir), "options": options.model_dump(), "change": change,
               "metrics": metrics, "problems": measured_problems(metrics, critique_limits(ctx)),
               "score": list(attempt_score(metrics, critique_limits(ctx))), "seconds": round(secs, 3)}
    return {"result": result, "attempts": [attempt],
            "transcript": [_ev("generate", f"attempt {k}: {secs:.2f}s", metrics=metrics)]}


# --------------------------------------------------------------------------- critique


class CritiqueDecision(BaseModel):
    """The critic's verdict on one generated motion."""

    model_config = ConfigDict(extra="forbid")
    action: str = Field(pattern="^(accept|reseed|stronger_guidance|replan)$")
    reason: str = Field(min_length=1, max_length=500)


def _metric(metrics: dict[str, float], key: str) -> float | None:
    v = metrics.get(key)
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


DEFAULT_LIMITS = {"traj_err_mean": MAX_TRAJ_ERROR_M, "keyframe_mpjpe": MAX_KEYFRAME_MPJPE_M,
                  "foot_skating_ratio": MAX_FOOT_SKATING}
_CONSTRAINT_METRICS = ("traj_err_mean", "keyframe_mpjpe")
_PROBLEM_LABELS = {"traj_err_mean": ("trajectory error", "{:.2f} m"), "keyframe_mpjpe": ("keyframe MPJPE", "{:.3f} m"),
                   "foot_skating_ratio": ("foot skating", "{:.2f}")}


def critique_limits(ctx: Context) -> dict[str, float]:
    """Metric name → the largest value the critic accepts (from the context)."""
    return {"traj_err_mean": ctx.max_traj_error_m, "keyframe_mpjpe": ctx.max_keyframe_mpjpe_m,
            "foot_skating_ratio": ctx.max_foot_skating}


def measured_problems(metrics: dict[str, float], limits: dict[str, float] | None = None) -> list[str]:
    """What the model's own report says is off (trajectory error, keyframe MPJPE, foot skating)."""
    out = []
    for key, limit in (limits or DEFAULT_LIMITS).items():
        if (v := _metric(metrics, key)) is not None and v > limit:
            name, fmt = _PROBLEM_LABELS[key]
            out.append(f"{name} {fmt.format(v)} > {limit:g}")
    return out


def attempt_score(metrics: dict[str, float], limits: dict[str, float] | None = None) -> tuple[int, float]:
    """How good an attempt is, lower is better: (number of limits exceeded, sum of value / limit over the
    measured metrics). An attempt within every limit beats any that exceeds one; among equals the smaller
    normalised errors win. The critic keeps the attempt with the lowest score."""
    lim = limits or DEFAULT_LIMITS
    ratios = [v / lim[k] for k in lim if (v := _metric(metrics, k)) is not None and lim[k] > 0]
    return sum(r > 1.0 for r in ratios), round(sum(ratios), 6)


def _constraint_error(metrics: dict[str, float], limits: dict[str, float]) -> float:
    return sum(v / limits[k] for k in _CONSTRAINT_METRICS if (v := _metric(metrics, k)) is not None)


def retry_plan(attempts: list[dict[str, Any]], limits: dict[str, float]) -> tuple[str | None, str]:
    """The change that can plausibly fix the last attempt, or None with the reason no retry would help.

    Constraint errors over their limits → stronger guidance, again only while the previous stronger
    round cut them by `MIN_GUIDANCE_GAIN`; foot skating alone → a new seed, at most `MAX_SKATING_RESEEDS`
    times per request (skating is mostly the model's and the constraints', not the seed's).
    """
    last = attempts[-1]
    metrics = last["metrics"]
    problems = measured_problems(metrics, limits)
    over = {k for k in limits if (v := _metric(metrics, k)) is not None and v > limits[k]}
    if over & set(_CONSTRAINT_METRICS):
        if last.get("change") == "stronger_guidance" and len(attempts) > 1:
            before, now = _constraint_error(attempts[-2]["metrics"], limits), _constraint_error(metrics, limits)
            if now > before * (1.0 - MIN_GUIDANCE_GAIN):
                return None, (f"stronger guidance did not reduce the constraint errors ({before:.2f} → {now:.2f} "
                              "of their limits); another round would not either")
        return "stronger_guidance", "; ".join(problems)
    reseeds = sum(a.get("change") == "reseed" for a in attempts)
    if reseeds >= MAX_SKATING_RESEEDS:
        return None, (f"foot skating stayed over {limits['foot_skating_ratio']:g} after {reseeds} new seed(s): it "
                      "comes from the model and the constraints more than from the seed")
    return "reseed", "; ".join(problems)


def critique(state: GraphState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Accept, or retry with a change (seed, guidance) when one can plausibly help — bounded by
    `critique_rounds`; the best attempt by `attempt_score` is the one kept."""
    ctx = runtime.context
    _emit(runtime, "critique")
    limits = critique_limits(ctx)
    attempts = [a for a in state.get("attempts") or [] if isinstance(a, dict) and "metrics" in a]
    last = attempts[-1]
    problems = measured_problems(last["metrics"], limits)
    rnd = state.get("critique_round", 0)
    best = min(attempts, key=lambda a: attempt_score(a["metrics"], limits))["attempt"]
    notes: list[str] = []
    if not problems:
        decision = CritiqueDecision(action="accept", reason="measured errors within limits")
    elif rnd >= ctx.critique_rounds:
        decision = CritiqueDecision(action="accept", reason=f"out of critique rounds; best attempt kept ({best})")
    else:
        action, reason = retry_plan(attempts, limits)
        if action is None:
            decision = CritiqueDecision(action="accept", reason=f"{reason}; best attempt kept ({best})"[:500])
        else:
            decision = CritiqueDecision(action=action, reason=reason[:500])
    if not is_offline(ctx) and problems and rnd < ctx.critique_rounds:
        system = render_prompt("critique_v1", CritiqueDecision)
        spec = state["spec"]
        text = (f"Request: {state['request'].text}\nSpecification: {spec.description.model_dump_json() if spec else ''}"
                f"\nMeasured: {last['metrics']}\nLimits: {limits}\nProblems: {problems}"
                f"\nThe measurement rules suggest: {decision.action} ({decision.reason})")
        user: str | list[dict[str, Any]] = text
        if ctx.vision and (sheet := _contact_sheet(Path(last["dir"]))) is not None:
            user = vision_content(text, [sheet])
        decision, more = _llm_or_fallback(ctx, CritiqueDecision, system, user, decision, "critique")
        notes.extend(more)
    if decision.action == "accept" and problems:
        kept = measured_problems(next(a for a in attempts if a["attempt"] == best)["metrics"], limits)
        if kept:  # the user hears what is off in the motion they get
            notes.append(f"accepted with: {'; '.join(kept)} (attempt {best})")
    opts = state.get("options") or GenerationOptions()
    update: dict[str, Any] = {"decision": decision.action, "best_attempt": best, "critique_round": rnd + 1,
                              "notes": notes,
                              "transcript": [_ev("critique", f"{decision.action}: {decision.reason}",
                                                 problems=problems, best_attempt=best)]}
    if decision.action == "reseed":
        update["options"] = opts.model_copy(update={"seed": (opts.seed or 0) + 1000 + rnd})
    elif decision.action == "stronger_guidance":
        base = opts.guidance_scale if opts.guidance_scale is not None else 2.5
        update["options"] = opts.model_copy(update={"guidance_scale": base * GUIDANCE_STEP,
                                                    "optimization_steps": (opts.optimization_steps or 5) * 2})
    elif decision.action == "replan":
        update["feedback"] = {"describe": decision.reason}
    return update


def _contact_sheet(attempt_dir: Path) -> Any:
    """The attempt's joints as a contact sheet (a PIL image, also saved beside them as PNG), or None."""
    joints_path = attempt_dir / "joints.npy"
    if not joints_path.is_file():
        return None
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
    """Write agent_spec.json and the transcript; promote the best attempt's files into the output folder."""
    _emit(runtime, "respond")
    req = state["request"]
    out_dir = Path(req.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    attempts = [a for a in state.get("attempts") or [] if isinstance(a, dict)]
    # dict.fromkeys: a validation retry re-runs the photo branches, whose notes would repeat
    notes = list(dict.fromkeys(n for n in state.get("notes") or [] if isinstance(n, str) and n != RESET))
    update: dict[str, Any] = {}
    state_events: list[dict[str, Any]] = []
    result: MotionResult | None = None
    chosen_id: int | None = None
    if state.get("status") != "failed" and state.get("result") is not None:
        best = state.get("best_attempt")
        best = attempts[-1]["attempt"] if best is None else best
        chosen = next(a for a in attempts if a["attempt"] == best)
        base: MotionResult = state["result"]  # type: ignore[assignment]
        chosen_spec = base.spec.model_copy(update={"options": GenerationOptions(**chosen["options"])})
        _emit(runtime, "export")
        t0 = time.perf_counter()
        try:
            written = _promote(Path(chosen["dir"]), out_dir, chosen_spec, runtime.context)
        except IKMoError as e:  # e.g. the output folder is not writable: a clear answer, attempts kept
            update["error"] = f"writing the motion files failed: {e}"
        else:
            secs = time.perf_counter() - t0
            names = ", ".join(sorted(Path(f).name for f in written.values()))
            state_events.append(_ev("export", f"attempt {best}: {names} in {secs:.2f}s", seconds=round(secs, 3)))
            chosen_id = best
            result = MotionResult(files=written, metrics=chosen.get("metrics", {}), spec=chosen_spec,
                                  config=base.config, attempts=attempts, notes=[*base.notes, *notes])
            update["status"] = "ok"
            update["answer"] = _summary(result, state)
    if result is None:
        update["status"] = "failed"
        error = update.get("error") or state.get("error") or "unknown error"
        update["answer"] = f"Sorry, I could not make that motion: {error}"
    spec = result.spec if result is not None else state.get("spec")
    description, plan = state.get("description"), state.get("plan")
    agent_spec = {
        "request": req.model_dump(), "provider": _label(runtime.context),
        "description": description.model_dump() if description else None,
        "plan": plan.model_dump() if plan else None,
        "spec": spec.model_dump() if spec is not None else None, "attempts": attempts,
        "chosen_attempt": chosen_id, "keyframe_checks": _keyframe_checks(state), "notes": notes,
        "status": update["status"], "error": update.get("error") or state.get("error"),
    }
    files = dict(result.files) if result is not None else {}
    files["agent_spec"] = str(write_json(out_dir / "agent_spec.json", agent_spec))
    transcript = [e for e in state.get("transcript") or [] if isinstance(e, dict)]
    transcript += [*state_events, _ev("respond", update["answer"])]
    files["transcript"] = str(write_json(out_dir / "transcript.json", transcript))
    files["transcript_md"] = str(write_text(out_dir / "transcript.md", transcript_markdown(transcript)))
    if result is not None:
        result = result.model_copy(update={"files": files})
        write_json(out_dir / "result.json", result.model_dump(mode="json"))
        files["result"] = str(out_dir / "result.json")
        result = result.model_copy(update={"files": files})
    update["result"] = result
    update["transcript"] = [*state_events, transcript[-1]]
    return update


def _promote(src: Path, dst: Path, spec: MotionSpec, ctx: Context) -> dict[str, str]:
    """The chosen attempt's files in `dst`: copy what the attempt wrote (joints, spec, config, report),
    write the formats it did not (features, BVH, SMPL, and preview.mp4 unless `ctx.preview` is off)
    from its joints. Returns {format or file stem: path}, the keys of `generate_motion`'s files."""
    from ikmo.tools.exports import ALL_FORMATS, FILE_NAMES, write_motion_files

    write = ctx.tool_process.write_motion_files if ctx.tool_process is not None else write_motion_files

    files: dict[str, str] = {}
    by_name = {name: fmt for fmt, name in FILE_NAMES.items()}
    for f in sorted(src.iterdir()) if src.is_dir() else []:
        if f.is_file():
            target = dst / f.name
            shutil.copy2(f, target)
            files[by_name.get(f.name, f.stem)] = str(target)
    wanted = [f for f in ALL_FORMATS if f not in files and (ctx.preview or f != "preview")]
    joints_path = src / FILE_NAMES["joints"]
    if wanted and joints_path.is_file():
        joints = np.load(joints_path)
        files.update(write(joints, dst, fps=spec.fps, spec=spec, formats=wanted,
                                        smpl_model_path=(ctx.settings or {}).get("smpl_model")))
    return files


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
    return (f"Made a {spec.n_frames / spec.fps:.1f}s motion: {spec.description.text} "
            f"({len(spec.keyframes)} keyframe(s), {len(result.attempts)} attempt(s)). {m}{checks}")


def transcript_markdown(events: list[dict[str, Any]]) -> str:
    """Human-readable transcript: one line per event."""
    t0 = events[0]["t"] if events else 0.0
    lines = ["# IKMo agent transcript", ""]
    for e in events:
        lines.append(f"- **{e['node']}** (+{e['t'] - t0:.2f}s): {e['message']}")
    return "\n".join(lines) + "\n"
