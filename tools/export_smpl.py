"""Write a 22-joint motion as SMPL parameters in an AMASS-style `.npz`.

Keys (what AMASS loaders read, in SMPL's 24-joint layout rather than AMASS's SMPL-H (T, 156)):

- ``poses``: (T, 72) float32 axis-angle, radians: ``poses[:, :3]`` the global orientation, then
  body joints 1..23 in SMPL order; the hand joints 22, 23 are zero (HumanML3D has no hands);
- ``trans``: (T, 3) float32 metres, so that the pelvis is at ``rest_joints[0] + trans`` (smplx's
  ``transl``: the global orientation turns the body about its rest pelvis);
- ``betas``: (10,) float32 zeros (the body model's mean shape);
- ``mocap_framerate``: float, frames per second;
- ``gender``: ``"neutral"``;
- ``up_axis``: ``"y"`` (default: SMPL's own frame, y up, facing +Z, as HumanML3D) or ``"z"``
  (AMASS's world frame: the y-up motion turned +90° about x);
- ``rest_joints``: (22, 3) float32, the body model's rest (T-pose) joints the poses are relative to.

Rotations are relative to the SMPL T-pose rest of the body model (the project's mannequin by default,
an official SMPL model via ``IKMO_SMPL_MODEL`` or `model_path`), not to HumanML3D's raw offsets
(whose arms hang down): smplx forward kinematics of these poses points every bone the way the motion
does. Bones leaving a single-child joint match exactly; the three leaving the pelvis and the three
leaving spine3 match in the least-squares sense, because a rig joint turns its children together
(see `tools.rig_rotations`). Positions follow the body model's own bone lengths.
"""

from __future__ import annotations

import functools
import logging
import os
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np

from ikmo.motion_model.errors import InputFileError, MotionDataError
from ikmo.motion_model.representation.rotations import matrix_to_axis_angle
from ikmo.motion_model.representation.skeleton import FPS, HUMANML3D_22

from .export_common import check_joints, output_file
from .rig_rotations import solve_rig_rotations

log = logging.getLogger(__name__)

N_SMPL_JOINTS = 24
# y up → z up: +90° about x, so that +y goes to +z (AMASS's world frame).
_Y_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def smpl_rest_joints(model_path: str | os.PathLike[str] | None = None) -> np.ndarray:
    """(22, 3) float64 rest (T-pose, betas 0) joints of the body model, metres.

    `model_path`, else ``$IKMO_SMPL_MODEL``, else the bundled mannequin (`tools.body_model` resolves
    it). Computed as ``J_regressor @ v_template`` straight from the .npz, as smplx does, without
    building the smplx module (which costs about a second and is not needed for the skeleton);
    cached per file.
    """
    from .body_model import resolve_model_path

    return _rest_joints(resolve_model_path(model_path).resolve()).copy()


@functools.lru_cache(maxsize=4)
def _rest_joints(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            rest = np.asarray(z["J_regressor"], np.float64) @ np.asarray(z["v_template"], np.float64)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise InputFileError(f"cannot read the SMPL model {path} ({e}); give an SMPL .npz with J_regressor "
                             "and v_template") from e
    if rest.shape[0] < HUMANML3D_22.n_joints:
        raise InputFileError(f"{path}: the body model has {rest.shape[0]} joints, SMPL needs 24")
    return rest[: HUMANML3D_22.n_joints]


def smpl_params(
    joints: np.ndarray,
    fps: float = FPS,
    *,
    rest_joints: np.ndarray | None = None,
    model_path: str | os.PathLike[str] | None = None,
    up_axis: Literal["y", "z"] = "y",
) -> dict[str, np.ndarray | float | str]:
    """SMPL parameters of a motion (see the module doc for the keys).

    Args:
        joints: (T, 22, 3) metres, y up, facing +Z at frame 0.
        rest_joints: (22, 3) or (24, 3) metres, rest joints the poses are relative to; default
            the body model's (`smpl_rest_joints(model_path)`).
        up_axis: "y" (SMPL frame) or "z" (AMASS world frame).
    Returns:
        dict ready for ``np.savez``.
    """
    joints = check_joints(joints)
    if up_axis not in ("y", "z"):
        raise MotionDataError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    if not np.isfinite(fps) or fps <= 0:
        raise MotionDataError(f"fps must be a positive number, got {fps}")
    rest = smpl_rest_joints(model_path) if rest_joints is None else np.asarray(rest_joints, np.float64)[:22]
    if rest.shape != (22, 3) or not np.isfinite(rest).all():
        raise MotionDataError(f"rest_joints must be finite (22, 3) or (24, 3) metres, got shape {rest.shape}")
    parents = HUMANML3D_22.parents
    offsets = np.zeros_like(rest)
    offsets[1:] = rest[1:] - rest[list(parents[1:])]
    # Aim along the observed bone directions: the body model's bone lengths differ from the motion's.
    rig = solve_rig_rotations(joints, offsets, parents, aim_from_solved=False)
    local = rig.local_rotations.copy()
    pelvis = rig.root_position
    if up_axis == "z":
        local[:, 0] = _Y_TO_Z_UP @ local[:, 0]
        pelvis = pelvis @ _Y_TO_Z_UP.T
    T = joints.shape[0]
    poses = np.zeros((T, N_SMPL_JOINTS, 3))
    poses[:, :22] = matrix_to_axis_angle(local)
    return {
        "poses": poses.reshape(T, 3 * N_SMPL_JOINTS).astype(np.float32),
        "trans": (pelvis - rest[0]).astype(np.float32),
        "betas": np.zeros(10, dtype=np.float32),
        "mocap_framerate": float(fps),
        "gender": "neutral",
        "up_axis": up_axis,
        "rest_joints": rest.astype(np.float32),
    }


def write_smpl(
    path: str | os.PathLike[str],
    joints: np.ndarray,
    fps: float = FPS,
    *,
    rest_joints: np.ndarray | None = None,
    model_path: str | os.PathLike[str] | None = None,
    up_axis: Literal["y", "z"] = "y",
) -> Path:
    """Write `smpl_params(joints, ...)` to `path` (.npz, uncompressed, atomically)."""
    params = smpl_params(joints, fps, rest_joints=rest_joints, model_path=model_path, up_axis=up_axis)
    out = Path(path)
    with output_file(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, **params)
    log.info("wrote %s: %d frames of SMPL parameters (up axis %s)", out, len(joints), up_axis)
    return out
