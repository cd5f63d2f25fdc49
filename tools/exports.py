"""All output files of one motion, in one call: what `generate_motion` writes next to its report.

Files (names are the contract with tools/generate.py and the README):

- ``joints.npy``: (T, 22, 3) float32 metres, y up (the motion as given);
- ``features.npy``: (T-1, 263) float32 HumanML3D features of the motion after HumanML3D's
  canonicalisation (`motion_model.representation.features.joints_to_features`); unnormalised;
- ``motion.bvh``: `tools.export_bvh`;
- ``motion_smpl.npz``: `tools.export_smpl` (AMASS-style SMPL parameters);
- ``motion.glb``: `tools.export_glb` (the mannequin skinned to the skeleton, animated; glTF 2.0);
- ``preview.mp4``: `tools.preview` (skeleton, floor grid, pelvis trace, targets and keyframes of
  the spec when one is given).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ikmo.motion_model.constraints import MotionSpec
from ikmo.motion_model.errors import MotionDataError
from ikmo.motion_model.representation.skeleton import FPS

from .export_common import check_joints, output_file

if TYPE_CHECKING:  # the preview module imports PIL; load it only when a preview is written
    from .preview import Overlay

log = logging.getLogger(__name__)

FILE_NAMES = {
    "joints": "joints.npy",
    "features": "features.npy",
    "bvh": "motion.bvh",
    "smpl": "motion_smpl.npz",
    "glb": "motion.glb",
    "preview": "preview.mp4",
}
ALL_FORMATS = tuple(FILE_NAMES)


def save_array(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """np.save `array` to `path` atomically; OS errors become OutputFileError."""
    with output_file(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
    return Path(path)


def motion_features(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) metres → (T-1, 263) float32 HumanML3D features (canonicalised first)."""
    from ikmo.motion_model.representation.features import joints_to_features

    joints = check_joints(joints)
    if joints.shape[0] < 2:
        raise MotionDataError("features need at least 2 frames (they hold frame-to-frame velocities); "
                              f"the motion has {joints.shape[0]}")
    return np.asarray(joints_to_features(joints), dtype=np.float32)


def overlay_from_spec(spec: MotionSpec | None, n_frames: int) -> Overlay:
    """The preview overlay of a spec: its target trajectory (with mask) and keyframes (with poses)."""
    from .preview import Overlay

    if spec is None:
        return Overlay()
    traj = mask = None
    if spec.trajectory is not None:
        traj = spec.trajectory.positions_array()
        mask = spec.trajectory.mask_array()
    frames = [min(spec.frame_of(kf.time_s), n_frames - 1) for kf in spec.keyframes]
    poses: list[np.ndarray | None] = [kf.joints_array() for kf in spec.keyframes]
    masks: list[np.ndarray | None] = [np.asarray(kf.joint_mask, bool) for kf in spec.keyframes]
    return Overlay(target_trajectory=traj, target_mask=mask, keyframe_frames=frames, keyframe_poses=poses,
                   keyframe_masks=masks)


def write_motion_files(
    joints: np.ndarray,
    out_dir: str | os.PathLike[str],
    *,
    fps: float = FPS,
    spec: MotionSpec | None = None,
    formats: Iterable[str] = ALL_FORMATS,
    smpl_model_path: str | os.PathLike[str] | None = None,
    bvh_stretch: bool = False,
) -> dict[str, str]:
    """Write the motion's files (see module doc) into `out_dir`.

    Args:
        joints: (T, 22, 3) metres, y up, floor at y = 0.
        fps: frames per second of the motion.
        spec: the spec it was generated from: the preview then draws its targets and keyframes.
        formats: a subset of ``ALL_FORMATS`` to write.
        smpl_model_path: body model for the SMPL rest pose (default: $IKMO_SMPL_MODEL or the mannequin).
        bvh_stretch: BVH with per-frame bone translations (exact for any motion; see `tools.export_bvh`).
    Returns:
        {format: path written}. Timings per file are logged at DEBUG.
    Raises:
        MotionDataError for unusable joints, OutputFileError when `out_dir` is not writable.
    """
    joints = check_joints(joints)
    wanted = list(dict.fromkeys(formats))
    unknown = [f for f in wanted if f not in FILE_NAMES]
    if unknown:
        raise MotionDataError(f"unknown export format(s) {unknown}; choose from {list(FILE_NAMES)}")
    out = Path(out_dir)
    written: dict[str, str] = {}
    rig = None  # the BVH's solved rig, which the GLB reuses (the same solve; not with stretch)
    for fmt in wanted:
        path = out / FILE_NAMES[fmt]
        t0 = time.perf_counter()
        if fmt == "joints":
            save_array(path, joints.astype(np.float32))
        elif fmt == "features":
            save_array(path, motion_features(joints))
        elif fmt == "bvh":
            from .export_bvh import write_bvh

            solved = write_bvh(path, joints, fps, stretch=bvh_stretch)
            rig = None if bvh_stretch else solved
        elif fmt == "smpl":
            from .export_smpl import write_smpl

            write_smpl(path, joints, fps, model_path=smpl_model_path)
        elif fmt == "glb":
            from .export_glb import write_glb

            write_glb(path, joints, fps, model_path=smpl_model_path, rig=rig)
        else:
            from .preview import PreviewOptions, write_preview

            write_preview(path, joints, options=PreviewOptions(fps=fps),
                          overlay=overlay_from_spec(spec, joints.shape[0]))
        log.debug("%s written in %.3f s", path.name, time.perf_counter() - t0)
        written[fmt] = str(path)
    return written
