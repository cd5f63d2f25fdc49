"""What the agents call: the `Toolbox` protocol (read a photo, generate a motion, write its files),
its settings (`ToolSettings`) and the one type of a photo's reading (`PhotoReading`). Two
implementations: `ikmo.tools.local.LocalToolbox` (in this process) and
`ikmo.tools.worker.ToolProcess` (the same calls served by a child process that imports torch and
loads the model while the agents start).

Torch-free at import: the agents' process imports this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ikmo.motion_model.constraints import KeyframePose, MotionResult, MotionSpec
from ikmo.motion_model.limits import MAX_SEED

if TYPE_CHECKING:
    from ikmo.tools.pose_estimation import Landmarks

OnStep = Callable[[int, int], None]


class ToolSettings(BaseModel):
    """The settings the tools read: which motion model, how it samples, the body model, the outputs.
    `ikmo.config.Settings` extends this (via the agents' settings); any subclass instance will do."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    weights: Path | None = Field(default=None, description="motion model folder (or its .safetensors); bundled "
                                 "default")
    device: str = Field(default="cpu", description="torch device of the motion model: cpu, cuda, cuda:1")
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="seed of a request that names none")
    diffusion_steps: int | None = Field(default=None, ge=1, le=1000, description="DDIM steps; default the "
                                        "checkpoint's")
    guidance_scale: float | None = Field(default=None, ge=0, le=100, description="classifier-free guidance; "
                                         "default the checkpoint's")
    exact_projection: bool = Field(default=True, description="stage 1 ends with the exact projection onto the "
                                   "path and keyframes; false: gradient steps only (the paper's form, L-BFGS)")
    smpl_model: Path | None = Field(default=None, description="official SMPL .npz; default: bundled mannequin")
    preview: bool = Field(default=True, description="write preview.mp4")

    def dump(self) -> dict[str, Any]:
        """JSON-safe dict of every field (secrets masked by their SecretStr type), for `config.json`."""
        return self.model_dump(mode="json")


@dataclass
class FitResult:
    """A fitted pose.

    global_orient: (3,) axis-angle in the frame of the targets (camera frame for images).
    body_pose: (21, 3) axis-angle, SMPL joints 1..21 relative to the T-pose.
    joints: (22, 3) float64 metres, FK of the fit, pelvis at the origin, same frame as the targets.
    error_m: confidence-weighted RMS distance to the targets, metres.
    """

    global_orient: np.ndarray
    body_pose: np.ndarray
    joints: np.ndarray
    error_m: float
    notes: list[str] = field(default_factory=list)


@dataclass
class PhotoReading:
    """Everything the pose tools read from one photo.

    keyframe: the canonical pose at its time; landmarks: BlazePose's output (visibility (33,),
    n_people); fit: the SMPL fit in the camera frame (its `error_m`: RMS distance to the landmark
    targets, metres); seconds:
    time per stage; image: (H, W, 3) uint8 RGB photo and check_image: the fit's overlay (PIL), only
    when asked for (`with_images`: a vision provider looks at them, `ikmo pose --overlay` saves it).
    """

    keyframe: KeyframePose
    landmarks: Landmarks
    fit: FitResult
    seconds: dict[str, float] = field(default_factory=dict)
    image: np.ndarray | None = None
    check_image: Any = None

    def overlay(self) -> Any:
        """The photo with its landmarks and the fitted skeleton (PIL)."""
        if self.check_image is None:
            from ikmo.motion_model.errors import IKMoError

            raise IKMoError("this photo was read without its check image; read it with with_images=True")
        return self.check_image


class Toolbox(Protocol):
    """The tools of a run. Thread-safe: the agent graph's photo branches call `read_photo` from
    several threads."""

    settings: ToolSettings

    def read_photo(self, path: Path, time_s: float, *, with_images: bool = False) -> PhotoReading:
        """Photo → its reading (BlazePose → SMPL fit → canonical keyframe at `time_s`). Raises
        InputFileError / PoseEstimationError for a photo that cannot be used."""
        ...

    def generate_motion(self, spec: MotionSpec, out_dir: Path, *, formats: Sequence[str],
                        on_step: OnStep | None = None) -> MotionResult:
        """`tools.generate.generate_motion` with this toolbox's model and settings."""
        ...

    def write_motion_files(self, joints: np.ndarray, out_dir: Path, *, spec: MotionSpec,
                           formats: Sequence[str]) -> dict[str, str]:
        """`tools.exports.write_motion_files` of joints (T, 22, 3) float32 metres; {format: path}."""
        ...

    def describe(self) -> dict[str, Any]:
        """What a health check reports: the weights in use (None while not yet loaded)."""
        ...

    def close(self) -> None:
        """Release what the toolbox holds (a child process); closing twice is fine."""
        ...
