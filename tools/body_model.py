"""The SMPL-format body model, through `smplx`: our procedural mannequin by default, an official SMPL
`.npz` when `IKMO_SMPL_MODEL` (or an explicit path) names one.

Conventions (the SMPL ones, which match HumanML3D's): metres, y up, the body faces +Z, its left is
+X. The rest pose is SMPL's T-pose. `smpl_pose` everywhere in IKMo means SMPL `body_pose` joints
1..21 as axis-angle *relative to that T-pose* (what SMPL users expect); the two hand joints (22, 23)
stay at rest. Joint positions of a pose are the smplx forward kinematics of these rotations from the
model's rest joints, so for the mannequin (whose rest bones have the HumanML3D target lengths) they
are directly HumanML3D-comparable.

The mannequin (`tools/assets/mannequin_smpl.npz`, built by `scripts/make_mannequin.py`) contains no
licensed data: capsules and ellipsoids around a T-pose skeleton with the target bone lengths. Its
J_regressor averages six invisible anchor vertices around each joint, so the regressed joints are the
rest skeleton exactly. An extra key `vertex_part` (V,) labels vertices (skin, shirt, eye, ...) for
the renderer; smplx ignores it.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ikmo.motion_model.errors import ConfigError, InputFileError

log = logging.getLogger(__name__)

MANNEQUIN_PATH = Path(__file__).resolve().parent / "assets" / "mannequin_smpl.npz"
ENV_VAR = "IKMO_SMPL_MODEL"

# SMPL's 24 joints: the 22 HumanML3D joints, then left hand (22) and right hand (23).
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
N_SMPL_JOINTS = 24
N_BODY = 21  # body_pose joints of IKMo's smpl_pose (joints 1..21)

# Vertex part labels of the mannequin (`vertex_part`); official models get labels from weights.
PART_NAMES = ("skin", "shirt", "trousers", "shoes", "hair", "eye_white", "pupil", "brow", "lips")
PART = {n: i for i, n in enumerate(PART_NAMES)}

_SMPL_TOPOLOGY_VERTS = 6890
REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


@dataclass
class _Struct:
    """The SMPL arrays that smplx.SMPL reads (as attributes) from its `data_struct`."""

    v_template: np.ndarray  # (V, 3) float32
    shapedirs: np.ndarray  # (V, 3, n_betas) float32
    posedirs: np.ndarray  # (V, 3, 207) float32
    J_regressor: np.ndarray  # (24, V) float32
    weights: np.ndarray  # (V, 24) float32
    kintree_table: np.ndarray  # (2, 24) int64
    f: np.ndarray  # (F, 3) int64


@dataclass
class BodyModel:
    """A loaded SMPL-format model.

    smpl: the smplx.SMPL module (float32, CPU).
    rest_joints: (24, 3) float64 metres, rest (T-pose) joints for betas = 0.
    faces: (F, 3) int64 triangle vertex indices.
    weights: (V, 24) float32 skinning weights.
    vertex_part: (V,) int64 labels into PART_NAMES (renderer colours).
    path: where it came from.
    """

    smpl: torch.nn.Module
    rest_joints: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    vertex_part: np.ndarray
    path: Path

    @property
    def n_vertices(self) -> int:
        return int(self.weights.shape[0])

    def forward(self, global_orient: np.ndarray | torch.Tensor, body_pose: np.ndarray | torch.Tensor,
                betas: np.ndarray | torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pose the model with smplx LBS.

        global_orient: (B, 3) or (3,) axis-angle; body_pose: (B, 21, 3) / (21, 3) (hands at rest) or
        (B, 23, 3). Returns vertices (B, V, 3) and joints (B, 24, 3), float32 metres, pelvis at its
        rest position (no translation).
        """
        go = torch.as_tensor(np.asarray(global_orient, dtype=np.float32)).reshape(-1, 3)
        bp = torch.as_tensor(np.asarray(body_pose, dtype=np.float32)).reshape(go.shape[0], -1, 3)
        if bp.shape[1] == N_BODY:
            bp = torch.cat([bp, torch.zeros(bp.shape[0], 2, 3)], dim=1)
        if bp.shape[1] != N_SMPL_JOINTS - 1:
            raise ValueError(f"body_pose must be (B, 21, 3) or (B, 23, 3), got {tuple(bp.shape)}")
        kw = {}
        if betas is not None:
            b = torch.as_tensor(np.asarray(betas, dtype=np.float32)).reshape(go.shape[0], -1)
            kw["betas"] = b
        with torch.no_grad():
            out = self.smpl(global_orient=go, body_pose=bp.reshape(go.shape[0], -1), **kw)
        return out.vertices.numpy(), out.joints[:, :N_SMPL_JOINTS].numpy()


