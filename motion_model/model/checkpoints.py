"""Checkpoints: safetensors for tensors, JSON beside them for the configs and training state.

A checkpoint directory holds
  model.safetensors  the full `IKMoNet` state (base, ControlNet if any, Mean/Std buffers)
  model.json         {"model": ModelConfig, "diffusion": DiffusionConfig, "train": {...}, ...}
  optim.safetensors  (training checkpoints only) Adam moments flattened by parameter name
Writes are atomic (temporary name, then rename), so an interrupted save never leaves a torn file.
No pickles anywhere.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ikmo.motion_model.errors import ConfigError
from ikmo.motion_model.fileio import atomic_path, write_json
from ikmo.motion_model.model.networks import IKMoNet
from ikmo.motion_model.model_config import DiffusionConfig, ModelConfig

log = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
META_FILE = "model.json"
OPTIM_FILE = "optim.safetensors"


def save_checkpoint(out_dir: Path, net: IKMoNet, diffusion: DiffusionConfig, meta: dict[str, Any] | None = None,
                    optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write model (+ optimizer) tensors and configs into `out_dir`; returns `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    with atomic_path(out_dir / MODEL_FILE) as tmp:
        save_file(state, str(tmp))
    if optimizer is not None:
        opt_state, opt_meta = _flatten_optimizer(net, optimizer)
        with atomic_path(out_dir / OPTIM_FILE) as tmp:
            save_file(opt_state, str(tmp))
        meta = {**(meta or {}), "optimizer": opt_meta}
    write_json(out_dir / META_FILE, {"model": net.cfg.model_dump(), "diffusion": diffusion.model_dump(),
                                     **(meta or {})})
    return out_dir


def read_meta(ckpt_dir: Path) -> dict[str, Any]:
    path = Path(ckpt_dir) / META_FILE
    if not path.is_file():
        raise ConfigError(f"{path} is missing: {ckpt_dir} is not a motion-model checkpoint directory")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); re-export the checkpoint") from e


def load_checkpoint(ckpt_dir: Path, device: torch.device) -> tuple[IKMoNet, DiffusionConfig, dict[str, Any]]:
    """Rebuild the network from `model.json` and load `model.safetensors` (strict)."""
    ckpt_dir = Path(ckpt_dir)
    meta = read_meta(ckpt_dir)
    try:
        cfg = ModelConfig.model_validate(meta["model"])
        dcfg = DiffusionConfig.model_validate(meta["diffusion"])
    except Exception as e:
        raise ConfigError(f"{ckpt_dir / META_FILE} does not describe a model: {e}") from e
    net = IKMoNet(cfg)
    path = ckpt_dir / MODEL_FILE
    if not path.is_file():
        raise ConfigError(f"{path} is missing; train a model or point to a directory with weights")
    try:
        state = load_file(str(path))
    except Exception as e:
        raise ConfigError(f"{path} cannot be read as safetensors ({e}); the file may be truncated") from e
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(f"{path} does not match {META_FILE}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return net.to(device), dcfg, meta


def _flatten_optimizer(net: IKMoNet, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    names = {id(p): n for n, p in net.named_parameters()}
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, float] = {}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p)
            if not st:
                continue
            n = names[id(p)]
            for k, v in st.items():
                if torch.is_tensor(v) and v.dim() > 0:
                    tensors[f"{k}/{n}"] = v.detach().contiguous().cpu()
                else:
                    scalars[f"{k}/{n}"] = float(v)
    return tensors, {"scalars": scalars}


def load_optimizer(ckpt_dir: Path, net: IKMoNet, opt: torch.optim.Optimizer, meta: dict[str, Any]) -> bool:
    """Restore Adam moments saved by `save_checkpoint`; False when the checkpoint has none."""
    path = Path(ckpt_dir) / OPTIM_FILE
    if not path.is_file():
        return False
    tensors = load_file(str(path))
    scalars = meta.get("optimizer", {}).get("scalars", {})
    params = dict(net.named_parameters())
    for key, v in tensors.items():
        k, n = key.split("/", 1)
        if n in params:
            opt.state[params[n]][k] = v.to(params[n].device)
    for key, v in scalars.items():
        k, n = key.split("/", 1)
        if n in params:
            opt.state[params[n]][k] = torch.tensor(v)
    return True


def average_checkpoints(ckpt_dirs: list[Path], out_dir: Path, device: torch.device | None = None) -> dict[str, Any]:
    """Write the mean of several checkpoints of one run (same configs) to `out_dir`; returns its meta.

    Why: with batch 16 on a CPU the ControlNet's weights jitter from checkpoint to checkpoint (measured:
    its pelvis error off the path moved 0.8 → 1.8 m between checkpoints 100 steps apart), and the
    mean of the last few (Polyak averaging; an EMA kept in training would do the same) is steadier.
    The meta is the last checkpoint's, with the averaged steps under `averaged_steps`.
    """
    if not ckpt_dirs:
        raise ConfigError("give at least one checkpoint folder to average")
    device = device or torch.device("cpu")
    nets = [load_checkpoint(Path(d), device) for d in ckpt_dirs]
    first, dcfg, meta = nets[-1]
    for net, _, _ in nets:
        if net.cfg != first.cfg:
            raise ConfigError(f"checkpoints differ in their model configs: {net.cfg} vs {first.cfg}")
    state = first.state_dict()
    with torch.no_grad():
        for name, value in state.items():
            if value.is_floating_point():
                value.copy_(torch.stack([n.state_dict()[name] for n, _, _ in nets]).mean(0))
    first.load_state_dict(state)
    steps = [int(m.get("train", {}).get("step", -1)) for _, _, m in nets]
    meta = {**meta, "averaged_steps": steps, "averaged_from": [str(d) for d in ckpt_dirs]}
    save_checkpoint(Path(out_dir), first, dcfg, meta)
    return meta


def graft_control(control_dir: Path, base_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Write the ControlNet of `control_dir` on the base denoiser of `base_dir` to `out_dir`; returns its meta.

    Why: the base and the ControlNet train in separate stages, so a base trained further (or with new
    losses) needs a ControlNet re-adapted to it, and a ControlNet trained on one base is the natural
    start. Both must share the denoiser's configuration and the corpus normalisation. The meta keeps
    the ControlNet's training state under "train" (a resumed control run counts on from it) and the
    base's under "base_train", with where each came from.
    """
    device = torch.device("cpu")
    ctl, dcfg, meta_c = load_checkpoint(Path(control_dir), device)
    base, _, meta_b = load_checkpoint(Path(base_dir), device)
    if ctl.control is None:
        raise ConfigError(f"{control_dir} has no ControlNet: give a checkpoint trained with `ikmo train control`")
    if ctl.cfg.denoiser != base.cfg.denoiser or ctl.cfg.text_encoder != base.cfg.text_encoder:
        raise ConfigError(f"the bases differ in shape: {control_dir} has {ctl.cfg.denoiser} "
                          f"({ctl.cfg.text_encoder}), {base_dir} has {base.cfg.denoiser} ({base.cfg.text_encoder})")
    # Float noise of a re-built corpus (2e-7 measured) is the same statistics; a different corpus is not.
    if not (torch.allclose(ctl.mean, base.mean, rtol=1e-5, atol=1e-5)
            and torch.allclose(ctl.std, base.std, rtol=1e-5, atol=1e-5)):
        raise ConfigError(f"{control_dir} and {base_dir} were trained on differently normalised corpora; "
                          "a ControlNet only fits a base of the same corpus statistics")
    ctl.base.load_state_dict(base.base.state_dict())
    base_train = meta_b.get("train") if meta_b.get("train", {}).get("stage") == "base" else meta_b.get("base_train")
    meta = {k: v for k, v in meta_c.items() if k not in ("model", "diffusion", "optimizer", "base_train", "init_from")}
    meta.update({"base_train": base_train, "base_from": str(base_dir), "control_from": str(control_dir)})
    save_checkpoint(Path(out_dir), ctl, dcfg, meta)
    return meta
