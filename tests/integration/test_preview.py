"""Preview rendering: real MP4/GIF files decoded back, framing and orientation, overlays, exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ikmo.motion_model.errors import InputFileError, MotionDataError, OutputFileError
from ikmo.motion_model.representation.skeleton import HUMANML3D_22
from ikmo.tools.exports import write_motion_files
from ikmo.tools.preview import (
    LEFT,
    RIGHT,
    Overlay,
    PreviewOptions,
    PreviewRenderer,
    contact_sheet,
    render_frame,
    write_preview,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def joints(hml3d_fixture_dir: Path) -> np.ndarray:
    return np.load(hml3d_fixture_dir / "new_joints" / "012314.npy")


def _count(img: Image.Image, colour: tuple[int, int, int]) -> int:
    return int((np.asarray(img) == colour).all(-1).sum())


def test_mp4_decodes_to_every_frame(tmp_path: Path, joints: np.ndarray) -> None:
    import imageio_ffmpeg

    path = write_preview(tmp_path / "p.mp4", joints[:60])
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    assert tuple(meta["size"]) == (512, 384)
    assert meta["fps"] == pytest.approx(20.0)
    n = sum(1 for _ in reader)
    assert n == 60
    assert not list(tmp_path.glob(".*partial*"))


def test_gif_has_every_frame(tmp_path: Path, joints: np.ndarray) -> None:
    path = write_preview(tmp_path / "p.gif", joints[:30], gif_scale=0.5)
    with Image.open(path) as im:
        assert im.n_frames == 30 and im.size == (256, 192)
        assert im.info["duration"] == 50


def test_upright_feet_on_floor_and_sides(joints: np.ndarray) -> None:
    r = PreviewRenderer(joints)
    for i in (0, len(joints) // 2, len(joints) - 1):
        px = r.cam.pixels(r.cam_joints[i])
        head, feet = px[15], px[[10, 11]]
        assert head[1] < px[0][1] < feet[:, 1].min()  # head above pelvis above feet in the image
        assert 0 < px[0][0] < 512 and 0 < px[0][1] < 384  # the camera keeps the pelvis in view
        # A foot touches the floor: its shadow (projection onto y = 0) lands on it.
        assert np.linalg.norm(r.cam.pixels(r.cam_shadow[i])[[10, 11]] - feet, axis=-1).min() < 3
    # Frame 0 faces +Z, the camera looks at the front: the left side (+X) appears on the image's right.
    px = r.cam.pixels(r.cam_joints[0])
    assert px[16][0] > px[17][0]
    img = r.frame(0)
    assert _count(img, LEFT) > 100 and _count(img, RIGHT) > 100


def test_camera_keeps_up_with_a_runner(joints: np.ndarray) -> None:
    """A pose carried at 5 m/s: the pelvis stays at the same place in the image, first to last frame."""
    T = 60
    motion = np.repeat(joints[:1], T, axis=0) + (np.arange(T)[:, None, None] / 20.0) * [0.0, 0.0, 5.0]
    r = PreviewRenderer(motion)
    px = np.stack([r.cam.pixels(r.cam_joints[i, 0]) for i in (0, T // 2, T - 1)])
    assert np.abs(px - px[1]).max() < 2.0


def test_ghost_is_placed_on_the_motion_and_turned_to_its_facing() -> None:
    """A motion that holds a pose turned by 120° about y: its canonical (facing +Z) pose as a keyframe
    must be drawn exactly on the skeleton."""
    from scipy.spatial.transform import Rotation

    from ikmo.tools.rig_rotations import T_POSE_DIRECTIONS_22

    rest = T_POSE_DIRECTIONS_22 * HUMANML3D_22.bone_lengths[:, None]
    pose = np.zeros((22, 3))
    for j, p in enumerate(HUMANML3D_22.parents):
        if p >= 0:
            pose[j] = pose[p] + rest[j]
    turned = pose @ Rotation.from_euler("y", 120, degrees=True).as_matrix().T + [1.0, 0.95, 2.0]
    motion = np.repeat(turned[None], 10, axis=0)
    ov = Overlay(keyframe_frames=[4], keyframe_poses=[pose])
    r = PreviewRenderer(motion, overlay=ov)
    assert np.abs(r.ghosts[4] - motion[4]).max() < 1e-9
    # Where the target trajectory constrains the keyframe's frame, the ghost stands on the target (Align).
    target = motion[:, 0] + [0.3, 0.0, -0.2]
    on_target = PreviewRenderer(motion, overlay=Overlay(target_trajectory=target, keyframe_frames=[4],
                                                        keyframe_poses=[pose]))
    assert np.abs(on_target.ghosts[4] - (motion[4] + [0.3, 0.0, -0.2])).max() < 1e-9

    # An upper-body keyframe (no legs constrained) draws no ghost legs.
    from ikmo.tools.preview import GHOST

    upper = np.ones(22, bool)
    upper[[1, 2, 4, 5, 7, 8, 10, 11]] = False
    other = pose @ Rotation.from_euler("x", 60, degrees=True).as_matrix().T  # leaning: not hidden by the skeleton
    full = PreviewRenderer(motion, overlay=Overlay(keyframe_frames=[4], keyframe_poses=[other])).frame(4)
    ov_upper = Overlay(keyframe_frames=[4], keyframe_poses=[other], keyframe_masks=[upper])
    part = PreviewRenderer(motion, overlay=ov_upper)
    assert all(c not in (1, 2, 4, 5, 7, 8, 10, 11) for _, c in part.ghost_bones[4])
    n_full, n_part = _count(full, GHOST), _count(part.frame(4), GHOST)
    assert 0 < n_part < n_full


def test_overlay_draws_targets_and_keyframes(joints: np.ndarray) -> None:
    from ikmo.tools.preview import KEY, TARGET

    target = joints[:, 0] * [1, 0, 1] + [0.3, 0, 0]
    ov = Overlay(target_trajectory=target, target_mask=np.arange(len(joints)) % 10 == 0, keyframe_frames=[50])
    plain = render_frame(joints, 50)
    marked = render_frame(joints, 50, overlay=ov)
    assert _count(plain, TARGET) == 0 and _count(marked, TARGET) > 50
    assert _count(plain, KEY) == 0 and _count(marked, KEY) > 500  # border + marker on keyframe frames
    assert _count(render_frame(joints, 10, overlay=ov), KEY) < _count(marked, KEY)


def test_contact_sheet_includes_keyframes(joints: np.ndarray) -> None:
    sheet = contact_sheet(joints, 6, cell=(160, 120), overlay=Overlay(keyframe_frames=[77]))
    assert sheet.size in ((480, 240), (320, 360))
    assert sheet.getbbox() is not None


def test_bad_input(tmp_path: Path, joints: np.ndarray) -> None:
    with pytest.raises(InputFileError, match=".mp4 or .gif"):
        write_preview(tmp_path / "p.avi", joints)
    with pytest.raises(MotionDataError):
        write_preview(tmp_path / "p.mp4", joints[:, :21])
    with pytest.raises(MotionDataError):
        PreviewRenderer(joints, overlay=Overlay(target_trajectory=np.full((4, 3), np.nan)))
    with pytest.raises(MotionDataError):
        PreviewOptions(width=33)
    blocker = tmp_path / "f"
    blocker.write_text("")
    with pytest.raises(OutputFileError):
        write_preview(blocker / "p.mp4", joints[:5])


def test_write_motion_files(tmp_path: Path, joints: np.ndarray) -> None:
    from ikmo.motion_model.representation.features import joints_to_features

    files = write_motion_files(joints[:40], tmp_path / "out", formats=["joints", "features", "bvh", "preview"])
    assert sorted(Path(p).name for p in files.values()) == ["features.npy", "joints.npy", "motion.bvh",
                                                            "preview.mp4"]
    j = np.load(files["joints"])
    assert j.dtype == np.float32 and j.shape == (40, 22, 3)
    feats = np.load(files["features"])
    assert feats.shape == (39, 263)
    assert np.allclose(feats, joints_to_features(joints[:40].astype(np.float64)), atol=1e-5)
    # With a spec, the preview draws its trajectory and keyframes (partial mask: upper body).
    from ikmo.motion_model.constraints import KeyframePose, MotionDescription, MotionSpec, Trajectory
    from ikmo.tools.exports import overlay_from_spec

    T = 40
    mask = [True] * 22
    for i in (1, 2, 4, 5, 7, 8, 10, 11):
        mask[i] = False
    spec = MotionSpec(
        description=MotionDescription(text="a person walks", duration_s=2.0), n_frames=T,
        trajectory=Trajectory(positions=(joints[:T, 0] * [1, 0, 1]).tolist(), mask=[i % 5 == 0 for i in range(T)]),
        keyframes=[KeyframePose(time_s=1.0, joints=(joints[20] - joints[20, 0]).tolist(), joint_mask=mask)],
    )
    ov = overlay_from_spec(spec, T)
    assert ov.keyframe_frames == [20] and ov.target_mask.sum() == 8 and not ov.keyframe_masks[0][1]
    files = write_motion_files(joints[:T], tmp_path / "spec", spec=spec, formats=["preview"])
    assert Path(files["preview"]).stat().st_size > 0
    with pytest.raises(MotionDataError, match="unknown export format"):
        write_motion_files(joints, tmp_path, formats=["fbx"])
