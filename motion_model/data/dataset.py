"""One loader for HumanML3D-layout folders: our corpus, HumanML3D itself and KIT-ML.

Layout: ``new_joint_vecs/<id>.npy`` (N, D) features, ``texts/<id>.txt`` lines
``caption#tokens#start#end``, ``Mean.npy``/``Std.npy`` (D,), ``<split>.txt`` id lists. D is
whatever the folder holds (263 for HumanML3D, 251 for KIT-ML); nothing assumes 196 frames.

A caption line with a non-zero ``start#end`` (seconds) describes only that part of the clip, as in
HumanML3D: such a caption comes with the matching slice of the features.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ikmo.motion_model.data.captions import parse_text_line
from ikmo.motion_model.errors import InputFileError, MotionDataError
from ikmo.motion_model.representation.features import Normalizer
from ikmo.motion_model.representation.skeleton import FPS, MAX_FRAMES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Entry:
    clip_id: str
    caption: str
    start: int  # feature rows [start, end)
    end: int


class MotionTextDataset(Dataset):
    """(normalised features, length, caption) items of one split of a HumanML3D-layout folder.

    Args:
        root: the folder.
        split: "train", "val", "test" (any ``<split>.txt`` in the folder).
        train: pick a random caption (and a random crop of clips longer than ``max_frames``) per
            access; otherwise the first caption and the first ``max_frames`` rows, deterministically.
        seed: seeds the caption/crop choices in train mode (per item and epoch-independent streams
            come from ``numpy.random.default_rng(seed)``).
        min_frames / max_frames: clips (or caption segments) with fewer rows are dropped; longer
            ones are cropped.
        normalizer: defaults to the folder's ``Mean.npy``/``Std.npy``.
    Items: dict with ``features`` (N, D) float32 tensor (normalised), ``length`` int N,
        ``caption`` str, ``id`` str.
    """

    def __init__(self, root: str | Path, split: str = "train", train: bool | None = None, seed: int = 0,
                 min_frames: int = 20, max_frames: int = MAX_FRAMES, normalizer: Normalizer | None = None,
                 fps: int = FPS) -> None:
        self.root = Path(root)
        self.split = split
        self.train = (split == "train") if train is None else train
        self.max_frames = max_frames
        self.rng = np.random.default_rng(seed)
        split_file = self.root / f"{split}.txt"
        if not split_file.is_file():
            raise InputFileError(f"{split_file} not found: is {self.root} a HumanML3D-layout folder "
                                 "(build one with `ikmo data build`)?")
        self.normalizer = normalizer or Normalizer.from_dir(self.root)
        ids = [s.strip() for s in split_file.read_text().splitlines() if s.strip()]
        self._features: dict[str, np.ndarray] = {}
        self._captions: dict[str, list[_Entry]] = {}
        self.entries: list[list[_Entry]] = []  # one list per item: captions sharing a segment
        skipped: Counter[str] = Counter()
        for cid in ids:
            fpath = self.root / "new_joint_vecs" / f"{cid}.npy"
            tpath = self.root / "texts" / f"{cid}.txt"
            if not fpath.is_file() or not tpath.is_file():
                skipped["missing file"] += 1
                continue
            try:
                feats = np.load(fpath).astype(np.float32, copy=False)
            except (ValueError, OSError) as e:
                raise MotionDataError(f"cannot read {fpath}: {e}; rebuild the corpus") from e
            if feats.ndim != 2 or feats.shape[1] != self.normalizer.dim:
                raise MotionDataError(f"{fpath} has shape {feats.shape}; expected (N, {self.normalizer.dim})")
            if not np.isfinite(feats).all():
                skipped["non-finite"] += 1
                continue
            whole: list[_Entry] = []
            segments: dict[tuple[int, int], list[_Entry]] = {}
            for line in tpath.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                cap, t0, t1 = parse_text_line(line)
                if t0 == 0.0 and t1 == 0.0:
                    whole.append(_Entry(cid, cap, 0, len(feats)))
                else:
                    a, b = int(t0 * fps), min(int(t1 * fps), len(feats))
                    segments.setdefault((a, b), []).append(_Entry(cid, cap, a, b))
            groups = ([whole] if whole else []) + list(segments.values())
            kept = [g for g in groups if g[0].end - g[0].start >= min_frames]
            if not kept:
                skipped["too short or no caption"] += 1
                continue
            self._features[cid] = feats
            self.entries.extend(kept)
        if skipped:
            log.info("%s/%s: skipped %s", self.root, split, dict(skipped))
        if not self.entries:
            raise MotionDataError(f"{split_file}: no usable clip (skipped: {dict(skipped)})")

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> dict[str, Any]:
        group = self.entries[i]
        e = group[int(self.rng.integers(len(group)))] if self.train else group[0]
        feats = self._features[e.clip_id][e.start:e.end]
        n = len(feats)
        if n > self.max_frames:
            s = int(self.rng.integers(n - self.max_frames + 1)) if self.train else 0
            feats = feats[s:s + self.max_frames]
            n = self.max_frames
        x = torch.from_numpy(np.ascontiguousarray(self.normalizer.normalize(feats), dtype=np.float32))
        return {"features": x, "length": n, "caption": e.caption, "id": e.clip_id}


def collate_motion(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad a list of items to the longest in the batch.

    Returns:
        ``features`` (B, N_max, D) float32 (zeros past each length), ``mask`` (B, N_max) bool
        (True on real frames), ``lengths`` (B,) int64, ``captions`` list[str], ``ids`` list[str].
    """
    if not batch:
        raise MotionDataError("cannot collate an empty batch")
    lengths = torch.tensor([b["length"] for b in batch], dtype=torch.int64)
    n_max = int(lengths.max())
    d = batch[0]["features"].shape[-1]
    feats = torch.zeros(len(batch), n_max, d, dtype=torch.float32)
    for k, b in enumerate(batch):
        feats[k, : b["length"]] = b["features"]
    mask = torch.arange(n_max)[None, :] < lengths[:, None]
    return {"features": feats, "mask": mask, "lengths": lengths, "captions": [b["caption"] for b in batch],
            "ids": [b["id"] for b in batch]}
