"""`ikmo train graft`: a ControlNet moved onto a retrained base keeps its own weights, takes the new
base's, records both histories, and a control run resumes from it; mismatched pairs are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import tiny_training

pytestmark = pytest.mark.integration


def test_a_controlnet_grafted_on_a_retrained_base_resumes_training(tmp_path: Path) -> None:
    from ikmo.motion_model.errors import ConfigError
    from ikmo.motion_model.model.checkpoints import graft_control, load_checkpoint, save_checkpoint
    from ikmo.motion_model.model.training import read_train_state, train
    from ikmo.motion_model.model_config import ControlConfig, TrainConfig

    corpus, small, tiny = tiny_training(tmp_path)
    train(corpus, tmp_path / "base", TrainConfig(max_steps=2, **small), model_cfg=tiny)
    train(corpus, tmp_path / "control", TrainConfig(stage="control", max_steps=3, **small),
          init_from=tmp_path / "base" / "last", control_cfg=ControlConfig(hidden=16))
    train(corpus, tmp_path / "base", TrainConfig(max_steps=4, vel_loss_weight=1.0, **small), resume=True)

    out = tmp_path / "grafted"
    meta = graft_control(tmp_path / "control" / "last", tmp_path / "base" / "last", out)
    grafted, _, _ = load_checkpoint(out, torch.device("cpu"))
    ctl, _, _ = load_checkpoint(tmp_path / "control" / "last", torch.device("cpu"))
    new_base, _, _ = load_checkpoint(tmp_path / "base" / "last", torch.device("cpu"))
    assert grafted.control is not None and ctl.control is not None
    for k, v in grafted.base.state_dict().items():
        assert torch.equal(v, new_base.base.state_dict()[k]), k
    assert any(not torch.equal(v, ctl.base.state_dict()[k]) for k, v in grafted.base.state_dict().items())
    for k, v in grafted.control.state_dict().items():
        assert torch.equal(v, ctl.control.state_dict()[k]), k
    assert meta["train"]["stage"] == "control" and meta["train"]["step"] == 3
    assert meta["base_train"]["stage"] == "base" and meta["base_train"]["step"] == 4

    run = tmp_path / "readapt"
    (run / "last").mkdir(parents=True)
    for f in out.iterdir():
        (run / "last" / f.name).write_bytes(f.read_bytes())
    train(corpus, run, TrainConfig(stage="control", max_steps=5, **small), resume=True)
    assert read_train_state(run / "last")["step"] == 5  # counted on from the ControlNet's 3 steps

    other, dcfg, meta_b = load_checkpoint(tmp_path / "base" / "last", torch.device("cpu"))
    other.std.mul_(1.5)  # another corpus's statistics
    save_checkpoint(tmp_path / "other", other, dcfg, meta_b)
    with pytest.raises(ConfigError, match="differently normalised"):
        graft_control(tmp_path / "control" / "last", tmp_path / "other", tmp_path / "z")
    other.std.div_(1.5).add_(1e-7)  # float noise of a re-built corpus is the same statistics
    save_checkpoint(tmp_path / "other", other, dcfg, meta_b)
    graft_control(tmp_path / "control" / "last", tmp_path / "other", tmp_path / "z")

    with pytest.raises(ConfigError, match="no ControlNet"):
        graft_control(tmp_path / "base" / "last", tmp_path / "base" / "last", tmp_path / "x")
    wider = tiny.model_copy(update={"denoiser": tiny.denoiser.model_copy(update={"d_model": 48, "ff_dim": 96})})
    train(corpus, tmp_path / "wide", TrainConfig(max_steps=1, **small), model_cfg=wider)
    with pytest.raises(ConfigError, match="differ in shape"):
        graft_control(tmp_path / "control" / "last", tmp_path / "wide" / "last", tmp_path / "y")


def test_a_base_run_resumed_from_a_control_checkpoint_counts_its_own_steps(tmp_path: Path) -> None:
    import json

    from ikmo.motion_model.model.training import read_train_state, train
    from ikmo.motion_model.model_config import ControlConfig, TrainConfig

    corpus, small, tiny = tiny_training(tmp_path)
    train(corpus, tmp_path / "base", TrainConfig(max_steps=2, **small), model_cfg=tiny)
    train(corpus, tmp_path / "control", TrainConfig(stage="control", max_steps=5, **small),
          init_from=tmp_path / "base" / "last", control_cfg=ControlConfig(hidden=16))
    run = tmp_path / "more_base"  # like continuing the bundle's base: its "train" is the ControlNet's
    (run / "last").mkdir(parents=True)
    for f in (tmp_path / "control" / "last").iterdir():
        (run / "last" / f.name).write_bytes(f.read_bytes())
    train(corpus, run, TrainConfig(max_steps=3, **small), resume=True)
    state = read_train_state(run / "last")
    assert state["stage"] == "base" and state["step"] == 3
    assert [h["step"] for h in state["history"]] == [1, 2, 3]  # none of the ControlNet's history
    meta = json.loads((run / "last" / "model.json").read_text())
    assert meta["control_train"]["stage"] == "control" and meta["control_train"]["step"] == 5
    train(corpus, run, TrainConfig(max_steps=4, **small), resume=True)  # a later chunk continues normally
    assert read_train_state(run / "last")["step"] == 4
