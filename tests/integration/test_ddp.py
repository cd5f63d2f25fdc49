"""Training through torchrun: 2 CPU processes on gloo, a few steps on a tiny synthetic corpus;
then a resumed chunk and a control stage on top (in-process, to keep the test short)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

TINY = ["--d-model", "32", "--layers", "2", "--text-encoder", "hash:16", "--batch-size", "4", "--threads", "1",
        "--log-every", "1", "--ckpt-every", "2"]


def _run(args: list[str], cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "ikmo.cli",
           *args]
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_ddp_train_resume_and_control(tmp_path) -> None:
    from ikmo.motion_model.data.synthetic import write_synthetic_corpus

    corpus = write_synthetic_corpus(tmp_path / "corpus", n_clips=12, n_frames=50)
    run = tmp_path / "run"
    _run(["train", "base", "--corpus", str(corpus), "--run-dir", str(run), "--max-steps", "3", *TINY], tmp_path)
    meta = json.loads((run / "last" / "model.json").read_text())
    assert meta["train"]["step"] == 3 and meta["train"]["world_size"] == 2
    assert (run / "last" / "optim.safetensors").is_file()

    # Resume (in-process, one rank: a chunk may run on another machine) and train a control stage.
    from ikmo.motion_model.model.training import train
    from ikmo.motion_model.model_config import ControlConfig, TrainConfig

    small = {"batch_size": 4, "num_threads": 1, "log_every": 1}
    train(corpus, run, TrainConfig(max_steps=5, **small), resume=True)
    meta = json.loads((run / "last" / "model.json").read_text())
    assert meta["train"]["step"] == 5
    assert [h["step"] for h in meta["train"]["history"]] == [1, 2, 3, 4, 5]

    export = tmp_path / "weights"
    summary = train(corpus, tmp_path / "control", TrainConfig(stage="control", max_steps=2, **small),
                    init_from=run / "last", control_cfg=ControlConfig(mode="joint", hidden=16), export_to=export)
    assert summary["step"] == 2
    meta = json.loads((export / "model.json").read_text())
    assert meta["model"]["control"]["mode"] == "joint" and meta["train"]["stage"] == "control"
    assert not (export / "optim.safetensors").exists()
