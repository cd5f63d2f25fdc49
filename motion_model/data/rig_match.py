"""Which joint of a BVH rig is which of the 22 SMPL joints: by names first, then by the skeleton.

Names: each joint name is split into side and part (`split_side`: ``"CC_Base_L_Thigh"`` →
``("left", "thigh")``, ``"Bip01 L Calf"`` → ``("left", "calf")``, ``"thigh_l"``, ``"LeftUpLeg"``,
``"DEF-upper_arm.L.001"`` …) after dropping the prefixes of the common tools (``mixamorig:``,
``CC_Base_``, ``Bip01``, ``Character1_``, ``DEF-``, ...). Parts are looked up in synonym tables
that cover SMPL, Mixamo, Character Creator / iClone, the Unreal mannequin, Unity humanoid,
3ds Max Biped, MotionBuilder HumanIK, Blender Rigify / metarig, CMU / Daz and Bandai Namco.
Twist, roll, share, finger, extra toe, face and helper bones are ignored (`is_ignored`). When a
part is named twice, the joint nearest the root wins (Rigify's ``thigh.L`` over ``thigh.L.001``).

Skeleton (`_structure`): when names do not tell, the hierarchy and the rest pose decide. Small
side branches (fingers, toes, face: under 15 % of the skeleton's size) are pruned; what is left
must end in five chains: the three that meet deepest are the upper body (two arms and the head),
the other two the legs. Up is from the feet to the chest, the head is the upper chain that points
up, left is ``up × forward`` (forward: where the toes point; +X when the feet tell nothing), or
the side the chain's names say. Along each chain the joints are picked by their arc-length
fraction, matched to the 22-joint target skeleton's proportions. Such joints are reported as
*guessed*.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ikmo.motion_model.representation.skeleton import HUMANML3D_22, children_lists

# Fractions of the pelvis→neck arc length at which SMPL's spine1/2/3 sit on the target
# skeleton: cumulative bone lengths .1316, .2748, .3322 of .5516 m.
SPINE_T = (0.239, 0.498, 0.602)


@dataclass(frozen=True)
class Along:
    """The point at fraction `t` of the arc length of a chain of source joints (0: first, 1: last)."""

    chain: tuple[str, ...]
    t: float


JointSource = str | Along


@dataclass(frozen=True)
class RigMatch:
    """The result of matching a rig.

    Attributes:
        targets: {SMPL joint name: source joint name or `Along`} for every target found.
        guessed: target joints placed from the hierarchy and rest pose, not from names.
        missing: target joints that could not be placed.
        family: the naming family the names look like ("Mixamo", "Unreal mannequin", ..., "unknown").
    """

    targets: dict[str, JointSource]
    guessed: tuple[str, ...]
    missing: tuple[str, ...]
    family: str


# ----------------------------------------------------------------------------- names

_PREFIX_RE = re.compile(
    r"^(mixamorig\d*|cc_base|bip\d+|biped\d*|character\d*|def|org|mch|b|j|jnt|bone|skel|char)[\s_:.\-]+",
    re.IGNORECASE,
)
_BLENDER_NUMBER_RE = re.compile(r"\.\d{3}$")
_SIDE_PATTERNS = (
    re.compile(r"^(left|right)[\s_.\-]*", re.IGNORECASE),
    re.compile(r"[\s_.\-]*(left|right)$", re.IGNORECASE),
    re.compile(r"^([lr])[\s_.\-]+", re.IGNORECASE),
    re.compile(r"[\s_.\-]+([lr])$", re.IGNORECASE),
    re.compile(r"^([lr])(?=[A-Z])"),  # CMU/Daz camel case: lThigh, rForeArm
)


def split_side(name: str) -> tuple[str | None, str]:
    """``"mixamorig:LeftUpLeg"`` → ``("left", "upleg")``; ``"Spine1"`` → ``(None, "spine1")``."""
    base = name.split(":")[-1].split("|")[-1]
    base = _PREFIX_RE.sub("", base)
    base = _BLENDER_NUMBER_RE.sub("", base)
    side = None
    for pat in _SIDE_PATTERNS:
        m = pat.search(base)
        if m:
            side = "left" if m.group(1).lower().startswith("l") else "right"
            base = base[: m.start()] + base[m.end():]
            break
    return side, re.sub(r"[^a-z0-9]", "", base.lower())


# Bones that never carry one of the 22 joints (matched on the lowercase part without separators).
_IGNORE_RE = re.compile(
    r"twist|roll|share|thumb|index|middle|ring|pinky|little|finger|carpal|palm|jaw|eye|tongue|teeth|"
    r"brow|lip|cheek|nose|nub|end\d*$|top|tip|helper|corrective|adjust|breast|heel|^ik|pole|ctrl|"
    r"weapon|prop|facial|tail|hair|bigtoe|toe[1-9]|toes[1-9]"
)


def is_ignored(name: str) -> bool:
    """Twist/roll/share/finger/face/helper bones and End Sites (``"<parent>_End"``)."""
    side, part = split_side(name)
    if side is not None and part == "pelvis":  # Rigify's pelvis.L: a side bone of the hips
        return True
    return bool(_IGNORE_RE.search(part))


_SIDE_PARTS = {
    "collar": ("clavicle", "collar", "collarbone", "shoulder"),
    "upper_arm": ("upperarm", "arm", "uparm", "shldr", "humerus"),
    "forearm": ("forearm", "lowerarm", "elbow", "radius", "ulna"),
    "hand": ("hand", "wrist"),
    "thigh": ("upleg", "thigh", "upperleg", "femur", "hip"),
    "shin": ("leg", "shin", "lowerleg", "knee", "calf", "tibia"),
    "foot": ("foot", "ankle"),
    "toe": ("toebase", "toe", "toes", "ball", "toe0", "toes0"),
}
_CENTRE_PARTS = {
    "pelvis": ("hips", "pelvis", "hip"),
    "neck": ("neck", "neck1", "neck01", "neck0"),
    "head": ("head",),
}
_PART_OF: dict[tuple[str | None, str], str] = {(side, s): part for side in ("left", "right") for part, syns in _SIDE_PARTS.items() for s in syns}
_PART_OF.update({(None, s): part for part, syns in _CENTRE_PARTS.items() for s in syns})
# SMPL's own names clash with the generic ones (SMPL "hip" is the thigh top, "foot" the toe,
# "shoulder" the upper arm), so a full set of SMPL names is tried first and must match in full.


def classify(name: str) -> tuple[str | None, str] | None:
    """(side, part) of a joint name in the tables above (part e.g. "thigh", "pelvis"), or None."""
    if is_ignored(name):
        return None
    side, part = split_side(name)
    found = _PART_OF.get((side, part))
    return None if found is None else (side, found)


def smpl_targets(names: Sequence[str]) -> dict[str, JointSource] | None:
    """The 22 targets when the rig has all of SMPL's joint names (``Pelvis``, ``L_Hip``, ``left_wrist``)."""
    idx: dict[tuple[str | None, str], str] = {}
    for n in names:
        idx.setdefault(split_side(n), n)
    out: dict[str, JointSource] = {}
    for target in HUMANML3D_22.joint_names:
        side, _, part = target.partition("_") if target.startswith(("left_", "right_")) else (None, "", target)
        src = idx.get((side, part))
        if src is None:
            return None
        out[target] = src
    return out


