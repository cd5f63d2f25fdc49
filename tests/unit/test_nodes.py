"""Each graph node alone, with a real Runtime[Context] (no graph around it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import make_context
from langgraph.runtime import Runtime
from langgraph.types import Send

from ikmo.agents import critic, nodes, offline_planner
from ikmo.agents.context import Context
from ikmo.agents.offline_parser import parse_request, parsed_to_dict
from ikmo.agents.state import Attempt, ImageRef, KeyframeTask, MotionRequest, Validation
from ikmo.motion_model.constraints import (
    GenerationOptions,
    KeyframePose,
    MotionDescription,
    MotionResult,
    MotionSpec,
)
from ikmo.motion_model.errors import PoseEstimationError
from ikmo.motion_model.representation.skeleton import HUMANML3D_22
from ikmo.tools.pose_estimation import Landmarks
from ikmo.tools.toolbox import FitResult, PhotoReading

pytestmark = pytest.mark.unit


def rest_pose_joints() -> np.ndarray:
    """(22, 3) metres: the HumanML3D skeleton's rest pose by forward kinematics, pelvis at the origin."""
    off = HUMANML3D_22.offsets()
    j = np.zeros((22, 3))
    for i, p in enumerate(HUMANML3D_22.parents):
        if p >= 0:
            j[i] = j[p] + off[i]
    return j


def kf_from_joints(path: Path, time_s: float) -> KeyframePose:
    return KeyframePose(time_s=time_s, joints=rest_pose_joints().tolist(), source=str(path))


def reading_from_joints(path: Path, time_s: float, with_images: bool = False) -> PhotoReading:
    """A photo reading of the rest pose, every landmark seen, as the pose tools would return it."""
    lm = Landmarks(world=np.zeros((33, 3), np.float32), image_xy=np.zeros((33, 2), np.float32),
                   visibility=np.ones(33, np.float32), presence=np.ones(33, np.float32), image_size=(100, 100))
    fit = FitResult(global_orient=np.zeros(3), body_pose=np.zeros((21, 3)), joints=rest_pose_joints(), error_m=0.01)
    return PhotoReading(keyframe=kf_from_joints(path, time_s), landmarks=lm, fit=fit)


