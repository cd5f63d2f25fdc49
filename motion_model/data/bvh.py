"""BVH reading and forward kinematics, vectorised over frames (numpy).

A small parser of our own rather than `bvhio`: bvhio builds a Python object per joint per frame,
which is orders of magnitude slower on the 3,000+ clips of the corpus. This reader handles any
channel order, 3 or 6 channels on any joint (position channels replace the joint's OFFSET, as
Blender, MotionBuilder and the Bandai Namco exports write them) and End Sites.

Conventions of a BVH file (which this module keeps, so a writer can round-trip it):
- a joint's rotation channels are intrinsic Euler angles in degrees, applied in the listed
  order: channels ``Zrotation Xrotation Yrotation`` mean ``R = Rz @ Rx @ Ry`` (column vectors);
- world rotation ``W_j = W_parent @ R_j``; world position ``p_j = p_parent + W_parent @ t_j``
  where ``t_j`` is the OFFSET, or the position channels where the joint has them.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ikmo.motion_model.errors import InputFileError, MotionDataError

log = logging.getLogger(__name__)

_AXES = {"X": 0, "Y": 1, "Z": 2}
_CHANNEL_RE = re.compile(r"^([XYZ])(position|rotation)$", re.IGNORECASE)


@dataclass(frozen=True)
class BVHMotion:
    """One BVH file, in the file's own units and axes.

    Attributes:
        names: (J,) joint names in file order (End Sites are not joints; see ``end_sites``).
        parents: (J,) parent index, -1 for the root; parents precede children.
        offsets: (J, 3) float64 rest OFFSETs, file units.
        channels: (J,) the channel names of each joint as written, e.g. ``("Zrotation", ...)``.
        rotation_orders: (J,) the Euler order of each joint's rotation channels, e.g. ``"ZXY"``
            (``""`` for a joint without rotation channels).
        euler_deg: (T, J, 3) float64 rotation angles in degrees, in each joint's
            ``rotation_orders`` order (zero where a joint has no rotation channel).
        translations: (T, J, 3) float64 local translation of each joint, file units: the
            position channels where the joint has them, else its OFFSET.
        end_sites: ((parent index, (3,) offset), ...) End Sites in file order.
        frame_time: seconds per frame as written in the file.
        source: the path read, for error messages.
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    rotation_orders: tuple[str, ...]
    euler_deg: np.ndarray
    translations: np.ndarray
    end_sites: tuple[tuple[int, np.ndarray], ...]
    frame_time: float
    source: str = ""

    @property
    def n_frames(self) -> int:
        return int(self.euler_deg.shape[0])

    @property
    def n_joints(self) -> int:
        return len(self.names)

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def root_translation(self) -> np.ndarray:
        """(T, 3) float64 root position per frame, file units."""
        return self.translations[:, 0]

    @property
    def end_site_names(self) -> tuple[str, ...]:
        """Names given to End Sites: ``"<parent>_End"`` (suffixed with a count if a joint has several)."""
        out: list[str] = []
        for parent, _ in self.end_sites:
            name = f"{self.names[parent]}_End"
            k = 1
            while name in out:
                k += 1
                name = f"{self.names[parent]}_End{k}"
            out.append(name)
        return tuple(out)

    def local_rotations(self) -> np.ndarray:
        """(T, J, 3, 3) float64 local rotation matrices built from ``euler_deg``."""
        return euler_to_matrix(self.euler_deg, self.rotation_orders)

    def select_frames(self, idx: np.ndarray) -> BVHMotion:
        """A copy holding only the frames `idx` (frame_time unchanged)."""
        from dataclasses import replace

        return replace(self, euler_deg=self.euler_deg[idx], translations=self.translations[idx])