def rig_family(names: Sequence[str]) -> str:
    """The naming family a rig's names look like, for messages ("unknown" when none fits)."""
    low = {n.lower() for n in names}
    joined = " ".join(low)
    if smpl_targets(names) is not None:
        return "SMPL"
    rules = (
        ("cc_base_", "Character Creator / iClone"),
        ("mixamorig", "Mixamo"),
        ("bip01", "3ds Max Biped"),
        ("thigh_l", "Unreal mannequin"),
        ("leftupperleg", "Unity humanoid"),
        ("leftuplegroll", "MotionBuilder HumanIK"),
        ("character1_", "MotionBuilder HumanIK"),
        ("thigh.l", "Blender Rigify / metarig"),
        ("upperleg_l", "Bandai Namco"),
        ("lfemur", "CMU ASF"),
        ("lthigh", "CMU / Daz"),
        ("leftupleg", "Mixamo / HumanIK"),
    )
    for key, family in rules:
        if key in joined:
            return family
    return "unknown"


# ----------------------------------------------------------------------------- the skeleton


def _target_fractions(chain: Sequence[str], tail_m: float) -> np.ndarray:
    """Arc-length fractions of `chain[1:]` along the target skeleton's chain from `chain[0]`,
    the whole being the chain plus `tail_m` metres (a toe tip or hand beyond the last joint)."""
    names = HUMANML3D_22.joint_names
    cum = np.cumsum([HUMANML3D_22.bone_lengths[names.index(j)] for j in chain[1:]])
    return cum / (cum[-1] + tail_m)


