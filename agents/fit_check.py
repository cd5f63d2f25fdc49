"""The keyframe fit check: the pose tools' own evidence about each photo's fit, and with a vision
provider its look at the photo beside the fit's overlay. A flagged fit is kept and said in the
notes; one called a left/right flip is mirrored (`AgentSettings.fix_pose_flips`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ikmo.motion_model.constraints import KeyframePose
from ikmo.tools.toolbox import PhotoReading

from .context import Context
from .errors import ProviderError
from .llm import provider_label
from .providers import is_offline, make_chat_model
from .state import KeyframeTask
from .structured import StructuredOutputError, ask_structured, render_prompt
from .vision import MAX_IMAGE_SIDE, PoseFitCheck, image_part, offline_fit_check, vision_content


def wants_images(ctx: Context) -> bool:
    """Whether the photo's reading must carry the photo and its check image (a provider looks)."""
    return ctx.settings.vision and not is_offline(ctx)


def photo_stamp(path: str) -> str:
    """Path, size and modification time of a photo: a check is reused only for the same file."""
    try:
        st = Path(path).stat()
    except OSError:
        return path
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def check_fit(reading: PhotoReading, kf: KeyframePose, task: KeyframeTask, ctx: Context
              ) -> tuple[KeyframePose, dict[str, Any], list[str]]:
    """Check one fit (`kf`, the reading's keyframe at its time). A provider that keeps answering
    garbage or is down costs a note, never the keyframe. Returns the (maybe mirrored) keyframe, the
    check record, the notes for the user."""
    i = task["index"]
    offline = offline_fit_check(kf, reading)
    record: dict[str, Any] = {"image": i, "path": task["image"].path, "photo": photo_stamp(task["image"].path),
                              "time_s": task["time_s"], "offline": offline.model_dump(), "vision": None,
                              "mirrored": False}
    verdict, by = offline, "offline"
    notes: list[str] = []
    earlier = (task.get("earlier_check") or {}).get("vision")
    if wants_images(ctx) and earlier is not None:
        verdict, by = PoseFitCheck.model_validate(earlier), provider_label(ctx)
        record.update(vision=earlier, vision_reused=True)
    elif wants_images(ctx):
        label = provider_label(ctx)
        try:
            verdict = _vision_fit_check(reading, task, ctx, offline)
            by = label
            record["vision"] = verdict.model_dump()
        except ProviderError as e:  # StructuredOutputError included: bounded retries already spent
            what = (f"{label} gave no valid verdict in {len(e.errors)} tries ({e.errors[-1]})"
                    if isinstance(e, StructuredOutputError) else str(e))
            record["vision_error"] = what
            notes.append(f"keyframe check of image {i + 1}: {what}; the fit is kept as read")
    if not verdict.ok:
        msg = f"image {i + 1}: the pose check ({by}) flags {verdict.problem.replace('_', ' ')}: {verdict.note}"
        if verdict.problem == "left_right_flip" and ctx.settings.fix_pose_flips:
            from ikmo.tools.smpl_fit import mirror_keyframe

            kf = mirror_keyframe(kf, note=f"mirrored after the pose check ({by}): {verdict.note}"[:300])
            record["mirrored"] = True
            msg += " — the pose was mirrored (left and right swapped)"
        notes.append(msg)
    record["verdict"] = {**verdict.model_dump(), "by": by}
    return kf, record, notes


def _vision_fit_check(reading: PhotoReading, task: KeyframeTask, ctx: Context, offline: PoseFitCheck
                      ) -> PoseFitCheck:
    """Ask the provider (prompt `keyframe_check_v1`) with the photo and the fit's check image, which is
    saved as `keyframes/image_NN_check.png` in the output folder."""
    from PIL import Image

    from ikmo.tools.overlay import save_overlay
    from ikmo.tools.pose_estimation import load_image

    i, path = task["index"], Path(task["image"].path)
    photo = Image.fromarray(reading.image if reading.image is not None else load_image(path))
    check_img = reading.overlay()
    if out_dir := task.get("out_dir"):
        save_overlay(Path(out_dir) / "keyframes" / f"image_{i + 1:02d}_check.png", check_img)
    text = (f"Request: {task.get('text', '')}\nPhoto {i + 1}, the pose at {task['time_s']:.2f} s."
            f"\nThe pose tools' own measurements: {offline.note}")
    user = vision_content(text, [image_part(photo, "JPEG", MAX_IMAGE_SIDE), check_img])
    system = render_prompt("keyframe_check_v1", PoseFitCheck)
    return ask_structured(make_chat_model(ctx), PoseFitCheck, system, user, max_retries=ctx.settings.max_retries,
                          label=provider_label(ctx))
