"""Image → BlazePose landmarks (mediapipe 0.10.21 `mp.solutions.pose`). Runs offline: the wheel ships
the person detector and the *full* landmark model (model_complexity=1); lite (0) and heavy (2) are
downloaded by mediapipe on first use, so IKMo refuses them unless their file is already in place.

Images: any format Pillow reads; EXIF orientation applied; RGBA composited over grey, grayscale and
palette images converted to RGB; images over `MAX_MEGAPIXELS` refused; large ones downscaled so
the long side is at most `max_side` pixels before detection (BlazePose works at 256 px anyway).

Several people: BlazePose tracks one person per call (its detector keeps the strongest detection).
To pick the *largest* person we detect, paint the found person's box over with the image's median
colour, detect again (up to `max_people` times), and keep the person whose landmark box is largest;
`Landmarks.n_people` and `notes` say what happened.

World landmarks: metres, origin between the hips, mediapipe axes (x image right, y image down, z away
from the camera). `Landmarks.world_yup()` turns them into a right-handed y-up camera frame (x right,
y up, z towards the camera), in which a person facing the camera faces +Z with the left side at +X:
the canonical HumanML3D orientation.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ikmo.motion_model.errors import ConfigError, InputFileError, PoseEstimationError

log = logging.getLogger(__name__)

MAX_MEGAPIXELS = 50.0
_LANDMARK_FILES = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite", 2: "pose_landmark_heavy.tflite"}
N_LANDMARKS = 33
LANDMARK_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
)  # fmt: skip
LM = {n: i for i, n in enumerate(LANDMARK_NAMES)}
# Lines between landmarks for overlays.
LANDMARK_EDGES = (
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24), (23, 25), (25, 27),
    (24, 26), (26, 28), (27, 29), (29, 31), (27, 31), (28, 30), (30, 32), (28, 32), (0, 7), (0, 8),
)  # fmt: skip


@dataclass
class Landmarks:
    """BlazePose output for one person.

    world: (33, 3) float32 metres, mediapipe axes (see module doc).
    image_xy: (33, 2) float32 pixel coordinates in the *original* (EXIF-rotated) image.
    visibility: (33,) float32 in [0, 1], how likely the landmark is visible (not occluded).
    presence: (33,) float32 in [0, 1], how likely it lies inside the image.
    image_size: (height, width) of the original image.
    n_people: people found (see module doc).
    """

    world: np.ndarray
    image_xy: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    image_size: tuple[int, int]
    n_people: int = 1
    notes: list[str] = field(default_factory=list)

    def world_yup(self) -> np.ndarray:
        """(33, 3) world landmarks in a y-up right-handed camera frame: x right, y up, z to the viewer."""
        return self.world * np.array([1.0, -1.0, -1.0], dtype=np.float32)

    def in_image(self, margin: float = 0.0) -> np.ndarray:
        """(33,) bool: the landmark's pixel position lies inside the image (± margin × size)."""
        H, W = self.image_size
        x, y = self.image_xy[:, 0], self.image_xy[:, 1]
        return (x >= -margin * W) & (x <= W * (1 + margin)) & (y >= -margin * H) & (y <= H * (1 + margin))

    def box_area(self) -> float:
        """Area in pixels² of the box around the confident landmarks (for picking the largest person)."""
        ok = self.visibility > 0.5
        pts = self.image_xy[ok] if ok.sum() >= 2 else self.image_xy
        span = pts.max(0) - pts.min(0)
        return float(span[0] * span[1])


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB, EXIF orientation applied.

    Raises InputFileError for a missing, empty, corrupt or non-image file, or one over 50 megapixels.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"image {p} does not exist; give the path of a JPEG or PNG photo")
    if p.stat().st_size == 0:
        raise InputFileError(f"image {p} is empty (0 bytes); give a real photo")
    try:
        with Image.open(p) as opened:
            im: Image.Image = opened
            w, h = im.size
            if w * h > MAX_MEGAPIXELS * 1e6:
                raise InputFileError(f"image {p} is {w}x{h} ({w * h / 1e6:.0f} megapixels), over the "
                                     f"{MAX_MEGAPIXELS:.0f} MP limit; downscale it (e.g. to 4000 px on the long side)")
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
                im = Image.alpha_composite(bg, rgba)
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except InputFileError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise InputFileError(f"cannot read {p} as an image ({e}); give a JPEG or PNG photo") from e
    if arr.ndim != 3 or arr.shape[0] < 16 or arr.shape[1] < 16:
        raise InputFileError(f"image {p} is too small ({arr.shape[1]}x{arr.shape[0]}); give a photo of a person")
    return arr


