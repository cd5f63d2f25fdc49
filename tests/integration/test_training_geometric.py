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


def test_the_train_commands_pass_every_option_to_the_run(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from ikmo.motion_model.data.synthetic import write_synthetic_corpus

    corpus = write_synthetic_corpus(tmp_path / "corpus", n_clips=8, n_frames=50)
    common = ["--corpus", str(corpus), "--batch-size", "4", "--threads", "1", "--log-every", "1", "--max-steps", "2",
              "--seed", "3", "--lr", "0.001"]

    def run(*args: str) -> None:
        res = subprocess.run([sys.executable, "-m", "ikmo.cli", "train", *args, *common], capture_output=True,
                             text=True, timeout=240, cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-3000:]

    base = tmp_path / "base"
    run("base", "--run-dir", str(base), "--d-model", "32", "--layers", "1", "--text-encoder", "hash:16",
        "--vel-loss-weight", "0.5", "--foot-loss-weight", "0.25", "--foot-loss-max-t", "300", "--concat-prob", "0.1",
        "--time-warp-prob", "0.2", "--ema-decay", "0.9", "--rollout-prob", "0.25", "--rollout-steps", "2")
    state = json.loads((base / "last" / "model.json").read_text())["train"]
    cfg = state["config"]
    assert (cfg["stage"], cfg["num_threads"], cfg["batch_size"], cfg["seed"], cfg["lr"]) == ("base", 1, 4, 3, 0.001)
    assert (cfg["vel_loss_weight"], cfg["foot_loss_weight"], cfg["foot_loss_max_t"]) == (0.5, 0.25, 300)
    assert (cfg["concat_prob"], cfg["time_warp_prob"], cfg["ema_decay"]) == (0.1, 0.2, 0.9)
    assert (cfg["rollout_prob"], cfg["rollout_steps"]) == (0.25, 2)
    assert all("vel" in h and "foot" in h for h in state["history"])

    control = tmp_path / "control"
    run("control", "--init", str(base / "last"), "--run-dir", str(control), "--control-loss-weight", "0.5",
        "--heading-prob", "0.6", "--vel-loss-weight", "1", "--rollout-prob", "0.5", "--rollout-steps", "3")
    cfg = json.loads((control / "last" / "model.json").read_text())["train"]["config"]
    assert (cfg["stage"], cfg["control_loss_weight"], cfg["heading_prob"], cfg["vel_loss_weight"]) == (
        "control", 0.5, 0.6, 1.0)
    assert (cfg["rollout_prob"], cfg["rollout_steps"]) == (0.5, 3)
    assert cfg["foot_loss_weight"] == 0.0 and cfg["foot_loss_max_t"] is None
