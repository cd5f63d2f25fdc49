"""The HumanML3D-layout loader on small folders the test writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ikmo.motion_model.data.captions import text_line
from ikmo.motion_model.data.dataset import MotionTextDataset, collate_motion
from ikmo.motion_model.errors import InputFileError, MotionDataError

pytestmark = pytest.mark.unit


def make_folder(root: Path, dim: int = 263, lengths: dict[str, int] | None = None) -> Path:
    lengths = lengths or {"a": 30, "b": 60, "c": 250, "d": 10}
    rng = np.random.default_rng(0)
    (root / "new_joint_vecs").mkdir(parents=True)
    (root / "texts").mkdir()
    for cid, n in lengths.items():
        np.save(root / "new_joint_vecs" / f"{cid}.npy", rng.normal(size=(n, dim)).astype(np.float32) + 3.0)
        lines = [text_line(f"a person does {cid} number {k}.") for k in range(3)]
        (root / "texts" / f"{cid}.txt").write_text("\n".join(lines) + "\n")
    # A segment caption on clip b: seconds 0.5 to 2.0 → rows 10..40.
    with open(root / "texts" / "b.txt", "a") as f:
        f.write("a person does only a part.#a/DET#0.5#2.0\n")
    np.save(root / "Mean.npy", np.full(dim, 3.0, dtype=np.float32))
    np.save(root / "Std.npy", np.full(dim, 2.0, dtype=np.float32))
    (root / "train.txt").write_text("a\nb\nc\nd\nmissing\n")
    (root / "test.txt").write_text("a\nb\n")
    return root


def test_items_are_normalised_with_lengths_and_captions(tmp_path: Path) -> None:
    root = make_folder(tmp_path)
    ds = MotionTextDataset(root, "test", min_frames=20)
    assert len(ds) == 3  # a, b whole, b segment
    item = ds[0]
    raw = np.load(root / "new_joint_vecs" / "a.npy")
    assert item["length"] == 30 and item["id"] == "a"
    torch.testing.assert_close(item["features"], torch.from_numpy((raw - 3.0) / 2.0))
    assert item["caption"] == "a person does a number 0."  # eval: the first caption, always
    assert ds[0]["caption"] == item["caption"]
    seg = ds[2]
    assert seg["caption"] == "a person does only a part." and seg["length"] == 30
    b = np.load(root / "new_joint_vecs/b.npy")
    torch.testing.assert_close(seg["features"], torch.from_numpy((b[10:40] - 3) / 2))


def test_train_mode_random_caption_and_crop_reproducible(tmp_path: Path) -> None:
    root = make_folder(tmp_path)
    ds1 = MotionTextDataset(root, "train", seed=7, max_frames=196)
    ds2 = MotionTextDataset(root, "train", seed=7, max_frames=196)
    assert len(ds1) == 4  # d (10 rows) is too short; "missing" has no files
    idx = [i for i in range(len(ds1)) if ds1.entries[i][0].clip_id == "c"][0]
    a = [ds1[idx] for _ in range(8)]
    b = [ds2[idx] for _ in range(8)]
    assert all(x["length"] == 196 for x in a)  # 250 rows cropped to max_frames
    assert [x["caption"] for x in a] == [x["caption"] for x in b]
    assert len({x["caption"] for x in a}) > 1
    assert len({float(x["features"][0, 0]) for x in a}) > 1  # different crops


def test_collate_pads_and_masks(tmp_path: Path) -> None:
    ds = MotionTextDataset(make_folder(tmp_path), "test")
    batch = collate_motion([ds[0], ds[1]])
    assert batch["features"].shape == (2, 60, 263)
    assert batch["lengths"].tolist() == [30, 60]
    assert batch["mask"].sum(1).tolist() == [30, 60] and batch["mask"].dtype == torch.bool
    assert torch.all(batch["features"][0, 30:] == 0)
    assert batch["captions"][1].startswith("a person does b")


def test_loader_is_dimension_agnostic_kit(tmp_path: Path) -> None:
    ds = MotionTextDataset(make_folder(tmp_path, dim=251), "test")
    assert ds[0]["features"].shape == (30, 251)


def test_missing_split_and_bad_shapes(tmp_path: Path) -> None:
    root = make_folder(tmp_path)
    with pytest.raises(InputFileError, match="val.txt"):
        MotionTextDataset(root, "val")
    np.save(root / "new_joint_vecs" / "a.npy", np.zeros((30, 100), dtype=np.float32))
    with pytest.raises(MotionDataError, match=r"a\.npy"):
        MotionTextDataset(root, "test")


def test_no_statistics(tmp_path: Path) -> None:
    root = make_folder(tmp_path)
    (root / "Std.npy").unlink()
    with pytest.raises(MotionDataError, match="Std.npy"):
        MotionTextDataset(root, "test")
