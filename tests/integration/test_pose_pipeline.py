"""Render → real BlazePose → fit, end to end, plus the image-input edge cases and the CLI."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ikmo.motion_model.constraints import KeyframePose
from ikmo.motion_model.errors import InputFileError, PoseEstimationError
from ikmo.tools.body_model import load_body_model
from ikmo.tools.mannequin_render import Camera, render_pose
from ikmo.tools.pose_estimation import LandmarkDetector, load_image
from ikmo.tools.smpl_fit import image_to_pose

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model():
    return load_body_model()


@pytest.fixture(scope="module")
def detector():
    with LandmarkDetector(1) as det:
        yield det


@pytest.fixture(scope="module")
def arms_up(model):
    """A front view of arms raised, left knee bent, with its true canonical joints."""
    bp = np.zeros((21, 3))
    bp[15], bp[16] = [0, 0, 1.1], [0, 0, -1.1]
    bp[0], bp[3] = [-0.5, 0, 0], [0.8, 0, 0]
    img, _ = render_pose(model, np.zeros(3), bp, Camera(0, 3))
    _, j = model.forward(np.zeros(3), bp)
    return img, j[0, :22] - j[0, 0]


def test_render_detect_fit(arms_up, detector, model) -> None:
    img, truth = arms_up
    res = image_to_pose(img, detector=detector, model=model)
    kf = res.keyframe
    assert all(kf.joint_mask)
    err = np.linalg.norm(kf.joints_array() - truth, axis=1)
    assert err.mean() < 0.12, err
    # Wrists above the head, as rendered.
    assert kf.joints[20][1] > kf.joints[15][1] and kf.joints[21][1] > kf.joints[15][1]
    assert res.seconds["fit"] < 2.0


def test_image_variants_read_the_same(arms_up, detector, tmp_path) -> None:
    img, _ = arms_up
    rgb = Image.fromarray(img)
    rgba = rgb.convert("RGBA")
    gray = rgb.convert("L")
    # EXIF orientation 6 (rotate 90° CW to display): store the image rotated the other way.
    rotated = rgb.rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    paths = {"rgba.png": rgba, "gray.png": gray}
    for name, im in paths.items():
        im.save(tmp_path / name)
    rotated.save(tmp_path / "exif.jpg", exif=exif, quality=95)
    ref = load_image(tmp_path / "rgba.png")
    assert ref.shape == img.shape
    assert load_image(tmp_path / "exif.jpg").shape == img.shape  # turned upright
    for name in ("rgba.png", "gray.png", "exif.jpg"):
        res = image_to_pose(tmp_path / name, detector=detector)
        assert sum(res.keyframe.joint_mask) >= 20, name
    # A large photo is downscaled for detection; landmarks come back in its own pixel coordinates.
    big = np.asarray(rgb.resize((2600, 2600)))
    res = image_to_pose(big, detector=detector)
    assert any("downscaled" in n for n in res.keyframe.notes)
    assert res.landmarks.image_size == (2600, 2600) and res.landmarks.image_xy[:, 1].max() > 1500


def test_largest_of_two_people_is_chosen(model, detector) -> None:
    bp = np.zeros((21, 3))
    bp[15], bp[16] = [0, 0, -1.2], [0, 0, 1.2]
    big, _ = render_pose(model, np.zeros(3), bp, Camera(0, 3), (512, 320))
    small, _ = render_pose(model, np.zeros(3), bp, Camera(0, 3, fill=0.45), (512, 320))
    both = np.concatenate([small, big], axis=1)
    res = image_to_pose(both, detector=detector)
    assert res.landmarks.image_xy[:, 0].mean() > 320  # the big person is on the right half
    assert res.landmarks.n_people in (1, 2)
    if res.landmarks.n_people == 2:
        assert any("largest" in n for n in res.keyframe.notes)


def test_no_person_is_a_clear_error(detector, tmp_path) -> None:
    y = np.linspace(0, 255, 256, dtype=np.uint8)
    blank = np.stack(np.broadcast_arrays(y[:, None], y[None, :], 128), -1).astype(np.uint8)
    Image.fromarray(blank).save(tmp_path / "empty_room.png")
    with pytest.raises(PoseEstimationError, match="empty_room.png"):
        image_to_pose(tmp_path / "empty_room.png", detector=detector)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width×height (no pixel data needed to read the size)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))


def test_bad_files_are_clear_errors(tmp_path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.png").write_text("this is not an image")
    _png_header_only(tmp_path / "huge.png", 9000, 6000)
    good = tmp_path / "cut.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(good)
    (tmp_path / "truncated.png").write_bytes(good.read_bytes()[:60])
    cases = {"missing.png": "does not exist", "empty.jpg": "empty", "notes.png": "cannot read",
             "huge.png": "megapixels", "truncated.png": "cannot read"}
    for name, msg in cases.items():
        with pytest.raises(InputFileError, match=msg) as e:
            load_image(tmp_path / name)
        assert name in str(e.value)


def test_cli_writes_pose_and_overlay(tmp_path) -> None:
    example = REPO / "examples" / "keyframes" / "waving.png"
    out, ov = tmp_path / "pose.json", tmp_path / "overlay.png"
    cmd = [sys.executable, "-c", "from ikmo.cli import main; main()", "pose", str(example), "--out", str(out),
           "--overlay", str(ov), "--time", "1.5"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    kf = KeyframePose.model_validate_json(out.read_text())
    assert kf.time_s == 1.5 and kf.source.endswith("waving.png")
    assert kf.joints[21][1] > kf.joints[17][1]  # the waving (right) hand is up
    assert Image.open(ov).size[0] > Image.open(example).size[0]
    bad = subprocess.run([*cmd[:4], str(tmp_path / "nope.png"), "--out", str(out)], capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and "nope.png" in bad.stderr


def test_learned_correction_beats_the_hand_mapping(model, detector) -> None:
    """On rendered poses (not the benchmark's), the bundled correction lowers the joint error."""
    from ikmo.eval.metrics import root_aligned_mpjpe
    from ikmo.tools.smpl_fit import pose_from_landmarks

    poses = []
    for swing in (-0.6, 0.5):  # walking-like: legs and arms in anti-phase
        bp = np.zeros((21, 3))
        bp[0], bp[1] = [swing, 0, 0], [-swing, 0, 0]
        bp[3], bp[4] = [0.3, 0, 0], [0.5, 0, 0]
        bp[15], bp[16] = [-swing, 0, -1.2], [swing, 0, 1.2]
        poses.append(bp)
    err = {"hand": [], "learned": []}
    for bp in poses:
        _, j = model.forward(np.zeros(3), bp)
        truth = j[0, :22] - j[0, 0]
        for az in (0, 45):
            img, _ = render_pose(model, np.zeros(3), bp, Camera(az, 10))
            lm = detector.detect(img)
            for key, reg in (("hand", None), ("learned", "default")):
                kf, _, _ = pose_from_landmarks(lm, model, regressor=reg)
                err[key].append(root_aligned_mpjpe(kf.joints_array(), truth))
    assert np.mean(err["learned"]) < np.mean(err["hand"]), err


def test_blazepose_loads_without_mediapipes_package_init(arms_up, detector, tmp_path) -> None:
    """A fresh process reads a photo through `pose_solution` (no matplotlib, no Tasks API) and gets the
    landmarks the fully imported mediapipe gives; afterwards `import mediapipe` is the whole package."""
    img, _ = arms_up
    Image.fromarray(img).save(tmp_path / "p.png")
    code = f"""
import json, sys
from ikmo.tools.pose_estimation import detect_landmarks
lm, _ = detect_landmarks({str(tmp_path / "p.png")!r})
lean = {{m: m in sys.modules for m in ("matplotlib", "mediapipe.tasks", "mediapipe.python.solutions.hands")}}
import mediapipe as mp
full = [mp.__version__, hasattr(mp.solutions, "drawing_utils"), hasattr(mp.tasks, "vision"), hasattr(mp, "Image")]
print(json.dumps({{"world": lm.world.tolist(), "lean": lean, "full": full}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["lean"] == {"matplotlib": False, "mediapipe.tasks": False, "mediapipe.python.solutions.hands": False}
    assert out["full"][1:] == [True, True, True] and out["full"][0].count(".") == 2
    reference = detector.detect(load_image(tmp_path / "p.png"))
    assert np.allclose(np.asarray(out["world"]), reference.world, atol=1e-6)


def test_detect_landmarks_reuses_one_detector(arms_up, tmp_path) -> None:
    from ikmo.tools.pose_estimation import detect_landmarks, shared_detector

    img, _ = arms_up
    Image.fromarray(img).save(tmp_path / "p.png")
    first = shared_detector()
    lm, _ = detect_landmarks(tmp_path / "p.png")
    assert shared_detector() is first and lm.visibility.min() >= 0.0
    again, _ = detect_landmarks(tmp_path / "p.png")
    assert np.array_equal(lm.world, again.world)  # static-image mode: the reused graph keeps no state
