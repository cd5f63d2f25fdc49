"""Fixtures the integration tests share: a tiny random-weight motion model (weights folder and
loaded) and two rendered mannequin photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ikmo.motion_model.model.checkpoints import save_checkpoint
from ikmo.motion_model.model.networks import IKMoNet
from ikmo.motion_model.model_config import ControlConfig, DenoiserConfig, DiffusionConfig, ModelConfig
from ikmo.motion_model.sampling import load_model


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    net = IKMoNet(ModelConfig(denoiser=DenoiserConfig(d_model=32, n_layers=1, n_heads=2, ff_dim=64, text_dim=16),
                              control=ControlConfig(hidden=16), text_encoder="hash:16"))
    save_checkpoint(d, net, DiffusionConfig(sample_steps=4), {"train": {"stage": "control", "step": 0}})
    return d


@pytest.fixture(scope="session")
def model(weights_dir: Path):
    return load_model(weights_dir)


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two rendered photos of the mannequin: arms down, and the right arm raised."""
    from ikmo.tools.body_model import load_body_model
    from ikmo.tools.mannequin_render import Camera, render_pose

    d = tmp_path_factory.mktemp("photos")
    bm = load_body_model()
    out = []
    for name, (l_sh, r_sh) in {"arms_down": (-1.2, 1.2), "right_up": (-1.2, -1.0)}.items():
        pose = np.zeros((21, 3))
        pose[15, 2], pose[16, 2] = l_sh, r_sh  # body_pose rows 15/16 = left/right shoulder
        img, _ = render_pose(bm, np.zeros(3), pose, Camera(), size=(384, 384))
        Image.fromarray(img).save(d / f"{name}.png")
        out.append(d / f"{name}.png")
    return out
