"""Run-time context of the graph (`Runtime[Context]`): provider, model and options, never in state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ikmo.motion_model.constraints import KeyframePose, MotionResult


class PoseReading(Protocol):
    """The pose tools' whole reading of a photo (`ikmo.tools.smpl_fit.ImagePose` is one): it lets the
    keyframe check measure landmark visibility and the fit's residual, and show a provider the fit."""

    keyframe: KeyframePose
    landmarks: Any  # tools.pose_estimation.Landmarks: visibility (33,), n_people
    fit: Any  # tools.smpl_fit.FitResult: error_m
    image: Any  # (H, W, 3) uint8 RGB photo

    def overlay(self) -> object:
        """The photo with the landmarks and the fitted skeleton, and the skeleton's views (PIL)."""
        ...


# A pose tool: photo, time → its keyframe, or its whole reading.
PoseFn = Callable[[Path, float], KeyframePose | PoseReading]

# The critic's limits: the defaults of the Context fields below (Settings / IKMO_MAX_* override them).
# Above a limit the critic retries when a retry can plausibly help (agents.nodes.retry_plan) and notes
# what is off in the motion it keeps. Metres for the first two.
MAX_TRAJ_ERROR_M = 0.25
MAX_KEYFRAME_MPJPE_M = 0.15
# Foot skating ratio (OmniControl's definition, `motion_model.motion_metrics`): real mocap scores
# 0.056-0.072 on our test windows (docs/eval.md) and the motion model's target is <= 0.08. Twice the
# data's own ratio leaves room for its spread between clips and still flags a motion that slides
# clearly more than mocap does.
MAX_FOOT_SKATING = 0.12
GenerateFn = Callable[..., MotionResult]


@dataclass
class Context:
    """Everything a node may need that is not the user's request.

    provider: "offline" | "openai:<model>" | "openai-compatible" | "anthropic:<model>" | "ollama:<model>".
    interactive: in a conversation, failures become questions (interrupts); in batch, clear errors.
    pose_fn / generate_fn: the tools; None = the real ones (`ikmo.tools`), resolved lazily.
    chat_model: a ready chat model, overriding `provider` (tests, notebooks).
    motion_model: a loaded motion model; None = `generate_motion` loads `weights` (per attempt).
    """

    provider: str = "offline"
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    request_timeout_s: float = 60.0
    vision: bool = False  # the provider reads images: it checks each keyframe fit and sees the motion's frames
    fix_pose_flips: bool = True  # mirror a keyframe whose fit the check calls a left/right flip
    max_output_tokens: int = 1024  # bounds a runaway model (a weak one may pad JSON until the context ends)
    max_retries: int = 2
    critique_rounds: int = 2
    max_traj_error_m: float = MAX_TRAJ_ERROR_M  # the critic's limits (see above)
    max_keyframe_mpjpe_m: float = MAX_KEYFRAME_MPJPE_M
    max_foot_skating: float = MAX_FOOT_SKATING
    fallback_offline: bool = True
    interactive: bool = False
    weights: str | None = None
    device: str = "cpu"
    diffusion_steps: int | None = None
    guidance_scale: float | None = None
    preview: bool = True
    seed: int = 0
    pose_fn: PoseFn | None = None
    generate_fn: GenerateFn | None = None
    chat_model: Any = None
    motion_model: Any = None  # a loaded ikmo.motion_model.sampling.MotionModel, reused across attempts
    # The torch-bound tools (pose reading, motion model, exports) in a child process, an
    # `ikmo.tools.worker.ToolProcess` whose model is loaded there; None = in this process.
    tool_process: Any = None
    settings: dict[str, Any] | None = None  # the resolved application config, saved with each output
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, cfg: Any, **kw: Any) -> Context:
        """Build from `ikmo.config.Settings` (duck-typed so agents need not import the shell)."""
        settings = cfg
        return cls(
            provider=settings.provider, model=settings.model, base_url=settings.base_url, api_key=settings.api_key,
            request_timeout_s=settings.request_timeout_s, max_retries=settings.max_retries,
            critique_rounds=settings.critique_rounds, fallback_offline=settings.fallback_offline,
            weights=str(settings.weights) if settings.weights else None, device=settings.device,
            diffusion_steps=settings.diffusion_steps, guidance_scale=settings.guidance_scale,
            preview=settings.preview, seed=settings.seed, vision=settings.vision,
            # Settings leave a limit None to keep the agents' default (one home for the numbers).
            **{k: v for k in ("max_traj_error_m", "max_keyframe_mpjpe_m", "max_foot_skating")
               if (v := getattr(settings, k, None)) is not None}, **kw,
        )
