"""Input checks and output handling shared by the exporters (BVH, SMPL, arrays, previews)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ikmo.motion_model.errors import InputFileError, MotionDataError, OutputFileError
from ikmo.motion_model.fileio import atomic_path
from ikmo.motion_model.limits import MAX_COORDINATE_M
from ikmo.motion_model.representation.skeleton import HUMANML3D_22, Skeleton


def check_joints(joints: np.ndarray, skeleton: Skeleton = HUMANML3D_22, what: str = "joints") -> np.ndarray:
    """Validate a motion's joint positions and return them as float64.

    Args:
        joints: (T, J, 3) metres, y up.
        what: how to name the array in error messages (e.g. a file path).
    Returns:
        (T, J, 3) float64 copy.
    Raises:
        MotionDataError: wrong shape, zero frames, non-numbers, NaN or infinity.
    """
    arr = np.asarray(joints)
    J = skeleton.n_joints
    if arr.ndim != 3 or arr.shape[1:] != (J, 3):
        raise MotionDataError(
            f"{what}: expected joint positions of shape (T, {J}, 3) (frames, joints, xyz in metres), "
            f"got {arr.shape}. Pass a {skeleton.name} joint array, e.g. a HumanML3D new_joints/*.npy file."
        )
    if arr.shape[0] == 0:
        raise MotionDataError(f"{what}: the motion has zero frames; nothing to export.")
    if not np.issubdtype(arr.dtype, np.number):
        raise MotionDataError(f"{what}: expected numbers, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr).all(axis=(1, 2))
    if bad.any():
        raise MotionDataError(
            f"{what}: NaN or infinite coordinates in {int(bad.sum())} frame(s), first at frame "
            f"{int(np.argmax(bad))}; repair or regenerate the motion."
        )
    far = (np.abs(arr) > MAX_COORDINATE_M).any(axis=(1, 2))
    if far.any():
        raise MotionDataError(
            f"{what}: coordinates beyond {MAX_COORDINATE_M:g} m from the origin in {int(far.sum())} frame(s), first "
            f"at frame {int(np.argmax(far))} (max |value| {float(np.abs(arr).max()):.3g}); joint positions are metres: "
            "check the file's units or regenerate the motion."
        )
    return arr


def load_joints(path: str | os.PathLike[str], skeleton: Skeleton = HUMANML3D_22) -> np.ndarray:
    """Read a (T, J, 3) joints `.npy` file and validate it (see `check_joints`); float64 metres."""
    p = Path(path)
    try:
        arr = np.load(p, allow_pickle=False)
    except FileNotFoundError as e:
        raise InputFileError(f"{p} does not exist; give a joints .npy file of shape (T, 22, 3).") from e
    except (OSError, ValueError) as e:
        raise InputFileError(f"cannot read {p} as a .npy array ({e}); give a joints .npy file of shape "
                             "(T, 22, 3).") from e
    return check_joints(arr, skeleton, what=str(p))


@contextmanager
def output_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path` that replaces it on success (never a half-written file).

    OS errors (missing or read-only folder, disk full) become `OutputFileError` naming the file.
    """
    p = Path(path)
    try:
        with atomic_path(p) as tmp:
            yield tmp
    except OSError as e:
        raise OutputFileError(f"cannot write {p}: {e.strerror or e}. Choose a writable folder "
                              "(check it exists, its permissions and free disk space).") from e