def resolve_model_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The body model to use: `path`, else `$IKMO_SMPL_MODEL`, else the bundled mannequin."""
    chosen = path if path is not None else os.environ.get(ENV_VAR) or None
    p = Path(chosen) if chosen is not None else MANNEQUIN_PATH
    if not p.is_file():
        if chosen is None:
            raise ConfigError(f"the bundled mannequin {p} is missing; regenerate it with "
                              "`python scripts/make_mannequin.py`")
        raise ConfigError(f"SMPL model {p} does not exist; point {ENV_VAR} at an SMPL .npz or unset it "
                          "to use the bundled mannequin")
    return p


def load_body_model(path: str | os.PathLike[str] | None = None) -> BodyModel:
    """Load an SMPL-format `.npz` (see module doc) as a `BodyModel`; cached per resolved path."""
    return _load(resolve_model_path(path).resolve())


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> BodyModel:
    import smplx

    try:
        data = dict(np.load(path, allow_pickle=False))
    except Exception as e:  # zip/npy parsing errors of every kind
        raise InputFileError(f"cannot read the SMPL model {path}: {e}; give an SMPL .npz file") from e
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise InputFileError(f"{path} is not an SMPL model: it lacks {', '.join(missing)}")
    if data["kintree_table"].shape[1] != N_SMPL_JOINTS:
        raise InputFileError(f"{path} has {data['kintree_table'].shape[1]} joints; SMPL (24 joints) is needed, "
                             "not SMPL-H/SMPL-X")
    shapedirs = data["shapedirs"].astype(np.float32)
    # smplx warns (on stdout) when a model has fewer shape components than SMPL's shape space; pad
    # with zero directions in memory so small files stay small and quiet.
    n_space = int(getattr(smplx.SMPL, "SHAPE_SPACE_DIM", shapedirs.shape[-1]))
    if shapedirs.shape[-1] < n_space:
        pad = np.zeros((*shapedirs.shape[:2], n_space - shapedirs.shape[-1]), np.float32)
        shapedirs = np.concatenate([shapedirs, pad], axis=-1)
    struct = _Struct(
        v_template=data["v_template"].astype(np.float32),
        shapedirs=shapedirs,
        posedirs=data["posedirs"].astype(np.float32),
        J_regressor=data["J_regressor"].astype(np.float32),
        weights=data["weights"].astype(np.float32),
        kintree_table=data["kintree_table"].astype(np.int64),
        f=data["f"].astype(np.int64),
    )
    kw: dict[str, object] = {}
    n_verts = len(struct.v_template)
    if n_verts != _SMPL_TOPOLOGY_VERTS:
        # smplx appends face/feet/hand keypoints from SMPL's vertex ids; other topologies (the
        # mannequin) point them at vertex 0 and switch the optional ones off; IKMo uses joints 0..23.
        kw = {"vertex_ids": dict.fromkeys(("nose", "reye", "leye", "rear", "lear"), 0),
              "use_hands": False, "use_feet_keypoints": False}
    smpl = smplx.SMPL(model_path=str(path), data_struct=struct, num_betas=10, batch_size=1, **kw)
    smpl.eval()
    rest = (data["J_regressor"].astype(np.float64) @ data["v_template"].astype(np.float64))
    weights = data["weights"].astype(np.float32)
    part = data["vertex_part"].astype(np.int64) if "vertex_part" in data else parts_from_weights(weights)
    log.debug("loaded body model %s: %d vertices, %d faces", path, len(weights), len(data["f"]))
    return BodyModel(smpl=smpl, rest_joints=rest, faces=data["f"].astype(np.int64), weights=weights,
                     vertex_part=part, path=path)


def parts_from_weights(weights: np.ndarray) -> np.ndarray:
    """(V,) part labels from skinning weights (V, 24): head/hands skin, torso/arms shirt, legs trousers,
    feet shoes. Used for models that carry no labels (official SMPL)."""
    groups = {
        PART["skin"]: [12, 15, 20, 21, 22, 23],
        PART["shirt"]: [3, 6, 9, 13, 14, 16, 17, 18, 19],
        PART["trousers"]: [0, 1, 2, 4, 5],
        PART["shoes"]: [7, 8, 10, 11],
    }
    labels = np.array(list(groups))
    mass = np.stack([weights[:, idx].sum(1) for idx in groups.values()], axis=1)
    return labels[mass.argmax(1)]
