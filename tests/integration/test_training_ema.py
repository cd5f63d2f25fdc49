"""A control-stage run with an EMA of its weights: the export is the EMA, a resumed chunk continues it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import tiny_training
from safetensors.torch import load_file

pytestmark = pytest.mark.integration


def test_control_training_exports_the_ema_and_resumes_it(tmp_path: Path) -> None:
    from ikmo.motion_model.model.checkpoints import load_checkpoint
    from ikmo.motion_model.model.training import EMA_FILE, train
    from ikmo.motion_model.model_config import ControlConfig, TrainConfig

    corpus, small, tiny = tiny_training(tmp_path)
    train(corpus, tmp_path / "base", TrainConfig(max_steps=2, **small), model_cfg=tiny)
    run, export = tmp_path / "control", tmp_path / "weights"
    cfg = TrainConfig(stage="control", max_steps=4, ema_decay=0.5, **small)
    train(corpus, run, cfg, init_from=tmp_path / "base" / "last", control_cfg=ControlConfig(hidden=16),
          export_to=export)
    last, _, _ = load_checkpoint(run / "last", torch.device("cpu"))
    exported, _, meta = load_checkpoint(export, torch.device("cpu"))
    assert meta["ema_decay"] == 0.5
    ema = load_file(str(run / "last" / EMA_FILE))
    assert int(ema["n_averaged"]) == 4
    differs = [k for k, v in last.control.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, exported.control.state_dict()[k])]
    assert differs  # the export is the average, not the last weights
    params = dict(exported.control.named_parameters())
    assert params and all(f"module.{k}" in ema for k in params)
    for k, v in params.items():
        assert torch.equal(v, ema[f"module.{k}"]), k
    assert all(torch.equal(v, exported.base.state_dict()[k]) for k, v in last.base.state_dict().items())

    train(corpus, run, cfg.model_copy(update={"max_steps": 6}), resume=True, export_to=export)
    assert int(load_file(str(run / "last" / EMA_FILE))["n_averaged"]) == 6  # continued, not restarted
    assert json.loads((run / "last" / "model.json").read_text())["train"]["step"] == 6