def check_image_array(image: np.ndarray) -> np.ndarray:
    """Validate an in-memory image: (H, W, 3|4) or (H, W) uint8 → (H, W, 3) uint8 RGB."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise InputFileError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    if a.shape[0] * a.shape[1] > MAX_MEGAPIXELS * 1e6:
        raise InputFileError(f"image of {a.shape[1]}x{a.shape[0]} is over the {MAX_MEGAPIXELS:.0f} MP limit; "
                             "downscale it")
    if a.dtype != np.uint8:
        a = np.clip(a * (255 if a.max() <= 1.0 else 1), 0, 255).astype(np.uint8)
    if a.shape[2] == 4:
        alpha = a[..., 3:4].astype(np.float32) / 255
        a = (a[..., :3] * alpha + 128 * (1 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(a)


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    H, W = image.shape[:2]
    s = max(H, W) / max_side
    if s <= 1:
        return image, 1.0
    from PIL import Image

    small = Image.fromarray(image).resize((round(W / s), round(H / s)), Image.Resampling.BILINEAR)
    return np.asarray(small), s


class LandmarkDetector:
    """A reusable BlazePose detector (not thread-safe: one per thread; calls are serialised).

    model_complexity: 0 lite, 1 full, 2 heavy. Only "full" ships in the mediapipe 0.10.21 wheel; the
    others raise ConfigError unless their .tflite file has been placed in mediapipe's package.
    """

    def __init__(self, model_complexity: int = 1, min_detection_confidence: float = 0.5,
                 max_side: int = 1280, max_people: int = 2) -> None:
        if model_complexity not in (0, 1, 2):
            raise ConfigError(f"model_complexity must be 0, 1 or 2, got {model_complexity}")
        mp_pose = pose_solution()

        # Only the full model ships in the wheel; mediapipe would *download* lite/heavy on first use,
        # and IKMo never downloads at run time. (pose.py lives in mediapipe/python/solutions/.)
        mp_root = Path(str(mp_pose.__file__)).parents[2]
        landmark_file = mp_root / "modules" / "pose_landmark" / _LANDMARK_FILES[model_complexity]
        if not landmark_file.is_file():
            raise ConfigError(f"BlazePose model_complexity={model_complexity} needs {landmark_file}, which the "
                              "mediapipe wheel does not ship; use model complexity 1 (full) or place that "
                              "file there yourself")

        self._pose = mp_pose.Pose(static_image_mode=True, model_complexity=model_complexity,
                                  enable_segmentation=False, min_detection_confidence=min_detection_confidence)
        self._lock = threading.Lock()
        self.model_complexity = model_complexity
        self.max_side = max_side
        self.max_people = max(1, max_people)

    def close(self) -> None:
        self._pose.close()

    def __enter__(self) -> LandmarkDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _once(self, image: np.ndarray, scale: float, size: tuple[int, int]) -> Landmarks | None:
        with self._lock:
            res = self._pose.process(image)
        if res.pose_landmarks is None or res.pose_world_landmarks is None:
            return None
        h, w = image.shape[:2]
        img = np.array([[lm.x * w * scale, lm.y * h * scale] for lm in res.pose_landmarks.landmark], np.float32)
        vis = np.array([lm.visibility for lm in res.pose_landmarks.landmark], np.float32)
        pres = np.array([lm.presence for lm in res.pose_landmarks.landmark], np.float32)
        world = np.array([[lm.x, lm.y, lm.z] for lm in res.pose_world_landmarks.landmark], np.float32)
        return Landmarks(world=world, image_xy=img, visibility=vis, presence=pres, image_size=size)

    def detect(self, image: np.ndarray, source: str = "image") -> Landmarks:
        """Landmarks of the largest person in `image` (H, W, 3) uint8 RGB.

        Raises PoseEstimationError when nobody is found.
        """
        image = check_image_array(image)
        size = (int(image.shape[0]), int(image.shape[1]))
        small, scale = _downscale(image, self.max_side)
        found: list[Landmarks] = []
        work = small
        for _ in range(self.max_people):
            lm = self._once(work, scale, size)
            if lm is None:
                break
            found.append(lm)
            if len(found) == self.max_people:
                break
            # Hide this person (its box, padded) and look again for another one.
            work = work.copy()
            x0, y0 = (lm.image_xy.min(0) / scale).astype(int)
            x1, y1 = (lm.image_xy.max(0) / scale).astype(int)
            pad_x, pad_y = int(0.15 * (x1 - x0)) + 4, int(0.12 * (y1 - y0)) + 4
            fill = np.median(small.reshape(-1, 3), axis=0).astype(np.uint8)
            work[max(y0 - pad_y, 0):max(y1 + pad_y, 0), max(x0 - pad_x, 0):max(x1 + pad_x, 0)] = fill
        if not found:
            raise PoseEstimationError(f"no person found in {source}; give a photo where one whole person "
                                      "is clearly visible (not too small, not cut off at the torso)")
        best = max(found, key=lambda lm: lm.box_area())
        best.n_people = len(found)
        if len(found) > 1:
            best.notes.append(f"{len(found)} people found; the largest (by landmark box) was used")
        if scale > 1:
            best.notes.append(f"image downscaled by {scale:.2f} for detection")
        log.debug("%s: %d people, picked box area %.0f px²", source, len(found), best.box_area())
        return best


# What mediapipe's C++ side (TFLite, absl logging) writes straight to file descriptor 2 while its
# graph starts its models, from its own threads and at moments of its choosing: notes about its
# internals ("Created TensorFlow Lite XNNPACK delegate", "Feedback manager requires a model with a
# single signature", ...) that tell a user nothing they can act on. The tool process
# (`ikmo.tools.worker`) sends such lines to its DEBUG log; errors (absl's E/F lines) pass.
NATIVE_CHATTER = re.compile(r"^(INFO: |WARNING: All log messages before absl::InitializeLog|[IW]\d{4} )")

_shared: dict[int, LandmarkDetector] = {}
_shared_lock = threading.Lock()


def shared_detector(model_complexity: int = 1) -> LandmarkDetector:
    """The process's BlazePose detector for `model_complexity`, created on first use and kept.

    Building the mediapipe graph and its first inference cost ~0.15 s of CPU that later images
    skip (0.22 s for the first detection, 0.06 s for the next); the detector's lock serialises the
    photo branches that the agent graph runs in parallel threads.
    """
    with _shared_lock:
        det = _shared.get(model_complexity)
        if det is None:
            det = _shared[model_complexity] = LandmarkDetector(model_complexity)
        return det


def detect_landmarks(path: str | os.PathLike[str], model_complexity: int = 1,
                     detector: LandmarkDetector | None = None) -> tuple[Landmarks, np.ndarray]:
    """Read `path` and detect the largest person (with `detector`, else the shared one of
    `model_complexity`). Returns the landmarks and the RGB image (H, W, 3)."""
    image = load_image(path)
    det = detector if detector is not None else shared_detector(model_complexity)
    return det.detect(image, source=str(path)), image


# ------------------------------------------------------------------------------ importing mediapipe

_LEAN_PACKAGES = ("mediapipe", "mediapipe.python.solutions")
_import_lock = threading.RLock()  # re-entered when completing one package completes the other first


def pose_solution() -> ModuleType:
    """mediapipe's BlazePose solution module, `mediapipe.python.solutions.pose`.

    mediapipe's package ``__init__`` imports every solution, the whole Tasks API (audio, text,
    genai) and, through its drawing utilities, ``matplotlib.pyplot``: ~0.9 s of the ~1.0 s CPU it
    takes to import, paid by every request with a photo, for a module that needs none of it. When
    mediapipe is not loaded yet, the two package ``__init__`` files are therefore not run up front:
    their modules are created from their real import specs and left unexecuted, the pose module
    and what it imports load normally beneath them, and a module ``__getattr__`` runs the real
    ``__init__`` (the solutions package first) the first time anything asks the package for a
    name it does not hold yet: ``import mediapipe as mp; mp.solutions.drawing_utils`` keeps working.
    """
    with _import_lock:
        if "mediapipe" in sys.modules:
            return importlib.import_module("mediapipe.python.solutions.pose")
        root = _unexecuted_package("mediapipe")
        try:
            importlib.import_module("mediapipe.python")  # the framework bindings: the pose solution needs them
            solutions = _unexecuted_package("mediapipe.python.solutions")
            module = importlib.import_module("mediapipe.python.solutions.pose")
        except BaseException:
            for name in _LEAN_PACKAGES:
                sys.modules.pop(name, None)
            raise
        _complete_on_demand(solutions, after=None)
        _complete_on_demand(root, after=solutions)
        log.debug("mediapipe pose solution loaded without the package __init__ (%s)", root.__name__)
        return module


def _unexecuted_package(name: str) -> ModuleType:
    """Put the package `name` into sys.modules from its import spec without running its __init__."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{name} is not installed; install IKMo's dependencies (pip install -e .)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def _complete_on_demand(module: ModuleType, after: ModuleType | None) -> None:
    """Give `module` a module-level __getattr__ that runs its real __init__ once (after `after`'s)."""
    def complete(attr: str) -> Any:
        with _import_lock:
            if module.__dict__.get("__getattr__") is complete:
                del module.__dict__["__getattr__"]
                if after is not None and "__getattr__" in after.__dict__:
                    after.__dict__["__getattr__"]("__name__")  # completes `after` first
                spec = module.__spec__
                assert spec is not None and spec.loader is not None
                spec.loader.exec_module(module)
        try:
            return module.__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {module.__name__!r} has no attribute {attr!r}") from None

    module.__dict__["__getattr__"] = complete