def _axis_rotation(axis: int, rad: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation about x/y/z by angle `rad` (...)."""
    c, s = np.cos(rad), np.sin(rad)
    m = np.zeros(rad.shape + (3, 3), dtype=np.float64)
    i, j = [(1, 2), (0, 2), (0, 1)][axis]
    m[..., axis, axis] = 1.0
    m[..., i, i] = c
    m[..., j, j] = c
    # Right-handed: Rx = [[1,0,0],[0,c,-s],[0,s,c]], Ry = [[c,0,s],[0,1,0],[-s,0,c]], Rz like Rx on (x,y).
    sign = -1.0 if axis == 1 else 1.0
    m[..., i, j] = -s * sign
    m[..., j, i] = s * sign
    return m


def euler_to_matrix(euler_deg: np.ndarray, orders: tuple[str, ...]) -> np.ndarray:
    """Intrinsic Euler angles to rotation matrices.

    Args:
        euler_deg: (T, J, 3) degrees; column k is the angle about axis ``orders[j][k]``.
        orders: (J,) e.g. ``"ZXY"``; ``""`` means identity.
    Returns:
        (T, J, 3, 3) float64 with ``R = R_{order[0]} @ R_{order[1]} @ R_{order[2]}``.
    """
    T, J, _ = euler_deg.shape
    out = np.broadcast_to(np.eye(3), (T, J, 3, 3)).copy()
    rad = np.deg2rad(euler_deg)
    # Joints sharing an order are done together: at most a handful of distinct orders per file.
    for order in set(orders):
        if not order:
            continue
        cols = [j for j, o in enumerate(orders) if o == order]
        m = _axis_rotation(_AXES[order[0]], rad[:, cols, 0])
        for k in range(1, len(order)):
            m = m @ _axis_rotation(_AXES[order[k]], rad[:, cols, k])
        out[:, cols] = m
    return out


def read_bvh(path: str | os.PathLike[str]) -> BVHMotion:
    """Read a BVH file.

    Raises:
        InputFileError: missing, unreadable, malformed or truncated file (the message names it).
        MotionDataError: zero frames, or non-finite values in the motion block.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise InputFileError(f"cannot read BVH file {p}: {e}. Check the path and permissions.") from e
    head, sep, motion_text = text.partition("MOTION")
    if not sep or "HIERARCHY" not in head:
        raise InputFileError(
            f"{p} is not a BVH file: it needs a HIERARCHY section followed by a MOTION section."
        )
    names, parents, offsets, channels, end_sites = _parse_hierarchy(head, p)
    n_frames, frame_time, values = _parse_motion(motion_text, p)

    n_channels = sum(len(c) for c in channels)
    expected = n_frames * n_channels
    if values.size != expected:
        what = "truncated" if values.size < expected else "has extra values"
        raise InputFileError(
            f"{p}: motion data {what}: the header promises {n_frames} frames × {n_channels} channels "
            f"= {expected} numbers, the file holds {values.size}. Re-export the file."
        )
    if n_frames == 0:
        raise MotionDataError(f"{p}: the clip has zero frames; nothing to import.")
    data = values.reshape(n_frames, n_channels)
    if not np.isfinite(data).all():
        bad = int(np.argmax(~np.isfinite(data).all(axis=1)))
        raise MotionDataError(f"{p}: non-finite value (NaN/inf) in the motion data at frame {bad}; "
                              "repair or re-export the file.")

    J = len(names)
    euler = np.zeros((n_frames, J, 3), dtype=np.float64)
    translations = np.broadcast_to(np.asarray(offsets, dtype=np.float64), (n_frames, J, 3)).copy()
    orders: list[str] = []
    col = 0
    for j, chans in enumerate(channels):
        order = ""
        for c in chans:
            m = _CHANNEL_RE.match(c)
            assert m is not None  # validated in _parse_hierarchy
            axis_name, kind = m.groups()
            axis = _AXES[axis_name.upper()]
            if kind.lower() == "position":
                translations[:, j, axis] = data[:, col]
            else:
                euler[:, j, len(order)] = data[:, col]
                order += axis_name.upper()
            col += 1
        orders.append(order)
    return BVHMotion(
        names=tuple(names), parents=tuple(parents), offsets=np.asarray(offsets, dtype=np.float64),
        channels=tuple(tuple(c) for c in channels), rotation_orders=tuple(orders), euler_deg=euler,
        translations=translations, end_sites=tuple((pi, np.asarray(o, dtype=np.float64)) for pi, o in end_sites),
        frame_time=frame_time, source=str(p),
    )


def _parse_hierarchy(head: str, p: Path):
    tokens = head.split()
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    end_sites: list[tuple[int, list[float]]] = []
    stack: list[int] = []  # joint index per open brace; -2 marks an End Site block
    pending: int | None = None
    i = tokens.index("HIERARCHY") + 1
    try:
        while i < len(tokens):
            tok = tokens[i]
            up = tok.upper()
            if up in ("ROOT", "JOINT"):
                parent = next((s for s in reversed(stack) if s >= 0), -1)
                if up == "ROOT" and names:
                    raise InputFileError(f"{p}: more than one ROOT; only single-skeleton BVH files are supported.")
                if up == "JOINT" and not stack:
                    raise InputFileError(f"{p}: JOINT {tokens[i + 1]!r} outside of a ROOT block.")
                # Some exporters put spaces in names; the name runs up to the opening brace.
                j = i + 1
                while tokens[j] != "{":
                    j += 1
                names.append(" ".join(tokens[i + 1:j]))
                parents.append(parent)
                offsets.append([0.0, 0.0, 0.0])
                channels.append([])
                pending = len(names) - 1
                i = j - 1  # the "{" is handled on the next step
            elif up == "END":
                end_sites.append((stack[-1], [0.0, 0.0, 0.0]))
                pending = -2
                i += 2  # "End Site"
                continue
            elif tok == "{":
                if pending is None:
                    raise InputFileError(f"{p}: unexpected '{{' in the HIERARCHY.")
                stack.append(pending)
                pending = None
            elif tok == "}":
                if not stack:
                    raise InputFileError(f"{p}: unbalanced '}}' in the HIERARCHY.")
                stack.pop()
            elif up == "OFFSET":
                vec = [float(v) for v in tokens[i + 1:i + 4]]
                if len(vec) != 3:
                    raise ValueError("OFFSET needs 3 numbers")
                if stack and stack[-1] == -2:
                    end_sites[-1] = (end_sites[-1][0], vec)
                else:
                    offsets[stack[-1]] = vec
                i += 3
            elif up == "CHANNELS":
                n = int(tokens[i + 1])
                chans = tokens[i + 2:i + 2 + n]
                if n not in (3, 6) or len(chans) != n or not all(_CHANNEL_RE.match(c) for c in chans):
                    raise InputFileError(
                        f"{p}: joint {names[stack[-1]]!r} has unsupported CHANNELS {' '.join(tokens[i+1:i+2+n])!r}; "
                        "expected 3 or 6 of X/Y/Z position/rotation."
                    )
                channels[stack[-1]] = chans
                i += 1 + n
            else:
                raise InputFileError(f"{p}: unexpected token {tok!r} in the HIERARCHY.")
            i += 1
    except (IndexError, ValueError) as e:
        raise InputFileError(f"{p}: malformed HIERARCHY ({e}); the file may be truncated or corrupt.") from e
    if not names:
        raise InputFileError(f"{p}: the HIERARCHY declares no ROOT joint.")
    if stack:
        raise InputFileError(f"{p}: the HIERARCHY is truncated (unclosed '{{').")
    return names, parents, offsets, channels, end_sites


def _parse_motion(motion_text: str, p: Path) -> tuple[int, float, np.ndarray]:
    m_frames = re.search(r"Frames:\s*(\S+)", motion_text)
    m_time = re.search(r"Frame\s+Time:\s*(\S+)", motion_text)
    if not m_frames or not m_time:
        raise InputFileError(f"{p}: MOTION section lacks 'Frames:' or 'Frame Time:'; the file is malformed.")
    try:
        n_frames = int(m_frames.group(1))
        frame_time = float(m_time.group(1))
    except ValueError as e:
        raise InputFileError(f"{p}: bad MOTION header ({e}).") from e
    if n_frames < 0 or not np.isfinite(frame_time) or frame_time <= 0:
        raise InputFileError(f"{p}: bad MOTION header: Frames={n_frames}, Frame Time={frame_time}.")
    body = motion_text[m_time.end():]
    try:
        values = np.array(body.split(), dtype=np.float64)
    except ValueError as e:
        raise InputFileError(f"{p}: non-numeric value in the motion data ({e}).") from e
    return n_frames, frame_time, values


def bvh_world_positions(motion: BVHMotion, end_sites: bool = False) -> np.ndarray:
    """Forward kinematics: world position of every joint in every frame.

    Args:
        motion: the clip.
        end_sites: also return End Sites, appended after the joints in ``motion.end_site_names`` order.
    Returns:
        (T, J [+ E], 3) float64, file units and axes.
    """
    local = motion.local_rotations()
    T, J = local.shape[:2]
    world_rot = np.empty_like(local)
    pos = np.empty((T, J + (len(motion.end_sites) if end_sites else 0), 3), dtype=np.float64)
    for j, p in enumerate(motion.parents):
        if p < 0:
            world_rot[:, j] = local[:, j]
            pos[:, j] = motion.translations[:, j]
        else:
            world_rot[:, j] = world_rot[:, p] @ local[:, j]
            pos[:, j] = pos[:, p] + np.einsum("tab,tb->ta", world_rot[:, p], motion.translations[:, j])
    if end_sites:
        for k, (p, off) in enumerate(motion.end_sites):
            pos[:, J + k] = pos[:, p] + world_rot[:, p] @ off
    return pos


def bvh_rest_positions(motion: BVHMotion, end_sites: bool = True) -> np.ndarray:
    """(J[+E], 3) float64 world positions of the rest pose (all rotations zero, OFFSETs only),
    file units; End Sites appended in ``motion.end_site_names`` order."""
    J = motion.n_joints
    pos = np.zeros((J + (len(motion.end_sites) if end_sites else 0), 3), dtype=np.float64)
    for j, p in enumerate(motion.parents):
        pos[j] = motion.offsets[j] if p < 0 else pos[p] + motion.offsets[j]
    if end_sites:
        for k, (p, off) in enumerate(motion.end_sites):
            pos[J + k] = pos[p] + off
    return pos
