"""Write a 22-joint motion as a skinned, animated glTF 2.0 binary (`motion.glb`).

What the file holds (written with pygltflib; glTF's own conventions are ours: metres, y up, the
character faces +Z):

- one skin of 22 joint nodes named as in the BVH (``pelvis``, ``left_hip``, ...), hierarchy =
  HumanML3D parents, under a root node ``IKMo``; their rest TRS is the BVH rig's T-pose (the
  motion's own bone lengths, `tools.export_bvh.bvh_rig`), so a glTF reader's joint positions are
  the BVH's: exact for a generated motion (projected onto the rigid rig first), within the
  rig's ``max_error_m`` otherwise;
- the bundled mannequin mesh (`scripts/make_mannequin.py`; or the SMPL model given) bound to those
  joints: its vertices in its own T-pose, its four strongest SMPL skinning weights per vertex (the
  two hand joints folded into the wrists), one primitive and material per part (skin, shirt, ...,
  the renderer's colours). Its bind pose differs from the rig's rest pose in bone directions only,
  so each joint's inverse bind matrix carries the rotation that turns the mannequin's bones at that
  joint onto the rig's (the same Kabsch / smallest-swing solve as the rig itself), and the mesh
  stands in the rig's T-pose at rest;
- one animation ``motion``: per-joint rotation (LINEAR, quaternions continuous in sign) and the
  pelvis translation, one key per frame at ``frame / fps`` seconds (20 fps by default).

Blender (File → Import → glTF 2.0) and three.js (`GLTFLoader`) read it as an armature with a
skinned mesh and one action; the tests check it with the Khronos glTF validator, three.js and
Blender.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ikmo.motion_model.errors import InputFileError, MotionDataError
from ikmo.motion_model.representation.rotations import matrix_to_quat, quat_fix
from ikmo.motion_model.representation.skeleton import FPS, HUMANML3D_22

from .export_bvh import bvh_rig
from .export_common import check_joints, output_file
from .rig_rotations import RigPose, rig_forward, solve_rig_rotations

log = logging.getLogger(__name__)

_N = HUMANML3D_22.n_joints
_INFLUENCES = 4  # glTF's JOINTS_0 / WEIGHTS_0 hold four per vertex
_HANDS_TO_WRISTS = {22: 20, 23: 21}  # SMPL's hand joints → the 22-joint skeleton's wrists
# glTF component types and targets (the spec's numbers).
_FLOAT, _USHORT, _UINT, _UBYTE = 5126, 5123, 5125, 5121
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


@dataclass(frozen=True)
class BodyMesh:
    """A body model's mesh as the GLB binds it.

    vertices: (V, 3) float64 metres, the model's rest (T-pose) surface.
    faces: (F, 3) int64.
    weights: (V, 22) float64 skinning weights (hands folded into the wrists), rows sum to 1.
    rest_joints: (22, 3) float64 metres, the model's rest joints.
    vertex_part: (V,) int64 labels into `tools.body_model.PART_NAMES`.
    """

    vertices: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    rest_joints: np.ndarray
    vertex_part: np.ndarray


def load_body_mesh(model_path: str | os.PathLike[str] | None = None) -> BodyMesh:
    """The body model's mesh (`model_path`, else ``$IKMO_SMPL_MODEL``, else the mannequin), read
    straight from its .npz (no smplx module is built: the GLB needs only the arrays)."""
    from .body_model import parts_from_weights, resolve_model_path

    path = resolve_model_path(model_path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: np.asarray(z[k]) for k in ("v_template", "f", "weights", "J_regressor")}
            part = np.asarray(z["vertex_part"], np.int64) if "vertex_part" in z else None
    except (OSError, ValueError, KeyError) as e:
        raise InputFileError(f"cannot read the body model {path} ({e}); give an SMPL .npz") from e
    v = data["v_template"].astype(np.float64)
    w24 = data["weights"].astype(np.float64)
    w = w24[:, :_N].copy()
    for hand, wrist in _HANDS_TO_WRISTS.items():
        if hand < w24.shape[1]:
            w[:, wrist] += w24[:, hand]
    w /= np.maximum(w.sum(1, keepdims=True), 1e-12)
    rest = (data["J_regressor"].astype(np.float64) @ v)[:_N]
    if part is None:
        part = parts_from_weights(w24.astype(np.float32))
    return BodyMesh(v, data["f"].astype(np.int64), w, rest, part)


def bind_rotations(rig_rest: np.ndarray, body_rest: np.ndarray) -> np.ndarray:
    """(22, 3, 3) world rotation per joint that turns the body's rest bones onto the rig's.

    Args:
        rig_rest: (22, 3) metres, the rig's rest joint positions.
        body_rest: (22, 3) metres, the mesh's rest joint positions.
    """
    parents = HUMANML3D_22.parents
    offsets = np.zeros_like(body_rest)
    offsets[1:] = body_rest[1:] - body_rest[list(parents[1:])]
    # The same solve as any rig pose: the rig's rest joints are the "motion" the body's rest follows.
    return solve_rig_rotations(rig_rest[None], offsets, parents, aim_from_solved=False).global_rotations[0]


def _top_influences(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V, J) weights → the four strongest per vertex: joints (V, 4) uint8, weights (V, 4) float32
    summing to 1 in float32 (the validator checks the sums)."""
    idx = np.argsort(-weights, axis=1)[:, :_INFLUENCES]
    w = np.take_along_axis(weights, idx, axis=1)
    w = w / np.maximum(w.sum(1, keepdims=True), 1e-12)
    w32 = w.astype(np.float32)
    w32[:, 0] = np.float32(1.0) - w32[:, 1:].sum(1, dtype=np.float32)  # the strongest takes the rounding
    idx = np.where(w32 > 0, idx, 0)  # unused slots point at joint 0 with weight 0
    return idx.astype(np.uint8), w32


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) float32 unit normals, area-weighted face normals summed per vertex."""
    fn = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    n = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.where(norm > 1e-12, n / np.maximum(norm, 1e-12), np.array([0.0, 1.0, 0.0]))
    return n.astype(np.float32)


def _srgb_to_linear(c: tuple[float, float, float]) -> list[float]:
    """The renderer's display colours are sRGB; glTF's baseColorFactor is linear."""
    a = np.asarray(c, dtype=np.float64)
    return [float(x) for x in np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)]


class _Blob:
    """The GLB's binary chunk: buffer views and accessors appended one array at a time."""

    def __init__(self, gltf: Any) -> None:  # a pygltflib.GLTF2 (the library ships no type hints)
        self.gltf = gltf
        self.data = bytearray()

    def add(self, array: np.ndarray, component: int, kind: str, target: int | None = None,
            bounds: bool = False) -> int:
        """Append `array` (rows = elements) as a buffer view + accessor; returns the accessor index."""
        import pygltflib as g

        raw = np.ascontiguousarray(array).tobytes()
        while len(self.data) % 4:  # every view starts 4-byte aligned (the spec's rule for floats)
            self.data.append(0)
        view = g.BufferView(buffer=0, byteOffset=len(self.data), byteLength=len(raw), target=target)
        self.data.extend(raw)
        self.gltf.bufferViews.append(view)
        flat = array.reshape(len(array), -1)
        acc = g.Accessor(bufferView=len(self.gltf.bufferViews) - 1, componentType=component,
                         count=len(array), type=kind)
        if bounds:
            acc.min = [float(x) if component == _FLOAT else int(x) for x in flat.min(0)]
            acc.max = [float(x) if component == _FLOAT else int(x) for x in flat.max(0)]
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1