_LEG = ("pelvis", "hip", "knee", "ankle", "foot")
_ARM = ("spine3", "collar", "shoulder", "elbow", "wrist")
_LEG_T = _target_fractions(["pelvis", "left_hip", "left_knee", "left_ankle", "left_foot"], 0.06)
_ARM_T = _target_fractions(["spine3", "left_collar", "left_shoulder", "left_elbow", "left_wrist"], 0.0)
_PRUNE = 0.15  # side branches reaching less than this fraction of the skeleton's size are pruned


def _pick(fractions: np.ndarray, targets: np.ndarray) -> list[int]:
    """Increasing indices into `fractions`, one per target, with the least total |difference|."""
    best: tuple[float, tuple[int, ...]] = (np.inf, ())
    for combo in itertools.combinations(range(len(fractions)), len(targets)):
        cost = float(np.abs(fractions[list(combo)] - targets).sum())
        if cost < best[0]:
            best = (cost, combo)
    return list(best[1])


class _Tree:
    """Hierarchy helpers over joints (End Sites included) with rest positions."""

    def __init__(self, parents: Sequence[int], rest: np.ndarray) -> None:
        self.parents = list(parents)
        self.rest = np.asarray(rest, dtype=np.float64)
        self.children = children_lists(parents)
        self.depth = [0] * len(parents)
        for j in range(len(parents)):  # parents precede children
            self.depth[j] = 0 if self.parents[j] < 0 else self.depth[self.parents[j]] + 1

    def path(self, j: int) -> list[int]:
        """Root → j."""
        out = [j]
        while self.parents[out[-1]] >= 0:
            out.append(self.parents[out[-1]])
        return out[::-1]

    def is_ancestor(self, a: int, b: int) -> bool:
        """a is b or above it."""
        return a in self.path(b)

    def lca(self, *js: int) -> int:
        paths = [self.path(j) for j in js]
        k = 0
        while all(len(p) > k and p[k] == paths[0][k] for p in paths):
            k += 1
        return paths[0][k - 1]

    def between(self, a: int, b: int) -> list[int]:
        """Joints strictly below ancestor `a` down to `b` (inclusive)."""
        p = self.path(b)
        return p[p.index(a) + 1:]

    def descendants(self, j: int) -> list[int]:
        out, stack = [], [j]
        while stack:
            k = stack.pop()
            out.append(k)
            stack.extend(self.children[k])
        return out

    def reach(self, j: int, origin: int) -> float:
        """How far the subtree of `j` reaches from joint `origin` (rest pose)."""
        d = self.rest[self.descendants(j)] - self.rest[origin]
        return float(np.linalg.norm(d, axis=1).max())


