"""Helpers the agent tests share (imported by name: `from helpers import make_context`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ikmo.motion_model.model_config import ModelConfig

# --------------------------------------------------------------------------- agent contexts

_READINGS: dict[tuple[str, bool], object] = {}


def cached_reading(path: Path, time_s: float, with_images: bool = False):  # noqa: ANN201
    """The real pose tools (`tools.smpl_fit.read_photo`), memoised per photo so a test module fits
    each photo once; the reading's keyframe is moved to `time_s`."""
    import dataclasses

    from ikmo.tools.smpl_fit import read_photo

    key = (str(path), with_images)
    if key not in _READINGS:
        _READINGS[key] = read_photo(path, 0.0, with_images=with_images)
    r = _READINGS[key]
    return dataclasses.replace(r, keyframe=r.keyframe.model_copy(update={"time_s": time_s}))  # type: ignore[type-var]


def make_context(motion_model=None, reader=None, toolbox=None, interactive: bool = False, chat_model=None,  # noqa: ANN001, ANN201
                 **settings):
    """An agent `Context`: `AgentSettings(**settings)` and the real in-process tools with `model`
    loaded as `motion_model` (or `toolbox` as given); `reader(path, time_s, with_images)` replaces the photo reading
    (default: the real pose tools, memoised)."""
    from ikmo.agents.context import Context
    from ikmo.agents.settings import AgentSettings
    from ikmo.tools.local import LocalToolbox

    class _Tools(LocalToolbox):
        def read_photo(self, path: Path, time_s: float, *, with_images: bool = False):  # noqa: ANN202
            return (reader or cached_reading)(path, time_s, with_images)

    cfg = AgentSettings(**settings)
    return Context(settings=cfg, toolbox=toolbox if toolbox is not None else _Tools(cfg, model=motion_model),
                   interactive=interactive, chat_model=chat_model)


# --------------------------------------------------------------------------- tiny training runs


def tiny_training(tmp_path: Path) -> tuple[Path, dict[str, float | int], ModelConfig]:
    """A synthetic 8-clip corpus under `tmp_path`, the small TrainConfig settings the training tests
    share (batch 4, one thread, a log line per step) and a one-layer ModelConfig with a hash text
    encoder: (corpus folder, settings, model config)."""
    from ikmo.motion_model.data.synthetic import write_synthetic_corpus
    from ikmo.motion_model.model_config import DenoiserConfig, ModelConfig

    corpus = write_synthetic_corpus(tmp_path / "corpus", n_clips=8, n_frames=50)
    small: dict[str, float | int] = {"batch_size": 4, "num_threads": 1, "log_every": 1, "lr": 1e-2}
    tiny = ModelConfig(denoiser=DenoiserConfig(d_model=32, n_layers=1, n_heads=2, ff_dim=64, text_dim=16),
                       text_encoder="hash:16")
    return corpus, small, tiny
