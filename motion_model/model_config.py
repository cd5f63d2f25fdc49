"""Sizes and knobs of the motion model, as pydantic configs saved next to every checkpoint.

One `ModelConfig` describes a network completely (so a checkpoint can be rebuilt from its JSON);
`DiffusionConfig` the noise schedule and sampler; `OptimizationConfig` stage 1 (motion
optimization); `TrainConfig` one training run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ikmo.motion_model.errors import ConfigError
from ikmo.motion_model.representation.skeleton import HUMANML3D_22, MAX_FRAMES


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DenoiserConfig(_Cfg):
    """The MDM-style encoder-only transformer over normalised features.

    The sequence is one condition token (timestep + text) followed by L feature rows,
    L = n_frames - 1 (HumanML3D: T pose frames give T-1 feature rows).
    """

    feature_dim: int = Field(default=HUMANML3D_22.feature_dim, ge=1)
    n_joints: int = Field(default=HUMANML3D_22.n_joints, ge=1)
    d_model: int = Field(default=256, ge=16)
    n_layers: int = Field(default=4, ge=1)
    n_heads: int = Field(default=4, ge=1)
    ff_dim: int = Field(default=512, ge=16)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    text_dim: int = Field(default=384, ge=1, description="size of the text encoder's embedding")
    max_len: int = Field(default=MAX_FRAMES, ge=2, description="longest feature sequence the model accepts")
    cond_drop_prob: float = Field(default=0.1, ge=0, le=1, description="text dropout for classifier-free guidance")

    @model_validator(mode="after")
    def _heads_divide(self) -> DenoiserConfig:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}")
        return self


class ControlConfig(_Cfg):
    """Stage 2: control encoders and the Motion ControlNet.

    `mode="decoupled"` (IKMo): a TrajectoryEncoder and a PoseEncoder run in parallel and are fused.
    `mode="joint"` (OmniControl-style ablation): trajectory and pose concatenated into one hint
    through one encoder of about the same size.
    """

    mode: Literal["decoupled", "joint"] = "decoupled"
    hidden: int = Field(default=256, ge=8, description="width of the control encoders")
    n_layers: int | None = Field(default=None, description="ControlNet depth; None copies all base layers")
    traj_features: Literal["xyz", "root"] = Field(
        default="xyz",
        description="xyz: the trajectory encoder sees pelvis positions + masks per row; root: also the root "
                    "feature channels (yaw velocity, body-frame velocity, height) that the trajectory and the "
                    "heading imply, normalised like the features, and the world-frame step (see networks.py)")
    output_head: bool = Field(
        default=False,
        description="a zero-initialised linear layer from the ControlNet's last hidden state straight onto the "
                    "predicted features, besides the per-layer residuals (see networks.py)")


class ModelConfig(_Cfg):
    """Everything needed to rebuild the network from JSON."""

    denoiser: DenoiserConfig = Field(default_factory=DenoiserConfig)
    control: ControlConfig | None = None
    text_encoder: str = Field(default="minilm", description="minilm | hash:<dim> (see text_encoder.py)")


class DiffusionConfig(_Cfg):
    """Noise schedule (cosine) and the DDIM sampler."""

    train_steps: int = Field(default=1000, ge=2, description="number of DDPM noise levels")
    sample_steps: int = Field(default=10, ge=1, description="DDIM steps at sampling time")
    guidance_scale: float = Field(default=2.5, ge=0, description="classifier-free guidance scale; 1 = off")
    # A guidance interval (Kynkäänniemi et al. 2024): CFG on the pure-noise step (t = 999) set a crouched
    # layout the later steps kept (knees 116° against real walks' 136-155°, thighs 8 % short, toes 9-11 cm
    # up: "a person walks forward." floated in 83 % of frames). Without it there, bundled weights, 64 test
    # clips: FID 0.103 -> 0.072, R@3 0.906 -> 0.953 (real 0.938), floating 0.21 -> 0.13; on the 88
    # requests floating 0.40 -> 0.16 and jerk 382 -> 303, text similarity 0.368 -> 0.340 (docs/eval.md).
    guidance_min_t: int = Field(
        default=0, ge=0, description="classifier-free guidance only on DDIM steps whose noise level t is at least "
                                     "this; below it the conditional prediction alone")
    guidance_max_t: int | None = Field(
        default=900, ge=0, description="classifier-free guidance only on DDIM steps whose noise level t is at most "
                                       "this (None: no upper bound); the default leaves the pure-noise first "
                                       "step unguided")
    eta: float = Field(default=0.0, ge=0, le=1, description="DDIM stochasticity (0 = deterministic)")
    # "quadratic" puts more of the few DDIM steps at high noise, t_i = (T-1)·(1 − (i/(n−1))²): with 10
    # linear steps the bundled weights ran 1.45× as far as the real runs of the same captions (text
    # only; 50 steps: 1.03), with these 10 steps 1.08 (docs/eval.md, "Why the ControlNet alone misses").
    step_spacing: Literal["linear", "quadratic"] = Field(
        default="linear", description="how the DDIM steps are spread over the noise levels: evenly, or "
                                      "denser at high noise (quadratic)")
    constrained_guidance_scale: float = Field(
        default=1.0, ge=0,
        description="CFG scale on the root channels the constraints fix (ControlNets with root targets): the text "
                    "guides the motion, not where the path and heading already say it goes")

    @model_validator(mode="after")
    def _interval(self) -> DiffusionConfig:
        if self.guidance_max_t is not None and self.guidance_max_t < self.guidance_min_t:
            raise ValueError(f"guidance interval is empty: guidance_min_t {self.guidance_min_t} > guidance_max_t "
                             f"{self.guidance_max_t}; set guidance_scale 1 to sample without guidance")
        return self


# L-BFGS iterations of the gradient-only stage 1: 300 left 0.017 m on 32 test clips, 500 left 0.009 m.
GRADIENT_ONLY_ITERATIONS = 500
GRADIENT_ONLY_HEADING_WEIGHT = 1.0


class OptimizationConfig(_Cfg):
    """Stage 1, Motion Optimization: gradient steps on the predicted clean motion x0.

    At each selected DDIM step, `iterations` plain gradient steps of size `step_size` (gradient
    norm clipped per motion to `max_grad_norm`) move the predicted x0 (normalised features)
    downhill on w_traj·L_traj + w_pose·L_pose; the DDIM update then re-noises from the corrected
    x0, which is the same as perturbing x_t (see guidance.py).
    `act_fraction` says on which steps it acts: the last `act_fraction` of the DDIM steps
    (late steps fix details; early steps set the global layout), always including the final one.
    `final_iterations` extra steps run on the final clean motion.
    With `projection`, each acting step ends with the exact minimum-norm projection of x0 onto the
    trajectory and keyframe constraints (projection.py), on the last `project_fraction` of them.
    """

    enabled: bool = True
    optimizer: Literal["gd", "lbfgs"] = Field(
        default="gd", description="gd: clipped gradient steps with per-motion step halving; lbfgs: torch's L-BFGS "
                                  "with a strong-Wolfe line search (converges on dense paths without the projection)")
    # 1 + 5 since the exact projection: on 32 validation cases 3 + 20 gave FID 0.234 and 1 + 5 0.240
    # (0 final iterations: 0.255), all with zero constraint error; fewer backward passes are faster.
    iterations: int = Field(default=1, ge=0)
    step_size: float = Field(default=5.0, gt=0, description="step on normalised features per unit gradient")
    max_grad_norm: float = Field(default=10.0, gt=0, description="per-motion gradient norm clip")
    act_fraction: float = Field(default=1.0, ge=0, le=1)
    final_iterations: int = Field(default=5, ge=0)
    w_traj: float = Field(default=1.0, ge=0)
    w_pose: float = Field(default=1.0, ge=0)
    w_heading: float = Field(default=0.0, ge=0, description="weight of L_head (the body's smoothed facing against "
                                                          "the path's heading); 0 with the projection, which "
                                                          "meets the heading exactly; gradient_only() sets it")
    # 3 since 2026-12-07 (night): on the agent suite's 88 request motions with the foot lock off, motions
    # skating within the real clips of their kind 30 % → 43 % (mean skating 0.454 → 0.390), text
    # similarity 0.303 → 0.311, FID 0.504 → 0.501, jerk 139 → 160; 64 test clips unchanged (FID 0.050,
    # R@3 0.953). 10 measured the same as 3; more iterations per step no better.
    w_foot: float = Field(default=3.0, ge=0, description="weight of L_foot (planted toes' ground speed over a "
                                                       "tolerance, guidance.foot_contact_loss); 0: off")
    align_yaw: bool = Field(default=True, description="rotate the keyframe pose to the generated root's yaw")
    projection: bool = Field(default=True, description="after the gradient steps, project x0 exactly onto the "
                                                        "constraints (projection.py)")
    project_fraction: float = Field(default=1.0, ge=0, le=1,
                                    description="project on the last fraction of the steps the optimizer acts on "
                                                "(always including the final one)")
    blend_frames: int = Field(default=8, ge=0, description="half-width of the window a keyframe's correction is "
                                                           "blended over, frames")

    def with_settings(self, settings: list[str]) -> OptimizationConfig:
        """A copy with "FIELD=VALUE" settings applied (validated as the fields are), e.g.
        ["w_foot=0", "optimizer=lbfgs"]; ConfigError naming the valid fields for an unknown one or a
        bad value. For benchmark runs that compare stage-1 settings from the command line."""
        update: dict[str, str] = {}
        for item in settings:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in type(self).model_fields:
                raise ConfigError(f"stage-1 setting {item!r}: write FIELD=VALUE with FIELD one of "
                                  f"{', '.join(type(self).model_fields)}")
            update[key] = value.strip()
        try:
            return type(self).model_validate({**self.model_dump(), **update})
        except ValidationError as e:
            first = e.errors()[0]
            raise ConfigError(f"stage-1 setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from None

    def gradient_only(self) -> OptimizationConfig:
        """Stage 1 in the paper's form, gradient steps only (no exact projection): L-BFGS on the final
        clean motion, `GRADIENT_ONLY_ITERATIONS` iterations at most.

        Measured on 32 test clips with the bundled weights (2026-12-07): Avg err 0.009 m and keyframe
        MPJPE 0.005 m at 0.84 s per motion, against 0.75 m for the plain clipped steps (1 per DDIM step
        + 5); L-BFGS also at every DDIM step (10 per step + 200) ended further off (0.084 m) than the
        same budget on the final motion alone (0.049 m): the denoiser's next step undoes part of each
        correction. Without the foot term: with it (w_foot 3) L-BFGS plants the feet by moving the
        pelvis off the path (64 test clips, lock off: skating 0.163 → 0.018 but Avg err 0.006 →
        0.053 m, keyframes 0.003 → 0.027 m), and this form exists to show the constraints met."""
        return self.model_copy(update={"projection": False, "optimizer": "lbfgs", "iterations": 0,
                                       "final_iterations": GRADIENT_ONLY_ITERATIONS,
                                       "w_heading": GRADIENT_ONLY_HEADING_WEIGHT, "w_foot": 0.0})


class FootLockConfig(_Cfg):
    """Post-process that pins contact feet to the floor and re-solves the legs (footlock.py)."""

    enabled: bool = True
    contact_height: float = Field(default=0.06, gt=0, description="toe height under which a foot is in contact, m")
    max_drift: float = Field(default=0.25, gt=0, description="a lock is split where the foot drifts further, m")
    ramp_frames: int = Field(default=4, ge=0, description="frames the correction eases in and out over")
    gap_frames: int = Field(default=2, ge=0, description="a foot off the floor for this many frames or fewer "
                            "between two contact frames stays in contact (toe heights that flicker)")
    step_frames: int = Field(default=4, ge=0, description="frames a re-anchored foot takes to step from one "
                             "anchor to the next, lifted; 0 = it jumps there in one frame")
    step_height: float = Field(default=0.08, ge=0, description="how high such a step lifts the foot, m")


class TrainConfig(_Cfg):
    """One training run (base or control)."""

    stage: Literal["base", "control"] = "base"
    batch_size: int = Field(default=32, ge=1)
    lr: float = Field(default=2e-4, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    max_steps: int = Field(default=100_000, ge=1)
    max_minutes: float | None = Field(default=None, gt=0)
    log_every: int = Field(default=50, ge=1)
    ckpt_every: int = Field(default=500, ge=1)
    seed: int = 0
    min_len: int = Field(default=40, ge=2, description="shortest training crop, pose frames")
    grad_clip: float = Field(default=1.0, gt=0)
    num_threads: int = Field(default=2, ge=1)
    heading_prob: float = Field(
        default=0.0, ge=0, le=1,
        description="control stage: chance that a motion given a trajectory is also given its true heading "
                    "(facing yaw), as the trajectory agent gives one for walks; 0 draws nothing (older runs)")
    long_crop_prob: float = Field(
        default=0.0, ge=0, le=1,
        description="chance that a training crop is as long as its clip allows (≤ max_len rows) instead of a "
                    "uniform length: requests are mostly 5-10 s, the corpus's clips mostly shorter")
    time_warp_prob: float = Field(
        default=0.0, ge=0, le=1,
        description="chance that a training crop is played faster or slower (data.augment.time_warp), at a rate "
                    "drawn log-uniformly in [1/time_warp_max, time_warp_max]; 0 draws nothing (older runs)")
    time_warp_max: float = Field(default=1.3, ge=1, le=3, description="largest time-warp rate (and 1/it the smallest)")
    concat_prob: float = Field(
        default=0.0, ge=0, le=1,
        description="chance that a training crop is two clips played one after the other, cross-faded, captioned "
                    "'<first>, then <second>' (data.augment.concatenate): requests chain actions; 0 draws nothing")
    reverse_prob: float = Field(
        default=0.0, ge=0, le=1,
        description="chance that a crop of a plain forward walk is played backwards in time and captioned as a "
                    "backward walk (data.augment.reverse): the corpus has few backward walks; 0 draws nothing")
    ema_decay: float = Field(
        default=0.0, ge=0, lt=1,
        description="keep an exponential moving average of the trained weights with this decay per step (e.g. "
                    "0.999) and export it instead of the last weights; 0: no EMA (ikmo train average does the "
                    "same after the fact from saved checkpoints)")
    root_loss_weight: float = Field(
        default=0.0, ge=0,
        description="control stage, root-target ControlNets: weight of the masked MSE between the predicted root "
                    "channels and the root targets the path and heading imply (normalised units); in the x0 MSE "
                    "these 3 of 263 channels weigh 1/263 each")
    root_swap_prob: float = Field(
        default=0.0, ge=0, le=1,
        description="control stage, root-target ControlNets: chance that a motion with root targets gets another "
                    "motion's root channels in its noised input x_t, so the ControlNet learns to take the root from "
                    "the targets rather than from x_t (see training.swap_roots)")
    root_swap_velocities: bool = Field(
        default=False,
        description="with root_swap_prob: swap the joints' local velocities too, which carry the root's speed; "
                    "measured: the ControlNet then reads the speed from the poses, which CFG amplifies, and the "
                    "sample's speed ran away (see docs/model.md), so off by default")
    rollout_prob: float = Field(
        default=0.0, ge=0, le=1,
        description="either stage: share of motions whose noised input x_t is made as the sampler makes it, by "
                    "DDIM steps from the network's own predictions down the 10-step grid (rollout_steps of them), "
                    "instead of noised ground truth (exposure bias: GaussianDiffusion.rollout_xt, docs/model.md); "
                    "costs one extra forward pass per batch and step; 0: off (older runs)")
    rollout_steps: int = Field(
        default=1, ge=1, le=9,
        description="with rollout_prob: the longest chain of sampler steps x_t is made with (the length is drawn "
                    "from 1..rollout_steps per batch); one step moved the excess speed to the next step down")
    vel_loss_weight: float = Field(
        default=0.0, ge=0,
        description="either stage: weight of MDM's velocity loss, the mean squared difference between the "
                    "predicted and true joint velocities (m²/s², training.geometric_losses): penalises the "
                    "frame-to-frame wobble that the x0 MSE barely sees; 0 draws nothing (older runs)")
    foot_loss_weight: float = Field(
        default=0.0, ge=0,
        description="either stage: weight of MDM's foot-contact loss, the predicted ankles' and toes' squared "
                    "speed (m²/s²) where the true motion has that foot planted; 0: off (older runs)")
    foot_loss_max_t: int | None = Field(
        default=None, ge=0,
        description="count the foot-contact loss only on motions noised to diffusion step ≤ this (of "
                    "train_steps); None: every step. The idea: where the noise hides whether a foot is "
                    "planted, the loss's optimum is a foot slowed by its chance of contact. Measured not better "
                    "(T = 300: more floating and jitter, no gain in text; docs/model.md), so off by default")
    control_loss_weight: float = Field(
        default=1.0, ge=0,
        description="control stage: weight of the constraint loss (L_traj + L_pose, m²) on the joints of the "
                    "predicted x0, added to the x0 MSE; 0 = plain x0 loss")
