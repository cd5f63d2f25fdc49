"""`ikmo train base`, `ikmo train control`, `ikmo sample`: thin wrappers over the motion model.

Distributed: `torchrun --nproc_per_node 2 -m ikmo.cli train base ...` (gloo on CPU).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ikmo.commands.options import finite
from ikmo.motion_model.limits import MAX_DIFFUSION_STEPS, MAX_GUIDANCE_SCALE, MAX_SEED

if TYPE_CHECKING:
    from ikmo.motion_model.constraints import MotionSpec
    from ikmo.motion_model.model_config import TrainConfig

log = logging.getLogger(__name__)

CORPUS_HELP = "HumanML3D-layout corpus folder (ikmo data build)"
RUN_HELP = "run folder: checkpoints in RUN_DIR/last, resumable"


DEVICE_HELP = "auto (the GPU when one is at hand, else the CPU) | cpu | cuda | cuda:N"
# MDM's geometric losses, offered by both stages (TrainConfig has their full descriptions).
VelLossWeight = Annotated[float, typer.Option(
    min=0, help="weight of the joint-velocity loss (m²/s²; damps frame-to-frame jitter; 0: off)")]
FootLossWeight = Annotated[float, typer.Option(
    min=0, help="weight of the foot-contact loss (planted feet's speed, m²/s²; 0: off)")]
FootLossMaxT = Annotated[int | None, typer.Option(
    min=0, help="count the foot-contact loss only at diffusion steps ≤ this (default: all)")]
# The corpus augmentations and the EMA, also offered by both stages.
LongCropProb = Annotated[float, typer.Option(min=0, max=1, help="chance a crop is as long as its clip allows")]
TimeWarpProb = Annotated[float, typer.Option(
    min=0, max=1, help="chance a crop is played faster or slower (speeds the corpus has few of)")]
TimeWarpMax = Annotated[float, typer.Option(min=1, max=3, help="largest time-warp rate; the smallest is its inverse")]
ConcatProb = Annotated[float, typer.Option(
    min=0, max=1, help="chance a crop is two clips one after the other ('A, then B')")]
ReverseProb = Annotated[float, typer.Option(
    min=0, max=1, help="chance a forward walk is played backwards as a backward walk")]
EmaDecay = Annotated[float, typer.Option(
    min=0, max=0.99999, help="export an EMA of the weights with this decay per step (0: none)")]
RolloutProb = Annotated[float, typer.Option(
    min=0, max=1, help="share of motions trained on x_t made by sampler steps from the network's own predictions "
                       "(exposure bias, docs/model.md; 0: off)")]
RolloutSteps = Annotated[int, typer.Option(
    min=1, max=9, help="with --rollout-prob: chains of 1..N sampler steps (the length drawn per batch)")]


def read_spec(path: Path) -> MotionSpec:
    """A MotionSpec JSON file, or one line saying why not: missing, a folder, not UTF-8, not JSON, or
    the first fields that break the schema (each with its value and what is allowed)."""
    from pydantic import ValidationError

    from ikmo.motion_model.constraints import MotionSpec
    from ikmo.motion_model.errors import ConstraintError, InputFileError, validation_message

    if not path.is_file():
        problem = "is a folder" if path.is_dir() else "is not a regular file" if path.exists() else "does not exist"
        raise InputFileError(f"spec file {path} {problem}; give a MotionSpec JSON file (e.g. a run's spec.json)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputFileError(f"spec file {path} is not UTF-8 text (byte {e.start}); give a MotionSpec JSON "
                             "file") from None
    except OSError as e:
        raise InputFileError(f"cannot read spec file {path}: {e.strerror or e}") from None
    try:
        return MotionSpec.model_validate_json(text)
    except ValidationError as e:
        raise ConstraintError(f"{path} is not a valid MotionSpec: {validation_message(e)}") from None


def train_config(stage: str, options: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of a `train base` / `train control` call from its options (the command's
    `locals()` before anything else is bound): every option named as a TrainConfig field, `threads`
    as `num_threads`; the rest (paths, model shape, device) are the command's own."""
    from ikmo.motion_model.model_config import TrainConfig

    fields = {k: v for k, v in options.items() if k in TrainConfig.model_fields}
    return TrainConfig(stage=stage, num_threads=options["threads"], **fields)


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    train_group = groups["train"]

    @train_group.command("base")
    def train_base(
        corpus: Annotated[Path, typer.Option(help=CORPUS_HELP)] = Path("data/corpus"),
        run_dir: Annotated[Path, typer.Option(help=RUN_HELP)] = Path("runs/base"),
        resume: Annotated[bool, typer.Option("--resume", help="continue from RUN_DIR/last")] = False,
        max_minutes: Annotated[float | None, typer.Option(help="stop (and checkpoint) after this long")] = None,
        max_steps: Annotated[int, typer.Option(min=1)] = 100_000,
        batch_size: Annotated[int, typer.Option(min=1)] = 32,
        lr: Annotated[float, typer.Option()] = 2e-4,
        d_model: Annotated[int, typer.Option(help="transformer width")] = 256,
        layers: Annotated[int, typer.Option(help="transformer layers")] = 4,
        text_encoder: Annotated[str, typer.Option(help="minilm | hash:<dim>")] = "minilm",
        threads: Annotated[int, typer.Option(min=1, help="torch CPU threads per process")] = 2,
        device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
        ckpt_every: Annotated[int, typer.Option(min=1)] = 200,
        log_every: Annotated[int, typer.Option(min=1)] = 20,
        seed: Annotated[int, typer.Option()] = 0,
        export_to: Annotated[Path | None, typer.Option(help="also write inference weights here at the end")] = None,
        vel_loss_weight: VelLossWeight = 0.0,
        foot_loss_weight: FootLossWeight = 0.0,
        foot_loss_max_t: FootLossMaxT = None,
        long_crop_prob: LongCropProb = 0.0,
        time_warp_prob: TimeWarpProb = 0.0,
        time_warp_max: TimeWarpMax = 1.3,
        concat_prob: ConcatProb = 0.0,
        reverse_prob: ReverseProb = 0.0,
        ema_decay: EmaDecay = 0.0,
        rollout_prob: RolloutProb = 0.0,
        rollout_steps: RolloutSteps = 1,
    ) -> None:
        """Train the base text-to-motion denoiser (resumable, time-boxed)."""
        tcfg = train_config("base", locals())
        from ikmo.motion_model.model.text_encoder import build_text_encoder
        from ikmo.motion_model.model.training import resolve_device, train
        from ikmo.motion_model.model_config import DenoiserConfig, ModelConfig

        text_dim = build_text_encoder(text_encoder).dim if text_encoder.startswith("hash:") else 384
        mcfg = ModelConfig(denoiser=DenoiserConfig(d_model=d_model, n_layers=layers, ff_dim=2 * d_model,
                                                   text_dim=text_dim), text_encoder=text_encoder)
        summary = train(corpus, run_dir, tcfg, mcfg, resume=resume, export_to=export_to,
                        device=resolve_device(device))
        log.info("%s", json.dumps(summary))

    @train_group.command("control")
    def train_control(
        init: Annotated[Path | None, typer.Option(help="base checkpoint folder to start from")] = None,
        corpus: Annotated[Path, typer.Option(help=CORPUS_HELP)] = Path("data/corpus"),
        run_dir: Annotated[Path, typer.Option(help=RUN_HELP)] = Path("runs/control"),
        resume: Annotated[bool, typer.Option("--resume", help="continue from RUN_DIR/last")] = False,
        mode: Annotated[str, typer.Option(help="decoupled (IKMo) | joint (one control encoder, ablation)")] = (
            "decoupled"),
        max_minutes: Annotated[float | None, typer.Option()] = None,
        max_steps: Annotated[int, typer.Option(min=1)] = 100_000,
        batch_size: Annotated[int, typer.Option(min=1)] = 32,
        lr: Annotated[float, typer.Option()] = 2e-4,
        threads: Annotated[int, typer.Option(min=1)] = 2,
        device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
        ckpt_every: Annotated[int, typer.Option(min=1)] = 200,
        log_every: Annotated[int, typer.Option(min=1)] = 20,
        seed: Annotated[int, typer.Option()] = 0,
        export_to: Annotated[Path | None, typer.Option(help="also write inference weights here at the end")] = None,
        control_loss_weight: Annotated[float, typer.Option(
            min=0, help="weight of the constraint loss on the predicted motion's joints (0: x0 MSE only)")] = 1.0,
        traj_features: Annotated[str, typer.Option(
            help="xyz | root: also feed the root channels the path and heading imply (widens an --init "
                 "ControlNet that has xyz only)")] = "xyz",
        output_head: Annotated[bool, typer.Option(
            help="add a zero-initialised output head to the ControlNet (widens an --init ControlNet)")] = False,
        root_loss_weight: Annotated[float, typer.Option(
            min=0, help="weight of the loss between the predicted root channels and the root targets")] = 0.0,
        root_swap_prob: Annotated[float, typer.Option(
            min=0, max=1, help="chance a motion with root targets gets another's root in its noised input")] = 0.0,
        root_swap_velocities: Annotated[bool, typer.Option(
            help="the swap also takes the other motion's joint velocities (they carry the root's speed; "
                 "measured worse under CFG, docs/model.md)")] = False,
        heading_prob: Annotated[float, typer.Option(
            min=0, max=1, help="chance a trajectory comes with its true heading")] = 0.0,
        rollout_prob: RolloutProb = 0.0,
        rollout_steps: RolloutSteps = 1,
        long_crop_prob: LongCropProb = 0.0,
        time_warp_prob: TimeWarpProb = 0.0,
        time_warp_max: TimeWarpMax = 1.3,
        concat_prob: ConcatProb = 0.0,
        reverse_prob: ReverseProb = 0.0,
        ema_decay: EmaDecay = 0.0,
        vel_loss_weight: VelLossWeight = 0.0,
        foot_loss_weight: FootLossWeight = 0.0,
        foot_loss_max_t: FootLossMaxT = None,
    ) -> None:
        """Train the Motion ControlNet + control encoders on a frozen base (resumable, time-boxed)."""
        tcfg = train_config("control", locals())
        from ikmo.motion_model.errors import ConfigError
        from ikmo.motion_model.model.training import resolve_device, train
        from ikmo.motion_model.model_config import ControlConfig

        if mode not in ("decoupled", "joint"):
            raise ConfigError(f"--mode {mode!r}: choose decoupled or joint")
        if traj_features not in ("xyz", "root"):
            raise ConfigError(f"--traj-features {traj_features!r}: choose xyz or root")
        if init is None and not resume:
            raise ConfigError("pass --init BASE_CHECKPOINT (e.g. runs/base/last) or --resume")
        ccfg = ControlConfig(mode=mode, traj_features=traj_features, output_head=output_head)  # type: ignore[arg-type]
        summary = train(corpus, run_dir, tcfg, init_from=init, control_cfg=ccfg,
                        resume=resume, export_to=export_to, device=resolve_device(device))
        log.info("%s", json.dumps(summary))

    @train_group.command("average")
    def train_average(
        checkpoints: Annotated[list[Path], typer.Argument(help="checkpoint folders of one run (model.safetensors "
                                                                   "+ model.json), e.g. snapshots of its last/")],
        out: Annotated[Path, typer.Option(help="folder for the averaged weights")] = Path("runs/averaged"),
    ) -> None:
        """Average the weights of several checkpoints of one run (steadier than any one of them)."""
        from ikmo.motion_model.model.checkpoints import average_checkpoints

        meta = average_checkpoints(list(checkpoints), out)
        typer.echo(f"averaged steps {meta['averaged_steps']} into {out}")

    @train_group.command("graft")
    def train_graft(
        control: Annotated[Path, typer.Option(help="checkpoint whose ControlNet to take")],
        base: Annotated[Path, typer.Option(help="checkpoint whose base denoiser to take")],
        out: Annotated[Path, typer.Option(help="folder for the combined weights")],
    ) -> None:
        """Put the ControlNet of one checkpoint on the base of another (to re-adapt it to a retrained base
        with `ikmo train control --resume`)."""
        from ikmo.motion_model.model.checkpoints import graft_control

        graft_control(control, base, out)
        typer.echo(f"the ControlNet of {control} on the base of {base}: {out}")

    @app.command("sample")
    def sample_cmd(
        spec: Annotated[Path, typer.Option(help="MotionSpec JSON file")],
        out: Annotated[Path, typer.Option(help="output folder")],
        weights: Annotated[Path | None, typer.Option(help="model folder; default: bundled weights")] = None,
        steps: Annotated[int | None, typer.Option(min=1, max=MAX_DIFFUSION_STEPS, help="DDIM steps")] = None,
        guidance_scale: Annotated[float | None, typer.Option(min=0, max=MAX_GUIDANCE_SCALE, callback=finite)] = None,
        seed: Annotated[int | None, typer.Option(min=0, max=MAX_SEED, help="overrides the spec's options.seed")
                        ] = None,
        no_preview: Annotated[bool, typer.Option("--no-preview", help="skip preview.mp4")] = False,
    ) -> None:
        """Generate a motion from a MotionSpec JSON file into OUT (joints, features, BVH, SMPL, preview,
        report)."""
        from ikmo.motion_model.fileio import ensure_output_dir

        motion_spec = read_spec(spec)  # before torch and the model load
        motion_spec.check()
        ensure_output_dir(out)
        from ikmo.config import resolve
        from ikmo.tools.exports import ALL_FORMATS
        from ikmo.tools.generate import generate_motion

        settings = resolve(weights=weights, seed=seed, diffusion_steps=steps, guidance_scale=guidance_scale)
        if seed is not None or "seed" not in motion_spec.options.model_fields_set:
            # --seed beats the spec's own seed; a spec without one takes the configured seed
            motion_spec.options.seed = settings.seed
        formats = tuple(f for f in ALL_FORMATS if not (no_preview or not settings.preview) or f != "preview")
        from tqdm import tqdm

        with tqdm(total=steps or 0, desc="sampling", unit="step", leave=False) as bar:
            def on_step(i: int, n: int) -> None:
                bar.total = n
                bar.update(1)

            result = generate_motion(motion_spec, out, settings=settings, formats=formats, on_step=on_step)
        log.info("wrote %s", ", ".join(sorted(Path(p).name for p in result.files.values())))
        log.info("metrics: %s", json.dumps({k: round(v, 4) for k, v in result.metrics.items()}))
