"""`ikmo export` and `ikmo preview` on real files (the commands registered on their own Typer app)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from ikmo.commands.export import register
from ikmo.motion_model.data.bvh import read_bvh
from ikmo.motion_model.errors import InputFileError, MotionDataError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    a = typer.Typer()
    register(a, {})
    return a


@pytest.fixture(scope="module")
def joints_file(tmp_path_factory: pytest.TempPathFactory, hml3d_fixture_dir: Path) -> Path:
    p = tmp_path_factory.mktemp("cli") / "joints.npy"
    np.save(p, np.load(hml3d_fixture_dir / "new_joints" / "012314.npy")[:30])
    return p


def test_export_formats(app: typer.Typer, joints_file: Path, tmp_path: Path) -> None:
    run = CliRunner().invoke
    for fmt, name in (("bvh", "m.bvh"), ("npy", "j.npy"), ("features", "f.npy")):
        res = run(app, ["export", str(joints_file), "--format", fmt, "--out", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
    assert read_bvh(tmp_path / "m.bvh").n_frames == 30
    assert np.load(tmp_path / "j.npy").shape == (30, 22, 3)
    assert np.load(tmp_path / "f.npy").shape == (29, 263)


def test_preview_with_overlays(app: typer.Typer, joints_file: Path, tmp_path: Path) -> None:
    traj = np.load(joints_file)[:, 0, [0, 2]]
    np.save(tmp_path / "traj.npy", traj)
    pose = np.load(joints_file)[10] - np.load(joints_file)[10, 0]
    (tmp_path / "kf.json").write_text(json.dumps({"time_s": 0.5, "joints": pose.tolist()}))
    res = CliRunner().invoke(app, ["preview", str(joints_file), "--out", str(tmp_path / "p.gif"), "--trajectory",
                                   str(tmp_path / "traj.npy"), "-k", "1.0", "-k", str(tmp_path / "kf.json"),
                                   "--gif-scale", "0.5", "--sheet", str(tmp_path / "s.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "p.gif").stat().st_size > 0 and (tmp_path / "s.png").stat().st_size > 0


def test_errors_are_ours(app: typer.Typer, tmp_path: Path) -> None:
    run = CliRunner().invoke
    res = run(app, ["export", str(tmp_path / "missing.npy"), "--format", "bvh", "--out", str(tmp_path / "x.bvh")])
    assert isinstance(res.exception, InputFileError)
    np.save(tmp_path / "bad.npy", np.zeros((5, 21, 3)))
    res = run(app, ["preview", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "x.mp4")])
    assert isinstance(res.exception, MotionDataError)
    assert not (tmp_path / "x.mp4").exists()
