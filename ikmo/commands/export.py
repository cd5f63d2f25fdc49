"""Commands of the export room: `ikmo export` (BVH, SMPL, GLB, joints, features) and `ikmo preview`.

Thin: parse options, call `ikmo.tools` exporters, log what was written. Heavy imports stay inside.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ikmo.commands.options import finite
from ikmo.motion_model.limits import MAX_FPS

if TYPE_CHECKING:
    from ikmo.tools.preview import Overlay

log = logging.getLogger(__name__)


class ExportFormat(StrEnum):
    bvh = "bvh"
    smpl = "smpl"
    glb = "glb"
    npy = "npy"
    features = "features"


def _overlay(trajectory: Path | None, keyframes: list[str], spec: Path | None, n_frames: int,
             fps: float) -> Overlay:
    """Build the preview overlay from the CLI options (see `preview`'s help)."""
    import json

    import numpy as np
    from pydantic import ValidationError

    from ikmo.motion_model.constraints import KeyframePose, MotionSpec, Trajectory
    from ikmo.motion_model.errors import InputFileError
    from ikmo.tools.exports import overlay_from_spec

    def read_json(path: Path, model):  # noqa: ANN001, ANN202
        try:
            return model.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, ValidationError) as e:
            raise InputFileError(f"cannot read {path} as a {model.__name__} JSON: {e}") from e

    ov = overlay_from_spec(read_json(spec, MotionSpec) if spec else None, n_frames)
    if trajectory is not None:
        if trajectory.suffix.lower() == ".json":
            traj = read_json(trajectory, Trajectory)
            ov.target_trajectory, ov.target_mask = traj.positions_array(), traj.mask_array()
        else:
            try:
                arr = np.load(trajectory, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise InputFileError(f"cannot read the trajectory {trajectory}: {e}") from e
            if arr.ndim != 2 or arr.shape[1] not in (2, 3):
                raise InputFileError(f"{trajectory}: a trajectory .npy must be (T, 3) xyz or (T, 2) xz metres, "
                                     f"got {arr.shape}")
            if arr.shape[1] == 2:
                arr = np.stack([arr[:, 0], np.zeros(len(arr)), arr[:, 1]], axis=1)
            ov.target_trajectory, ov.target_mask = arr.astype(np.float64), None
    for item in keyframes:
        try:
            seconds = float(item)
        except ValueError:
            kf = read_json(Path(item), KeyframePose)
            ov.keyframe_frames.append(min(int(round(kf.time_s * fps)), n_frames - 1))
            ov.keyframe_poses.append(kf.joints_array())
            ov.keyframe_masks.append(np.asarray(kf.joint_mask, bool))
            continue
        ov.keyframe_frames.append(min(int(round(seconds * fps)), n_frames - 1))
        ov.keyframe_poses.append(None)
        ov.keyframe_masks.append(None)
    return ov


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:  # noqa: ARG001
    @app.command("export")
    def export(
        joints: Annotated[Path, typer.Argument(help="joints .npy, (T, 22, 3) metres, y up")],
        format: Annotated[ExportFormat, typer.Option("--format", "-f", help="bvh | smpl | glb | npy | features")],
        out: Annotated[Path, typer.Option("--out", "-o", help="output file")],
        fps: Annotated[float, typer.Option(min=1.0, max=MAX_FPS, callback=finite,
                                            help="frames per second of the motion")] = 20.0,
        units: Annotated[str, typer.Option(help="BVH length unit: m or cm")] = "m",
        stretch: Annotated[bool, typer.Option(help="BVH: per-frame bone translations on every joint, so any "
                                              "motion re-imports exactly (bones may change length)")] = False,
        up_axis: Annotated[str, typer.Option(help="SMPL frame: y (SMPL) or z (AMASS world)")] = "y",
        smpl_model: Annotated[Path | None, typer.Option(help="SMPL .npz for the rest pose (smpl) or the mesh (glb) "
                                                        "(default: $IKMO_SMPL_MODEL or the mannequin)")] = None,
        rig: Annotated[Path | None, typer.Option(help="BVH: retarget onto this character's skeleton (a BVH of "
                                                 "any rig family; its names, offsets, units and up axis)")] = None,
    ) -> None:
        """Convert a joints file to BVH, AMASS-style SMPL parameters, a skinned glTF (GLB), joints .npy or
        HumanML3D features."""
        from ikmo.tools.export_common import load_joints
        from ikmo.tools.exports import motion_features, save_array

        pos = load_joints(joints)
        if rig is not None and format is not ExportFormat.bvh:
            from ikmo.motion_model.errors import InputFileError

            raise InputFileError("--rig applies to --format bvh only")
        if format is ExportFormat.bvh and rig is not None:
            from ikmo.tools.retarget_bvh import write_retargeted_bvh

            write_retargeted_bvh(out, pos, rig, fps)
        elif format is ExportFormat.bvh:
            from ikmo.tools.export_bvh import write_bvh

            solved = write_bvh(out, pos, fps, units=units, stretch=stretch)  # type: ignore[arg-type]
            log.info("BVH reproduces the joints within %.3f mm", solved.max_error_m * 1e3)
        elif format is ExportFormat.smpl:
            from ikmo.tools.export_smpl import write_smpl

            write_smpl(out, pos, fps, model_path=smpl_model, up_axis=up_axis)  # type: ignore[arg-type]
        elif format is ExportFormat.glb:
            from ikmo.tools.export_glb import write_glb

            write_glb(out, pos, fps, model_path=smpl_model)
        elif format is ExportFormat.npy:
            save_array(out, pos.astype("float32"))
        else:
            save_array(out, motion_features(pos))
        log.info("wrote %s (%s, %d frames)", out, format.value, pos.shape[0])

    @app.command("preview")
    def preview(
        joints: Annotated[Path, typer.Argument(help="joints .npy, (T, 22, 3) metres, y up")],
        out: Annotated[Path, typer.Option("--out", "-o", help="output .mp4 or .gif")],
        trajectory: Annotated[Path | None, typer.Option(
            help="target pelvis path: (T, 3) / (T, 2 = xz) .npy, or a Trajectory JSON (with its mask)")] = None,
        keyframes: Annotated[list[str] | None, typer.Option(
            "--keyframes", "-k",
            help="a keyframe: its time in seconds, or a KeyframePose JSON (`ikmo pose` output) drawn as a "
                 "ghost; repeat for several")] = None,
        spec: Annotated[Path | None, typer.Option(help="MotionSpec JSON: draw its trajectory and keyframes")] = None,
        fps: Annotated[float, typer.Option(min=1.0, max=MAX_FPS, callback=finite,
                                            help="frames per second of the motion")] = 20.0,
        width: Annotated[int, typer.Option(min=32, max=4096)] = 512,
        height: Annotated[int, typer.Option(min=32, max=4096)] = 384,
        azimuth: Annotated[float, typer.Option(callback=finite, help="camera azimuth, degrees (0: the front at "
                                               "frame 0)")] = 35.0,
        elevation: Annotated[float, typer.Option(min=-90, max=90, callback=finite,
                                                 help="camera elevation, degrees")] = 14.0,
        gif_scale: Annotated[float, typer.Option(min=0.1, max=1.0, callback=finite,
                                                 help="shrink GIF frames by this factor (0.1-1)")] = 1.0,
        sheet: Annotated[Path | None, typer.Option(help="also write a contact sheet PNG of 6 frames")] = None,
    ) -> None:
        """Render a motion to an MP4 or GIF: skeleton, floor grid, pelvis trace, targets, keyframes."""
        import time

        from ikmo.tools.export_common import load_joints
        from ikmo.tools.preview import PreviewOptions, contact_sheet, write_preview

        pos = load_joints(joints)
        opt = PreviewOptions(width=width, height=height, fps=fps, azimuth_deg=azimuth, elevation_deg=elevation)
        ov = _overlay(trajectory, keyframes or [], spec, pos.shape[0], fps)
        t0 = time.perf_counter()
        write_preview(out, pos, options=opt, overlay=ov, gif_scale=gif_scale)
        log.info("rendered %s: %d frames in %.2f s", out, pos.shape[0], time.perf_counter() - t0)
        if sheet is not None:
            from ikmo.tools.export_common import output_file

            with output_file(sheet) as tmp:
                contact_sheet(pos, 6, overlay=ov, options=opt).save(tmp, format="PNG")
            log.info("wrote %s", sheet)
