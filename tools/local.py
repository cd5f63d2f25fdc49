"""The tools in this process: `LocalToolbox`, the in-process `Toolbox`. Torch and the model load
on first use, so importing this module stays cheap."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ikmo.motion_model.constraints import MotionResult, MotionSpec

from .toolbox import OnStep, PhotoReading, ToolSettings

if TYPE_CHECKING:
    from ikmo.motion_model.sampling import MotionModel


class LocalToolbox:
    """The tools in this process; the motion model is loaded on first use (or given) and reused by
    every attempt and conversation turn.

    threads: torch intra-op threads, set when the model loads (None leaves torch's default). The
    motion model's tensors are small (batch 2, 196 frames, d_model 128): extra threads mostly
    spin-wait (measured on 2 cores: sampling 0.8-1.9 s on 1 thread, 3-9 s on 2).
    """

    def __init__(self, settings: ToolSettings | None = None, model: MotionModel | None = None,
                 threads: int | None = None) -> None:
        self.settings = settings if settings is not None else ToolSettings()
        self._model = model
        self._threads = threads
        self._lock = threading.Lock()

    @property
    def model(self) -> MotionModel:
        with self._lock:
            if self._model is None:
                from ikmo.motion_model.sampling import load_model

                if self._threads is not None:
                    import torch

                    torch.set_num_threads(self._threads)
                self._model = load_model(self.settings.weights, self.settings.device)
            return self._model

    def read_photo(self, path: Path, time_s: float, *, with_images: bool = False) -> PhotoReading:
        from ikmo.tools.smpl_fit import read_photo

        return read_photo(path, time_s, with_images=with_images)

    def generate_motion(self, spec: MotionSpec, out_dir: Path, *, formats: Sequence[str],
                        on_step: OnStep | None = None) -> MotionResult:
        from ikmo.tools.generate import generate_motion

        return generate_motion(spec, out_dir, model=self.model, settings=self.settings, formats=tuple(formats),
                               on_step=on_step)

    def write_motion_files(self, joints: np.ndarray, out_dir: Path, *, spec: MotionSpec,
                           formats: Sequence[str]) -> dict[str, str]:
        from ikmo.tools.exports import write_motion_files

        return write_motion_files(joints, out_dir, fps=spec.fps, spec=spec, formats=formats,
                                  smpl_model_path=self.settings.smpl_model)

    def describe(self) -> dict[str, Any]:
        weights = self._model.meta.get("weights_dir") if self._model is not None else self.settings.weights
        return {"weights": None if weights is None else str(weights), "process": "local"}

    def close(self) -> None:
        """Nothing to release: the model goes with the object."""
