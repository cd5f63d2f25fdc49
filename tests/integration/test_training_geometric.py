"""A base run trained with MDM's velocity and foot-contact losses logs each term beside the total."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import tiny_training

pytestmark = pytest.mark.integration


def test_a_base_run_with_the_geometric_losses_logs_each_term(tmp_path: Path) -> None:
    from ikmo.motion_model.model.training import train
    from ikmo.motion_model.model_config import TrainConfig

    corpus, small, tiny = tiny_training(tmp_path)
    cfg = TrainConfig(max_steps=3, vel_loss_weight=1.0, foot_loss_weight=0.5, **{**small, "lr": 1e-3})
    train(corpus, tmp_path / "base", cfg, model_cfg=tiny)
    from ikmo.motion_model.model.training import read_train_state

    history = read_train_state(tmp_path / "base" / "last")["history"]
    assert [h["step"] for h in history] == [1, 2, 3]
    for h in history:
        assert h["vel"] > 0 and h["foot"] >= 0
        assert h["loss"] > h["vel"] + 0.5 * h["foot"]  # the x0 MSE is in the total too
