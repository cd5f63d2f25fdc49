"""Build a small corpus from a few real clips of each shared archive and check it end to end."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from ikmo.motion_model.data.corpus import build_corpus, discover_sources
from ikmo.motion_model.data.dataset import MotionTextDataset, collate_motion
from ikmo.motion_model.representation.features import features_to_joints

pytestmark = pytest.mark.integration


def _extract(archive: Path, dest: Path, keep_bvh: set[str], stop_at: str) -> None:
    """Stream `archive`, writing every small non-BVH file and the BVH files named in `keep_bvh`;
    stop after the member `stop_at` (the archives are large; the parts we need come early)."""
    with tarfile.open(archive, "r|xz") as tf:
        for m in tf:
            name = Path(m.name).name
            if m.isfile() and (name in keep_bvh or (not name.endswith(".bvh") and m.size < 200_000)):
                tf.extract(m, dest, filter="data")
            if m.name.endswith(stop_at):
                break


@pytest.fixture(scope="module")
def raw(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = shared_dir / "data"
    if not (data / "cmu-subset.tar.xz").is_file():
        pytest.skip("mocap archives absent")
    root = tmp_path_factory.mktemp("raw")
    _extract(data / "bandai-namco-motion.tar.xz", root / "bandai",
             {"dataset-1_walk-left_tired_001.bvh", "dataset-1_bye_feminine_001.bvh"},
             "Motiondataset-1/cfg/style_label.txt")
    _extract(data / "cmu-subset.tar.xz", root / "cmu", {"03_01.bvh", "08_02.bvh"}, "cmu_motion_labels.csv")
    _extract(data / "reactidle.tar.xz", root / "reactidle", {"003_genuine.bvh"}, "LICENSE.txt")
    # A user clip that is broken: the build must report it and go on.
    bad = root / "mine" / "broken.bvh"
    bad.parent.mkdir()
    text = (root / "cmu" / "data" / "03" / "03_01.bvh").read_text()
    bad.write_text(text[: len(text) // 2])
    bad.with_suffix(".txt").write_text("a person walks.\n")
    return root


@pytest.fixture(scope="module")
def corpus(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    jobs = discover_sources(raw)
    assert {j.source for j in jobs} == {"bandai", "cmu", "reactidle", "user"}
    out = tmp_path_factory.mktemp("c") / "corpus"
    return out, build_corpus(jobs, out, workers=1)


def test_layout_and_card(corpus: tuple[Path, dict]) -> None:
    out, card = corpus
    for f in ("Mean.npy", "Std.npy", "train.txt", "val.txt", "test.txt", "card.md", "card.json"):
        assert (out / f).is_file(), f
    assert not out.with_name("corpus.partial").exists()
    assert card["clips"] == 5
    assert [r["clip"] for r in card["rejected"]] == ["user_broken"]
    assert "truncated" in card["rejected"][0]["reason"]
    assert set(card["per_source"]) == {"bandai", "cmu", "reactidle"}
    assert np.load(out / "Mean.npy").shape == (263,) and np.load(out / "Std.npy").shape == (263,)
    assert card["rigs"]  # rig, unit and rate per source are recorded


def test_items_are_canonical_humanml3d(corpus: tuple[Path, dict]) -> None:
    out, card = corpus
    ids = [i for s in ("train", "val", "test") for i in (out / f"{s}.txt").read_text().split()]
    assert len(ids) == card["items"] and len(set(ids)) == len(ids)
    assert sum(i.startswith("M") for i in ids) * 2 == len(ids)
    for cid in ids:
        f = np.load(out / "new_joint_vecs" / f"{cid}.npy")
        j = np.load(out / "new_joints" / f"{cid}.npy")
        assert f.dtype == np.float32 and f.shape[1] == 263 and 20 <= f.shape[0] <= 196
        assert j.shape == (f.shape[0], 22, 3) and np.isfinite(f).all()
        np.testing.assert_allclose(features_to_joints(f.astype(np.float64)), j, atol=1e-4)
        # frame 0: root at the origin in xz, facing +Z with left = +X, upright, on the floor.
        np.testing.assert_allclose(j[0, 0, [0, 2]], 0, atol=1e-5)
        across = (j[0, 1] - j[0, 2]) + (j[0, 16] - j[0, 17])
        assert across[0] > 0.2 and abs(across[2]) < 0.1
        assert j[0, 15, 1] > j[0, 0, 1] > j[0, 7, 1]
        # new_joints drop the last frame, which may hold the clip's lowest point (uneven terrain).
        assert abs(j[:, :, 1].min()) < 0.1
        lines = (out / "texts" / f"{cid}.txt").read_text().splitlines()
        assert len(lines) >= 3 and all(len(ln.split("#")) == 4 for ln in lines)


def test_mirrors_swap_captions_and_split_by_clip(corpus: tuple[Path, dict]) -> None:
    out, card = corpus
    cid = "bandai1_walk-left_tired_001_w00"
    assert "left" in (out / "texts" / f"{cid}.txt").read_text()
    mirrored = (out / "texts" / f"M{cid}.txt").read_text()
    assert "right" in mirrored and "left" not in mirrored
    split_of = {i: s for s in ("train", "val", "test") for i in (out / f"{s}.txt").read_text().split()}
    for items in card["items_per_clip"].values():
        assert len({split_of[i] for i in items}) == 1
    # The long ReActIdle clip is cut into overlapping windows.
    assert len(card["items_per_clip"]["reactidle_003_genuine"]) >= 6


def test_loader_reads_our_corpus(corpus: tuple[Path, dict]) -> None:
    out, _ = corpus
    split = next(s for s in ("train", "val", "test") if (out / f"{s}.txt").read_text().strip())
    ds = MotionTextDataset(out, split)
    batch = collate_motion([ds[i] for i in range(min(4, len(ds)))])
    assert batch["features"].shape[-1] == 263 and batch["mask"].any()


def test_cli_build_and_info(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli_corpus"
    cmd = [sys.executable, "-m", "ikmo.cli", "data", "build", "--raw", str(raw / "cmu"), "--out", str(out),
           "--workers", "1", "--limit", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    info = subprocess.run([sys.executable, "-m", "ikmo.cli", "data", "info", str(out)], capture_output=True,
                          text=True, timeout=120)
    assert info.returncode == 0 and "source clips: 1" in info.stdout
    bad = subprocess.run([sys.executable, "-m", "ikmo.cli", "data", "info", str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "card.json" in bad.stderr


def test_cmu_clips_start_after_the_t_pose_blend(corpus: tuple[Path, dict]) -> None:
    out, _ = corpus
    j = np.load(out / "new_joints" / "cmu_08_02_w00.npy")
    # Walking: the wrists hang well below the shoulders from the first frame on (no T-pose).
    assert (j[0, [20, 21], 1] < j[0, [16, 17], 1] - 0.15).all()  # a T-pose has them level