def _structure(names: Sequence[str], tree: _Tree, n_joints: int) -> tuple[dict[str, JointSource], str] | None:
    """The 22 targets from the hierarchy and rest pose alone (see module doc), or (None, why)."""
    size = float(np.ptp(tree.rest, axis=0).max())
    if size <= 0:
        return None
    leaves: list[int] = []
    pruned: set[int] = set()

    def helper(c: int) -> bool:
        """A twist/helper bone with nothing but helpers below it (a side branch, never a limb)."""
        return all(k >= n_joints or is_ignored(names[k]) for k in tree.descendants(c)) and c < n_joints

    def walk(j: int) -> None:
        kids = tree.children[j]
        if len(kids) == 1:
            walk(kids[0])
            return
        big = [c for c in kids if tree.reach(c, j) >= _PRUNE * size and not helper(c)]
        if not big:
            leaves.append(j)
            if kids:
                pruned.add(j)
            return
        for c in big:
            walk(c)

    roots = [j for j, p in enumerate(tree.parents) if p < 0]
    for r in roots:
        walk(r)
    if len(leaves) != 5:
        return None
    trio = max(itertools.combinations(leaves, 3), key=lambda c: tree.depth[tree.lca(*c)])
    legs = [lf for lf in leaves if lf not in trio]
    chest = tree.lca(*trio)
    if len(roots) > 1:
        return None
    pelvis = tree.lca(*legs, chest)
    up = tree.rest[chest] - tree.rest[legs].mean(axis=0)
    if np.linalg.norm(up) < 1e-9:
        return None
    up /= np.linalg.norm(up)
    head_leaf = max(trio, key=lambda lf: float(np.dot(tree.rest[lf] - tree.rest[chest], up)))
    arms = [lf for lf in trio if lf != head_leaf]

    def flat(v: np.ndarray) -> np.ndarray:
        return v - np.dot(v, up) * up

    lateral = flat(tree.rest[arms[0]] - tree.rest[arms[1]])
    lateral /= max(float(np.linalg.norm(lateral)), 1e-9)
    fwd = np.zeros(3)
    for lf in legs:
        top = tree.between(pelvis, lf)[0]
        v = flat(tree.rest[lf] - tree.rest[top])
        fwd += v - np.dot(v, lateral) * lateral
    if np.linalg.norm(fwd) > 0.02 * size:
        left_dir = np.cross(up, fwd / np.linalg.norm(fwd))
    else:
        left_dir = flat(np.array([1.0, 0.0, 0.0]))

    def side_of(chain: list[int], origin: int) -> float:
        """> 0 when the chain is the left one: by its names if they say, else by the rest pose."""
        sides = [split_side(names[k])[0] for k in chain]
        score = sides.count("left") - sides.count("right")
        if score:
            return float(score)
        return float(np.dot(tree.rest[chain[-1]] - tree.rest[origin], left_dir))

    def chain_of(lf: int, top: int) -> list[int]:
        return [k for k in tree.between(top, lf) if not is_ignored(names[k]) or k >= n_joints]

    def fractions(origin: int, chain: list[int]) -> np.ndarray:
        pts = tree.rest[[origin, *chain]]
        cum = np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))
        return cum / max(float(cum[-1]), 1e-9)

    out: dict[str, JointSource] = {"pelvis": names[pelvis]}
    leg_chains = {lf: chain_of(lf, pelvis) for lf in legs}
    arm_chains = {lf: chain_of(lf, chest) for lf in arms}
    for side_legs, kind in ((leg_chains, "leg"), (arm_chains, "arm")):
        origin = pelvis if kind == "leg" else chest
        ordered = sorted(side_legs, key=lambda lf: -side_of(side_legs[lf], origin))
        if side_of(side_legs[ordered[0]], origin) <= side_of(side_legs[ordered[1]], origin):
            return None  # the two chains cannot be told apart
        for side, lf in zip(("left", "right"), ordered, strict=True):
            chain = side_legs[lf]
            if kind == "leg":
                # The ankle ends the long way down; hip and knee by their share of pelvis→ankle;
                # the foot (SMPL's ball of the foot) is the next joint, or the End Site.
                drop = np.dot(tree.rest[pelvis] - tree.rest[chain], up)
                k_ankle = int(np.argmax(drop >= 0.85 * drop.max()))
                if k_ankle < 2 or k_ankle + 1 >= len(chain):
                    return None
                idx = _pick(fractions(pelvis, chain[: k_ankle + 1])[:-1], _LEG_T[:2] / _LEG_T[2])
                picked = [*idx, k_ankle, k_ankle + 1]
                for part, k in zip(_LEG[1:], picked, strict=True):
                    out[f"{side}_{part}"] = names[chain[k]]
            else:
                real = chain[:-1] if chain[-1] >= n_joints and len(chain) >= 4 else chain
                if len(real) < 2:
                    return None
                out[f"{side}_wrist"] = names[real[-1]]
                parts = _ARM[1:-1] if len(real) >= 4 else _ARM[2:-1]
                idx = _pick(fractions(chest, real)[:-1], _ARM_T[-len(parts):] / _ARM_T[-1])
                for part, k in zip(parts, idx, strict=True):
                    out[f"{side}_{part}"] = names[real[k]]
    head_chain = tree.between(chest, head_leaf)
    out["neck"] = names[head_chain[0]]
    # The head: the last joint up the chain, unless that one is a head-top marker (a long bone
    # from the one before); the End Site when the neck is the only joint.
    real = [k for k in head_chain[1:] if k < n_joints]
    if not real:
        out["head"] = names[head_chain[-1]] if len(head_chain) > 1 else ""
        if not out["head"]:
            return None
    else:
        head = real[-1]
        if len(real) >= 2:
            last = np.linalg.norm(tree.rest[real[-1]] - tree.rest[real[-2]])
            if last > 0.5 * np.linalg.norm(tree.rest[real[-1]] - tree.rest[head_chain[0]]):
                head = real[-2]
        out["head"] = names[head]
    return out, "skeleton"