def glb_bytes(joints: np.ndarray, fps: float = FPS, *, model_path: str | os.PathLike[str] | None = None,
              rig: RigPose | None = None) -> tuple[bytes, RigPose]:
    """The GLB file content of a motion (see the module doc).

    Args:
        joints: (T, 22, 3) metres, y up, facing +Z at frame 0.
        fps: frames per second (key times are frame / fps).
        model_path: SMPL-format body model for the mesh (default ``$IKMO_SMPL_MODEL`` or the mannequin).
        rig: `export_bvh.bvh_rig(joints)` when the caller has already solved it (the BVH export
            of the same motion), so it is not solved twice.
    Returns:
        (bytes, rig): the file and the solved rig (``max_error_m``: how far a reader's joints can be
        from `joints`).
    """
    import pygltflib as g

    from .body_model import PART_NAMES
    from .mannequin_render import Appearance

    joints = check_joints(joints)
    if not np.isfinite(fps) or fps <= 0:
        raise MotionDataError(f"fps must be a positive number, got {fps}")
    rig = bvh_rig(joints) if rig is None else rig
    body = load_body_mesh(model_path)
    parents = HUMANML3D_22.parents
    T = joints.shape[0]
    eye = np.broadcast_to(np.eye(3), (1, _N, 3, 3))
    rig_rest = rig_forward(np.zeros((1, 3)), eye, rig.rest_offsets, parents)[0]  # pelvis at the origin
    A = bind_rotations(rig_rest, body.rest_joints)
    # Inverse bind matrix per joint: v ↦ A_j (v − m_j); at rest the joint's world matrix adds its rig
    # position, so the mesh stands in the rig's T-pose. glTF stores 4×4 matrices column-major.
    ibm = np.zeros((_N, 4, 4))
    ibm[:, :3, :3] = A
    ibm[:, :3, 3] = -np.einsum("jab,jb->ja", A, body.rest_joints)
    ibm[:, 3, 3] = 1.0
    ibm_colmajor = ibm.transpose(0, 2, 1).astype(np.float32)

    gltf = g.GLTF2(asset=g.Asset(version="2.0", generator="IKMo (tools/export_glb.py, pygltflib)"))
    gltf.extras = {"fps": float(fps), "frames": int(T), "units": "metres", "up": "+Y", "facing": "+Z"}
    blob = _Blob(gltf)

    # Nodes: 0 the IKMo root, 1..22 the joints (node = 1 + joint index), 23 the skinned mesh.
    children = [[1 + c for c in HUMANML3D_22.children(j)] for j in range(_N)]
    gltf.nodes.append(g.Node(name="IKMo", children=[1]))
    for j, name in enumerate(HUMANML3D_22.joint_names):
        t = rig.root_position[0] if parents[j] < 0 else rig.rest_offsets[j]
        gltf.nodes.append(g.Node(name=name, translation=[float(x) for x in t], children=children[j] or None))
    gltf.nodes.append(g.Node(name="mannequin", mesh=0, skin=0))
    gltf.scenes.append(g.Scene(name="IKMo motion", nodes=[0, len(gltf.nodes) - 1]))
    gltf.scene = 0

    pos = blob.add(body.vertices.astype(np.float32), _FLOAT, "VEC3", _ARRAY_BUFFER, bounds=True)
    nrm = blob.add(_vertex_normals(body.vertices, body.faces), _FLOAT, "VEC3", _ARRAY_BUFFER)
    jidx, jw = _top_influences(body.weights)
    jnt = blob.add(jidx, _UBYTE, "VEC4", _ARRAY_BUFFER)
    wts = blob.add(jw, _FLOAT, "VEC4", _ARRAY_BUFFER)
    colors = Appearance().colors
    primitives = []
    face_part = body.vertex_part[body.faces].max(axis=1)  # a face belongs to its most specific part
    index_type, index_dtype = (_USHORT, np.uint16) if len(body.vertices) < 65535 else (_UINT, np.uint32)
    for k, part in enumerate(PART_NAMES):
        tris = body.faces[face_part == k]
        if not len(tris):
            continue
        idx = blob.add(tris.reshape(-1).astype(index_dtype), index_type, "SCALAR", _ELEMENT_ARRAY_BUFFER)
        gltf.materials.append(g.Material(name=part, doubleSided=False, pbrMetallicRoughness=g.PbrMetallicRoughness(
            baseColorFactor=[*_srgb_to_linear(colors[part]), 1.0], metallicFactor=0.0, roughnessFactor=0.8)))
        primitives.append(g.Primitive(attributes=g.Attributes(POSITION=pos, NORMAL=nrm, JOINTS_0=jnt, WEIGHTS_0=wts),
                                      indices=idx, material=len(gltf.materials) - 1))
    gltf.meshes.append(g.Mesh(name="mannequin", primitives=primitives))
    gltf.skins.append(g.Skin(name="IKMo", joints=list(range(1, _N + 1)), skeleton=1,
                             inverseBindMatrices=blob.add(ibm_colmajor, _FLOAT, "MAT4")))

    times = blob.add((np.arange(T) / fps).astype(np.float32), _FLOAT, "SCALAR", bounds=True)
    quats = quat_fix(matrix_to_quat(rig.local_rotations), dim=0)  # (T, J, 4) w, x, y, z
    xyzw = np.concatenate([quats[..., 1:], quats[..., :1]], axis=-1).astype(np.float32)
    anim = g.Animation(name="motion")
    for j in range(_N):
        anim.samplers.append(g.AnimationSampler(input=times, output=blob.add(xyzw[:, j], _FLOAT, "VEC4"),
                                                interpolation="LINEAR"))
        anim.channels.append(g.AnimationChannel(sampler=len(anim.samplers) - 1,
                                                target=g.AnimationChannelTarget(node=1 + j, path="rotation")))
    anim.samplers.append(g.AnimationSampler(input=times, output=blob.add(rig.root_position.astype(np.float32),
                                                                         _FLOAT, "VEC3"), interpolation="LINEAR"))
    anim.channels.append(g.AnimationChannel(sampler=len(anim.samplers) - 1,
                                            target=g.AnimationChannelTarget(node=1, path="translation")))
    gltf.animations.append(anim)

    while len(blob.data) % 4:
        blob.data.append(0)
    gltf.buffers.append(g.Buffer(byteLength=len(blob.data)))
    gltf.set_binary_blob(bytes(blob.data))
    return b"".join(gltf.save_to_bytes()), rig


def write_glb(path: str | os.PathLike[str], joints: np.ndarray, fps: float = FPS, *,
              model_path: str | os.PathLike[str] | None = None, rig: RigPose | None = None) -> RigPose:
    """Write `joints` (T, 22, 3) metres as `path` (.glb), atomically; returns the solved rig (see
    `glb_bytes` for `rig`)."""
    data, rig = glb_bytes(joints, fps, model_path=model_path, rig=rig)
    out = Path(path)
    with output_file(out) as tmp:
        tmp.write_bytes(data)
    level = logging.WARNING if rig.max_error_m > 1e-3 else logging.INFO
    log.log(level, "wrote %s: %d frames at %g fps, %.1f kB; joints within %.2f mm of the motion", out,
            joints.shape[0], fps, len(data) / 1024, rig.max_error_m * 1e3)
    return rig
