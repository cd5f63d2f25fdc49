"""A base run trained with MDM's velocity and foot-contact losses logs each term beside the total."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_a_base_run_with_the_geometric_losses_logs_each_term(tmp_path: Path) -> None:
    from ikmo.motion_model.data.synthetic import write_synthetic_corpus
    from ikmo.motion_model.model.training import train
    from ikmo.motion_model.model_config import DenoiserConfig, ModelConfig, TrainConfig

    corpus = write_synthetic_corpus(tmp_path / "corpus", n_clips=8, n_frames=50)
    tiny = ModelConfig(denoiser=DenoiserConfig(d_model=32, n_layers=1, n_heads=2, ff_dim=64, text_dim=16),
                       text_encoder="hash:16")
    cfg = TrainConfig(max_steps=3, batch_size=4, num_threads=1, log_every=1, lr=1e-3, vel_loss_weight=1.0,
                      foot_loss_weight=0.5)
    train(corpus, tmp_path / "base", cfg, model_cfg=tiny)
    from ikmo.motion_model.model.training import read_train_state

    history = read_train_state(tmp_path / "base" / "last")["history"]
    assert [h["step"] for h in history] == [1, 2, 3]
    for h in history:
        assert h["vel"] > 0 and h["foot"] >= 0
        assert h["loss"] > h["vel"] + 0.5 * h["foot"]  # the x0 MSE is in the total too