def match_rig(
    names: Sequence[str],
    parents: Sequence[int] | None = None,
    rest: np.ndarray | None = None,
    n_joints: int | None = None,
) -> RigMatch:
    """Match a rig's joints onto the 22 SMPL joints (see module doc).

    Args:
        names: (N,) joint names, End Sites last as ``"<parent>_End"``.
        parents: (N,) parent indices (parents first); None: names only.
        rest: (N, 3) rest-pose world positions (all rotations zero), file units; with `parents`
            it lets the skeleton fill what the names leave open.
        n_joints: how many of `names` are joints (the rest are End Sites); None: all but the
            names ending in ``_End``.
    Returns:
        RigMatch; ``missing`` lists what neither names nor skeleton found.
    """
    family = rig_family(names)
    smpl = smpl_targets(names)
    if smpl is not None:
        return RigMatch(smpl, (), (), family)
    n_real = n_joints if n_joints is not None else sum(not re.search(r"_End\d*$", n) for n in names)
    tree = _Tree(parents, rest) if parents is not None and rest is not None else None
    depth = tree.depth if tree is not None else list(range(len(names)))

    found: dict[str, int] = {}
    for i in sorted(range(len(names)), key=lambda i: (depth[i], i)):
        c = classify(names[i]) if i < n_real else None
        if c is not None:
            key = f"{c[0]}_{c[1]}" if c[0] else c[1]
            found.setdefault(key, i)

    named: dict[str, JointSource] = {}
    if tree is not None and {"left_thigh", "right_thigh"} <= found.keys():
        top = tree.lca(found["left_thigh"], found["right_thigh"])
        for k in ("neck", "head"):
            if k in found:
                top = tree.lca(top, found[k])
                break
        cands = [i for i in tree.path(top) if classify(names[i]) == (None, "pelvis")]
        if cands:
            named["pelvis"] = names[cands[-1]]
    elif "pelvis" in found:
        named["pelvis"] = names[found["pelvis"]]
    for part in ("neck", "head"):
        if part in found:
            named[part] = names[found[part]]
    part_of = {"hip": "thigh", "knee": "shin", "ankle": "foot", "shoulder": "upper_arm", "elbow": "forearm"}
    for side in ("left", "right"):
        for target, part in part_of.items():
            if f"{side}_{part}" in found:
                named[f"{side}_{target}"] = names[found[f"{side}_{part}"]]
        for target, part, via in (("foot", "toe", "foot"), ("wrist", "hand", "forearm")):
            if f"{side}_{part}" in found:
                named[f"{side}_{target}"] = names[found[f"{side}_{part}"]]
            elif f"{side}_{via}" in found and f"{names[found[f'{side}_{via}']]}_End" in names:
                named[f"{side}_{target}"] = f"{names[found[f'{side}_{via}']]}_End"
        if f"{side}_collar" in found:
            named[f"{side}_collar"] = names[found[f"{side}_collar"]]

    targets = dict(named)
    guessed: list[str] = []
    wanted = [j for j in HUMANML3D_22.joint_names if not j.startswith("spine")]
    if tree is not None and any(j not in targets for j in wanted):
        got = _structure(names, tree, n_real)
        if got is not None:
            for j, src in got[0].items():
                if j not in targets:
                    targets[j] = src
                    guessed.append(j)
    for side in ("left", "right"):  # a rig without clavicles: a third of the way out from the neck
        if f"{side}_collar" not in targets and "neck" in targets and f"{side}_shoulder" in targets:
            targets[f"{side}_collar"] = Along((str(targets["neck"]), str(targets[f"{side}_shoulder"])), 0.35)
    if "pelvis" in targets and "neck" in targets:
        chain = _spine_chain(names, parents, str(targets["pelvis"]), str(targets["neck"]))
        targets.update({f"spine{i + 1}": Along(chain, t) for i, t in enumerate(SPINE_T)})
    missing = tuple(j for j in HUMANML3D_22.joint_names if j not in targets)
    ordered = {j: targets[j] for j in HUMANML3D_22.joint_names if j in targets}
    return RigMatch(ordered, tuple(j for j in HUMANML3D_22.joint_names if j in guessed), missing, family)


def _spine_chain(names: Sequence[str], parents: Sequence[int] | None, pelvis: str, neck: str) -> tuple[str, ...]:
    """Joints from pelvis to neck along the hierarchy (just the two if the hierarchy is unknown)."""
    if parents is None:
        return (pelvis, neck)
    i, target = list(names).index(neck), list(names).index(pelvis)
    path = [i]
    while i != target and parents[i] >= 0:
        i = parents[i]
        path.append(i)
    if i != target:  # neck is not below the pelvis (e.g. both children of a ground root)
        return (pelvis, neck)
    return tuple(names[k] for k in reversed(path))