def rt(**kw: Any) -> tuple[Runtime[Context], list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    return Runtime(context=make_context(**kw), stream_writer=events.append), events


def state_for(text: str, tmp_path: Path, images: list[ImageRef] | None = None) -> dict[str, Any]:
    return {"request": MotionRequest(text=text, images=images or [], out_dir=str(tmp_path / "out"))}


def test_begin_then_describe(tmp_path: Path) -> None:
    runtime, events = rt()
    st = state_for("walk in an arc to the left, then wave", tmp_path)
    st.update(nodes.begin(st, runtime))  # type: ignore[arg-type]
    assert st["options"].seed == 0 and st["status"] == "running"
    out = nodes.describe(st, runtime)  # type: ignore[arg-type]
    desc = out["description"]
    assert isinstance(desc, MotionDescription)
    assert [s.action for s in desc.segments] == ["walk", "wave-right-hand"]
    assert out["failures"] == {"describe": ""}
    assert {"stage": "describe"} in events


def test_describe_nonsense_is_a_failure_not_an_exception(tmp_path: Path) -> None:
    runtime, _ = rt()
    out = nodes.describe(state_for("blorp fnord", tmp_path), runtime)  # type: ignore[arg-type]
    assert out["description"] is None and "no motion found" in out["failures"]["describe"]


def test_keyframe_times_from_text_order_and_explicit(tmp_path: Path) -> None:
    images = [ImageRef(path="a.png"), ImageRef(path="b.png", time_s=1.0), ImageRef(path="c.png")]
    st = state_for("walk forward for 4 seconds and strike this pose at 2.5 s", tmp_path, images)
    st["parsed"] = parsed_to_dict(parse_request(st["request"].text))
    st["description"] = MotionDescription(text="a person walks forward.", duration_s=4.0)
    # hint, explicit, then the end (last frame)
    assert offline_planner.keyframe_times(st["request"], st["description"], st["parsed"]) == [2.5, 1.0, 3.95]
    st2 = state_for("walk", tmp_path, [ImageRef(path="a.png"), ImageRef(path="b.png")])
    st2["parsed"] = parsed_to_dict(parse_request("walk"))
    st2["description"] = MotionDescription(text="a person walks forward.", duration_s=4.0)
    assert offline_planner.keyframe_times(st2["request"], st2["description"], st2["parsed"]) == pytest.approx(
        [1.975, 3.95])  # spread in image order


def test_route_after_describe_fans_out_one_send_per_image(tmp_path: Path) -> None:
    images = [ImageRef(path="a.png"), ImageRef(path="b.png")]
    st = state_for("walk", tmp_path, images)
    st["parsed"] = parsed_to_dict(parse_request("walk"))
    st["description"] = MotionDescription(text="a person walks forward.", duration_s=3.0)
    routes = nodes.route_after_describe(st)  # type: ignore[arg-type]
    sends = [r for r in routes if isinstance(r, Send)]
    assert [s.node for s in sends] == ["keyframe_pose", "keyframe_pose"] and "trajectory" in routes
    assert [s.arg["index"] for s in sends] == [0, 1]


def test_keyframe_pose_node_with_real_joints_and_with_a_failing_tool(tmp_path: Path) -> None:
    runtime, events = rt(reader=reading_from_joints)
    task = KeyframeTask(index=1, image=ImageRef(path="x.png"), time_s=2.0, feedback=None)
    out = nodes.keyframe_pose(task, runtime)
    kf = out["keyframes"]["1"]
    assert kf.time_s == 2.0 and np.allclose(kf.joints_array(), rest_pose_joints(), atol=1e-6)
    assert events[0]["stage"] == "keyframe_pose"

    def no_person(path: Path, t: float, with_images: bool = False) -> PhotoReading:
        raise PoseEstimationError(f"no person found in {path}; use a photo with one person in full view")

    runtime2, _ = rt(reader=no_person)
    out2 = nodes.keyframe_pose(task, runtime2)
    assert "no person found" in out2["failures"]["keyframe_pose:1"] and out2["keyframes"] == {"1": None}


def test_keyframe_pose_missing_file_with_real_tools(tmp_path: Path) -> None:
    from ikmo.tools.local import LocalToolbox

    runtime, _ = rt(toolbox=LocalToolbox())
    task = KeyframeTask(index=0, image=ImageRef(path=str(tmp_path / "missing.jpg")), time_s=1.0, feedback=None)
    out = nodes.keyframe_pose(task, runtime)
    assert "missing.jpg" in out["failures"]["keyframe_pose:0"]


def test_trajectory_node_dense_path(tmp_path: Path) -> None:
    runtime, _ = rt()
    st = state_for("run forward 5 meters then kick", tmp_path)
    st["parsed"] = parsed_to_dict(parse_request(st["request"].text))
    st["description"] = nodes.describe(st, runtime)["description"]  # type: ignore[arg-type]
    out = nodes.trajectory(st, runtime)  # type: ignore[arg-type]
    pos = out["trajectory"].positions_array()
    assert len(pos) == round(st["description"].duration_s * 20)
    assert pos[-1, 2] == pytest.approx(5.0, abs=0.05)


def _valid_state(tmp_path: Path, kf_time: float) -> dict[str, Any]:
    runtime, _ = rt()
    st = state_for("walk forward 2 m", tmp_path)
    st["parsed"] = parsed_to_dict(parse_request(st["request"].text))
    st["description"] = nodes.describe(st, runtime)["description"]  # type: ignore[arg-type]
    st.update(nodes.trajectory(st, runtime))  # type: ignore[arg-type]
    st["keyframes"] = {"0": kf_from_joints(Path("a.png"), kf_time)}
    st["options"] = GenerationOptions(seed=3)
    return st


def test_validate_ok_and_keyframe_outside_duration(tmp_path: Path) -> None:
    runtime, _ = rt()
    ok = nodes.validate(_valid_state(tmp_path, 1.0), runtime)  # type: ignore[arg-type]
    assert ok["validation"].ok and ok["spec"].options.seed == 3
    bad = nodes.validate(_valid_state(tmp_path, 30.0), runtime)  # type: ignore[arg-type]
    v = bad["validation"]
    assert not v.ok and v.fault == "keyframe_pose" and v.action == "fail" and "keyframe 0" in v.error
    runtime_chat, _ = rt(interactive=True)
    assert nodes.validate(_valid_state(tmp_path, 30.0), runtime_chat)["validation"].action == "ask"  # type: ignore


def test_validate_retries_the_agent_at_fault_for_llm_providers(tmp_path: Path) -> None:
    runtime, _ = rt(chat_model=object(), max_retries=1)  # any non-offline provider
    st = _valid_state(tmp_path, 1.0)
    st["failures"] = {"trajectory": "the trajectory asks for a pelvis speed of 12.0 m/s"}
    out = nodes.validate(st, runtime)  # type: ignore[arg-type]
    assert out["validation"].action == "retry" and out["retries"] == {"trajectory": 1}
    assert nodes.route_after_validate({**st, **out}) == "trajectory"  # type: ignore[arg-type]
    st["retries"] = {"trajectory": 1}
    assert nodes.validate(st, runtime)["validation"].action == "fail"  # type: ignore[arg-type]


def test_keyframe_root_must_lie_on_the_trajectory(tmp_path: Path) -> None:
    runtime, _ = rt()
    st = _valid_state(tmp_path, 1.0)
    kf = st["keyframes"]["0"].model_copy(update={"root_position": [3.0, 0.9, 0.0]})
    st["keyframes"] = {"0": kf}
    v = nodes.validate(st, runtime)["validation"]  # type: ignore[arg-type]
    assert not v.ok and "away from the trajectory" in v.error


def _result(spec: MotionSpec, metrics: dict[str, float]) -> MotionResult:
    return MotionResult(files={}, metrics=metrics, spec=spec)


def test_critique_accepts_retries_and_is_bounded(tmp_path: Path) -> None:
    runtime, _ = rt(critique_rounds=1)
    st = _valid_state(tmp_path, 1.0)
    st.update(nodes.validate(st, runtime))  # type: ignore[arg-type]
    good = {"traj_err_mean": 0.05, "keyframe_mpjpe": 0.04, "foot_skating_ratio": 0.1}
    bad = {"traj_err_mean": 0.6, "keyframe_mpjpe": 0.04, "foot_skating_ratio": 0.1}
    st["attempts"] = [_attempt(0, **bad)]
    st["critique_round"] = 0
    out = nodes.critique(st, runtime)  # type: ignore[arg-type]
    assert out["decision"] == "stronger_guidance" and out["options"].guidance_scale > 2.5
    assert nodes.route_after_critique(out) == "generate"  # type: ignore[arg-type]
    st.update({"critique_round": 1, "attempts": [*st["attempts"], _attempt(1, **bad)]})
    out = nodes.critique(st, runtime)  # type: ignore[arg-type]
    assert out["decision"] == "accept" and any("accepted with" in n for n in out["notes"])
    st["attempts"] = [_attempt(0, **bad), _attempt(1, **good)]
    st["critique_round"] = 0
    out = nodes.critique(st, runtime)  # type: ignore[arg-type]
    assert out["decision"] == "accept" and out["best_attempt"] == 1
    skate = {"traj_err_mean": 0.05, "foot_skating_ratio": 0.9}
    st["attempts"] = [_attempt(0, **skate)]
    out = nodes.critique(st, runtime)  # type: ignore[arg-type]
    assert out["decision"] == "reseed" and out["options"].seed != 3


def test_fail_and_respond_write_transcript_without_result(tmp_path: Path) -> None:
    runtime, _ = rt()
    st = state_for("walk", tmp_path)
    st["validation"] = Validation(ok=False, error="keyframe 0 is at 30s", fault="keyframe_pose", action="fail")
    st.update(nodes.fail(st, runtime))  # type: ignore[arg-type]
    out = nodes.respond(st, runtime)  # type: ignore[arg-type]
    assert out["status"] == "failed" and "keyframe 0 is at 30s" in out["answer"]
    assert (tmp_path / "out" / "transcript.md").read_text().count("keyframe 0") >= 1
    assert (tmp_path / "out" / "agent_spec.json").is_file()


def _attempt(k: int, change: str | None = None, **metrics: float) -> Attempt:
    """An attempt as the generate node records it (the sampler's defaults: guidance 2.5, 5 iterations)."""
    return Attempt(attempt=k, dir=f"attempts/{k:02d}", change=change, metrics=metrics, options=GenerationOptions(),
                   guidance_scale=2.5, optimization_steps=5)


def _critique(tmp_path: Path, attempts: list[Attempt], rnd: int = 0, **ctx: Any) -> dict[str, Any]:
    runtime, _ = rt(**{"critique_rounds": 3, **ctx})
    st = _valid_state(tmp_path, 1.0)
    st.update(nodes.validate(st, runtime))  # type: ignore[arg-type]
    st.update({"attempts": attempts, "critique_round": rnd})
    return nodes.critique(st, runtime)  # type: ignore[arg-type]


def test_critic_retries_only_while_a_retry_can_help(tmp_path: Path) -> None:
    # foot skating alone: one new seed, then the best attempt is kept with a note
    out = _critique(tmp_path, [_attempt(0, traj_err_mean=0.02, foot_skating_ratio=0.30)])
    assert out["decision"] == "reseed"
    out = _critique(tmp_path, [_attempt(0, traj_err_mean=0.02, foot_skating_ratio=0.30),
                               _attempt(1, "reseed", traj_err_mean=0.02, foot_skating_ratio=0.25)], rnd=1)
    assert out["decision"] == "accept" and out["best_attempt"] == 1
    assert out["notes"] == ["accepted with: foot skating 0.25 > 0.12 (attempt 1)"]
    # constraint errors: stronger guidance, repeated only while it keeps cutting them by >= 10 %
    first = _attempt(0, traj_err_mean=0.60, foot_skating_ratio=0.05)
    assert _critique(tmp_path, [first])["decision"] == "stronger_guidance"
    helped = _attempt(1, "stronger_guidance", traj_err_mean=0.40, foot_skating_ratio=0.05)
    assert _critique(tmp_path, [first, helped], rnd=1)["decision"] == "stronger_guidance"
    stalled = _attempt(1, "stronger_guidance", traj_err_mean=0.57, foot_skating_ratio=0.05)
    out = _critique(tmp_path, [first, stalled], rnd=1)
    assert out["decision"] == "accept" and out["best_attempt"] == 1
    assert "did not reduce" in out["transcript"][0].message
    # a mocap-like skating ratio is no problem at all
    out = _critique(tmp_path, [_attempt(0, traj_err_mean=0.02, foot_skating_ratio=0.07)])
    assert out["decision"] == "accept" and out["notes"] == []


def test_critic_limits_come_from_the_context(tmp_path: Path) -> None:
    skating = [_attempt(0, traj_err_mean=0.02, foot_skating_ratio=0.30)]
    assert _critique(tmp_path, skating, max_foot_skating=0.5)["decision"] == "accept"
    off_path = [_attempt(0, traj_err_mean=0.3)]
    assert _critique(tmp_path, off_path, max_traj_error_m=0.2)["decision"] == "stronger_guidance"
    assert _critique(tmp_path, off_path, max_traj_error_m=0.4)["decision"] == "accept"


def test_attempt_score_prefers_attempts_within_the_limits() -> None:
    within = {"traj_err_mean": 0.24, "foot_skating_ratio": 0.11}  # close to both limits
    one_over = {"traj_err_mean": 0.01, "foot_skating_ratio": 0.13}  # smaller sum, one limit exceeded
    assert critic.attempt_score(within) < critic.attempt_score(one_over)
    assert critic.attempt_score({"traj_err_mean": 0.1}) < critic.attempt_score({"traj_err_mean": 0.2})
    assert critic.attempt_score({"keyframe_mpjpe": float("nan")}) == (0, 0.0)  # not measured: no penalty


def test_critic_limits_from_settings() -> None:
    from ikmo.agents.settings import MAX_FOOT_SKATING
    from ikmo.config import load_settings

    assert Context(settings=load_settings()).settings.max_foot_skating == MAX_FOOT_SKATING == 0.12
    cfg = Context(settings=load_settings(max_foot_skating=0.2, max_traj_error_m=0.3)).settings
    assert (cfg.max_foot_skating, cfg.max_traj_error_m, cfg.max_keyframe_mpjpe_m) == (0.2, 0.3, 0.15)
    assert critic.limits_of(cfg) == {"traj_err_mean": 0.3, "keyframe_mpjpe": 0.15, "foot_skating_ratio": 0.2}
