"""Small BVH bodies of each rig naming family, written by the tests (imported by name:
`from rig_bodies import FAMILIES, body_bvh`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# A T-pose in centimetres, y up, facing +Z, left = +X: key → (parent key, world position).
# Keys a family does not name are left out (their children hang from the nearest named ancestor).
BODY: dict[str, tuple[str | None, tuple[float, float, float]]] = {
    "root": (None, (0, 0, 0)),
    "pelvis": ("root", (0, 95, 0)), "pelvis2": ("pelvis", (0, 95, 0)),
    "spine_a": ("pelvis", (0, 105, 0)), "spine_b": ("spine_a", (0, 117, 0)), "spine_c": ("spine_b", (0, 131, 0)),
    "neck": ("spine_c", (0, 147, 0)), "neck2": ("neck", (0, 152, 0)), "head": ("neck2", (0, 157, 0)),
    "head_top": ("head", (0, 175, 0)), "jaw": ("head", (0, 154, 6)), "eye_L": ("head", (3, 162, 8)),
    "ik_root": ("root", (0, 0, 0)),
}  # fmt: skip
for s, x in (("L", 1), ("R", -1)):
    BODY.update({
        f"collar_{s}": ("spine_c", (3 * x, 141, 0)), f"upper_{s}": (f"collar_{s}", (17 * x, 141, 0)),
        f"upper_twist_{s}": (f"upper_{s}", (30 * x, 141, 0)), f"fore_{s}": (f"upper_{s}", (43 * x, 141, 0)),
        f"hand_{s}": (f"fore_{s}", (68 * x, 141, 0)), f"index1_{s}": (f"hand_{s}", (77 * x, 141, 2)),
        f"index2_{s}": (f"index1_{s}", (81 * x, 141, 2)), f"thumb1_{s}": (f"hand_{s}", (71 * x, 139, 4)),
        f"middle1_{s}": (f"hand_{s}", (78 * x, 141, 0)), f"middle2_{s}": (f"middle1_{s}", (83 * x, 141, 0)),
        f"hipjoint_{s}": ("pelvis2", (0, 95, 0)), f"thigh_{s}": (f"hipjoint_{s}", (9 * x, 87, 0)),
        f"thigh_twist_{s}": (f"thigh_{s}", (9 * x, 67, 0)), f"shin_{s}": (f"thigh_{s}", (9 * x, 47, 0)),
        f"foot_{s}": (f"shin_{s}", (9 * x, 6, 0)), f"toe_{s}": (f"foot_{s}", (9 * x, 0, 12)),
        f"toe_end_{s}": (f"toe_{s}", (9 * x, 0, 18)),
    })  # fmt: skip
END = 5.0  # End Site length, cm, along +Z


def sided(template: dict[str, str], left: str, right: str) -> dict[str, str]:
    """Expand ``{"thigh_{s}": "{S}Thigh"}`` for both sides ({S} → `left`/`right`)."""
    out = {}
    for k, v in template.items():
        if "{s}" in k:
            out[k.replace("{s}", "L")] = v.replace("{S}", left)
            out[k.replace("{s}", "R")] = v.replace("{S}", right)
        else:
            out[k] = v
    return out


# Expected key of each target joint (spines are Along the pelvis→neck chain).
STANDARD = {
    "pelvis": "pelvis", "neck": "neck", "head": "head",
    **{f"{side}_{t}": f"{k}_{s}" for side, s in (("left", "L"), ("right", "R"))
       for t, k in (("hip", "thigh"), ("knee", "shin"), ("ankle", "foot"), ("foot", "toe"), ("collar", "collar"),
                    ("shoulder", "upper"), ("elbow", "fore"), ("wrist", "hand"))},
}  # fmt: skip

FAMILIES: dict[str, dict[str, str]] = {
    "mixamo": sided({
        "pelvis": "mixamorig:Hips", "spine_a": "mixamorig:Spine", "spine_b": "mixamorig:Spine1",
        "spine_c": "mixamorig:Spine2", "neck": "mixamorig:Neck", "head": "mixamorig:Head",
        "head_top": "mixamorig:HeadTop_End", "collar_{s}": "mixamorig:{S}Shoulder", "upper_{s}": "mixamorig:{S}Arm",
        "fore_{s}": "mixamorig:{S}ForeArm", "hand_{s}": "mixamorig:{S}Hand", "index1_{s}": "mixamorig:{S}HandIndex1",
        "index2_{s}": "mixamorig:{S}HandIndex2", "thumb1_{s}": "mixamorig:{S}HandThumb1",
        "thigh_{s}": "mixamorig:{S}UpLeg", "shin_{s}": "mixamorig:{S}Leg", "foot_{s}": "mixamorig:{S}Foot",
        "toe_{s}": "mixamorig:{S}ToeBase", "toe_end_{s}": "mixamorig:{S}Toe_End",
    }, "Left", "Right"),
    "character_creator": sided({
        "root": "CC_Base_BoneRoot", "pelvis": "CC_Base_Hip", "pelvis2": "CC_Base_Pelvis", "spine_a": "CC_Base_Waist",
        "spine_b": "CC_Base_Spine01", "spine_c": "CC_Base_Spine02", "neck": "CC_Base_NeckTwist01",
        "neck2": "CC_Base_NeckTwist02", "head": "CC_Base_Head", "jaw": "CC_Base_JawRoot", "eye_{s}": "CC_Base_{S}_Eye",
        "collar_{s}": "CC_Base_{S}_Clavicle", "upper_{s}": "CC_Base_{S}_Upperarm",
        "upper_twist_{s}": "CC_Base_{S}_UpperarmTwist01", "fore_{s}": "CC_Base_{S}_Forearm",
        "hand_{s}": "CC_Base_{S}_Hand", "index1_{s}": "CC_Base_{S}_Index1", "index2_{s}": "CC_Base_{S}_Index2",
        "thumb1_{s}": "CC_Base_{S}_Thumb1", "thigh_{s}": "CC_Base_{S}_Thigh",
        "thigh_twist_{s}": "CC_Base_{S}_ThighTwist01", "shin_{s}": "CC_Base_{S}_Calf", "foot_{s}": "CC_Base_{S}_Foot",
        "toe_{s}": "CC_Base_{S}_ToeBase", "toe_end_{s}": "CC_Base_{S}_ToeBaseShareBone",
    }, "L", "R"),
    "unreal": sided({
        "root": "root", "ik_root": "ik_foot_root", "pelvis": "pelvis", "spine_a": "spine_01", "spine_b": "spine_02",
        "spine_c": "spine_03", "neck": "neck_01", "head": "head", "collar_{s}": "clavicle_{S}",
        "upper_{s}": "upperarm_{S}", "upper_twist_{s}": "upperarm_twist_01_{S}", "fore_{s}": "lowerarm_{S}",
        "hand_{s}": "hand_{S}", "index1_{s}": "index_01_{S}", "index2_{s}": "index_02_{S}",
        "thumb1_{s}": "thumb_01_{S}", "thigh_{s}": "thigh_{S}", "thigh_twist_{s}": "thigh_twist_01_{S}",
        "shin_{s}": "calf_{S}", "foot_{s}": "foot_{S}", "toe_{s}": "ball_{S}",
    }, "l", "r"),
    "unity": sided({
        "pelvis": "Hips", "spine_a": "Spine", "spine_b": "Chest", "spine_c": "UpperChest", "neck": "Neck",
        "head": "Head", "jaw": "Jaw", "eye_{s}": "{S}Eye", "collar_{s}": "{S}Shoulder", "upper_{s}": "{S}UpperArm",
        "fore_{s}": "{S}LowerArm", "hand_{s}": "{S}Hand", "index1_{s}": "{S}IndexProximal",
        "index2_{s}": "{S}IndexIntermediate", "thumb1_{s}": "{S}ThumbProximal", "thigh_{s}": "{S}UpperLeg",
        "shin_{s}": "{S}LowerLeg", "foot_{s}": "{S}Foot", "toe_{s}": "{S}Toes",
    }, "Left", "Right"),
    "biped": sided({
        "root": "Bip01", "pelvis": "Bip01 Pelvis", "spine_a": "Bip01 Spine", "spine_b": "Bip01 Spine1",
        "spine_c": "Bip01 Spine2", "neck": "Bip01 Neck", "head": "Bip01 Head", "head_top": "Bip01 HeadNub",
        "collar_{s}": "Bip01 {S} Clavicle", "upper_{s}": "Bip01 {S} UpperArm",
        "upper_twist_{s}": "Bip01 {S}UpArmTwist", "fore_{s}": "Bip01 {S} Forearm", "hand_{s}": "Bip01 {S} Hand",
        "index1_{s}": "Bip01 {S} Finger1", "index2_{s}": "Bip01 {S} Finger11", "thumb1_{s}": "Bip01 {S} Finger0",
        "thigh_{s}": "Bip01 {S} Thigh", "shin_{s}": "Bip01 {S} Calf", "foot_{s}": "Bip01 {S} Foot",
        "toe_{s}": "Bip01 {S} Toe0", "toe_end_{s}": "Bip01 {S} Toe0Nub",
    }, "L", "R"),
    "humanik": sided({
        "root": "Character1_Reference", "pelvis": "Character1_Hips", "spine_a": "Character1_Spine",
        "spine_b": "Character1_Spine1", "spine_c": "Character1_Spine2", "neck": "Character1_Neck",
        "neck2": "Character1_Neck1", "head": "Character1_Head", "collar_{s}": "Character1_{S}Shoulder",
        "upper_{s}": "Character1_{S}Arm", "upper_twist_{s}": "Character1_{S}ArmRoll",
        "fore_{s}": "Character1_{S}ForeArm", "hand_{s}": "Character1_{S}Hand",
        "index1_{s}": "Character1_{S}HandIndex1", "index2_{s}": "Character1_{S}HandIndex2",
        "thumb1_{s}": "Character1_{S}HandThumb1", "thigh_{s}": "Character1_{S}UpLeg",
        "thigh_twist_{s}": "Character1_{S}UpLegRoll", "shin_{s}": "Character1_{S}Leg",
        "foot_{s}": "Character1_{S}Foot", "toe_{s}": "Character1_{S}ToeBase",
    }, "Left", "Right"),
    "rigify_metarig": sided({
        "pelvis": "spine", "spine_a": "spine.001", "spine_b": "spine.002", "spine_c": "spine.003",
        "neck": "spine.004", "neck2": "spine.005", "head": "spine.006", "jaw": "jaw", "eye_{s}": "eye.{S}",
        "collar_{s}": "shoulder.{S}", "upper_{s}": "upper_arm.{S}", "fore_{s}": "forearm.{S}", "hand_{s}": "hand.{S}",
        "index1_{s}": "f_index.01.{S}", "index2_{s}": "f_index.02.{S}", "thumb1_{s}": "thumb.01.{S}",
        "hipjoint_{s}": "pelvis.{S}", "thigh_{s}": "thigh.{S}", "shin_{s}": "shin.{S}", "foot_{s}": "foot.{S}",
        "toe_{s}": "toe.{S}",
    }, "L", "R"),
    "rigify_def": sided({
        "pelvis": "DEF-spine", "spine_a": "DEF-spine.001", "spine_b": "DEF-spine.002", "spine_c": "DEF-spine.003",
        "neck": "DEF-spine.004", "neck2": "DEF-spine.005", "head": "DEF-spine.006", "collar_{s}": "DEF-shoulder.{S}",
        "upper_{s}": "DEF-upper_arm.{S}", "upper_twist_{s}": "DEF-upper_arm.{S}.001",
        "fore_{s}": "DEF-forearm.{S}", "hand_{s}": "DEF-hand.{S}", "thigh_{s}": "DEF-thigh.{S}",
        "thigh_twist_{s}": "DEF-thigh.{S}.001", "shin_{s}": "DEF-shin.{S}", "foot_{s}": "DEF-foot.{S}",
        "toe_{s}": "DEF-toe.{S}",
    }, "L", "R"),
    "smpl": sided({
        "pelvis": "Pelvis", "spine_a": "Spine1", "spine_b": "Spine2", "spine_c": "Spine3", "neck": "Neck",
        "head": "Head", "collar_{s}": "{S}_Collar", "upper_{s}": "{S}_Shoulder", "fore_{s}": "{S}_Elbow",
        "hand_{s}": "{S}_Wrist", "thigh_{s}": "{S}_Hip", "shin_{s}": "{S}_Knee", "foot_{s}": "{S}_Ankle",
        "toe_{s}": "{S}_Foot",
    }, "L", "R"),
    "bandai": sided({
        "root": "joint_Root", "pelvis": "Hips", "spine_a": "Spine", "spine_c": "Chest", "neck": "Neck", "head": "Head",
        "collar_{s}": "Shoulder_{S}", "upper_{s}": "UpperArm_{S}", "fore_{s}": "LowerArm_{S}", "hand_{s}": "Hand_{S}",
        "thigh_{s}": "UpperLeg_{S}", "shin_{s}": "LowerLeg_{S}", "foot_{s}": "Foot_{S}", "toe_{s}": "Toes_{S}",
    }, "L", "R"),
    "cmu_daz": sided({
        "pelvis": "hip", "spine_a": "abdomen", "spine_c": "chest", "neck": "neck", "head": "head",
        "collar_{s}": "{S}Collar", "upper_{s}": "{S}Shldr", "fore_{s}": "{S}ForeArm", "hand_{s}": "{S}Hand",
        "index1_{s}": "{S}Index1", "thumb1_{s}": "{S}Thumb1", "hipjoint_{s}": "{S}Buttock", "thigh_{s}": "{S}Thigh",
        "shin_{s}": "{S}Shin", "foot_{s}": "{S}Foot",
    }, "l", "r"),
    "cmu_asf": sided({
        "pelvis": "hip", "spine_a": "lowerback", "spine_b": "upperback", "spine_c": "thorax", "neck": "lowerneck",
        "neck2": "upperneck", "head": "head", "collar_{s}": "{S}clavicle", "upper_{s}": "{S}humerus",
        "fore_{s}": "{S}radius", "hand_{s}": "{S}wrist", "index1_{s}": "{S}hand", "thumb1_{s}": "{S}thumb",
        "hipjoint_{s}": "{S}hipjoint", "thigh_{s}": "{S}femur", "shin_{s}": "{S}tibia", "foot_{s}": "{S}foot",
        "toe_{s}": "{S}toes",
    }, "l", "r"),
}  # fmt: skip
# Unnamed joints: the mapping comes from the hierarchy and the rest pose alone.
FAMILIES["unnamed"] = {k: f"joint{i:02d}" for i, k in enumerate(FAMILIES["mixamo"])}
FAMILIES["unnamed_cc"] = {k: f"b{i}" for i, k in enumerate(FAMILIES["character_creator"])}

# Targets whose expected source differs from STANDARD, per family (None: not checked, an Along).
EXCEPTIONS: dict[str, dict[str, str | None]] = {
    "cmu_daz": {"left_foot": "foot_L_End", "right_foot": "foot_R_End"},
    "cmu_asf": {"left_collar": None, "right_collar": None},
}
FAMILY_NAMES = {"mixamo": "Mixamo", "character_creator": "Character Creator / iClone", "unreal": "Unreal mannequin",
                "unity": "Unity humanoid", "biped": "3ds Max Biped", "humanik": "MotionBuilder HumanIK",
                "rigify_metarig": "Blender Rigify / metarig", "rigify_def": "Blender Rigify / metarig",
                "smpl": "SMPL", "bandai": "Bandai Namco", "cmu_daz": "CMU / Daz", "cmu_asf": "CMU ASF",
                "unnamed": "unknown", "unnamed_cc": "unknown"}
# Targets the skeleton (not the names) must place, per family.
GUESSED = {"character_creator": {"neck"}, "rigify_metarig": {"pelvis", "neck", "head"},
           "rigify_def": {"pelvis", "neck", "head"}, "unnamed": set(STANDARD), "unnamed_cc": set(STANDARD)}


def body_bvh(path: Path, names: dict[str, str], frames: int = 3, z_up: bool = False) -> Path:
    """Write the BODY joints that `names` names as a BVH (T-pose, root moving +Z 1 cm per frame)."""
    keys = [k for k in BODY if k in names]

    def parent(k: str) -> str | None:
        p = BODY[k][0]
        while p is not None and p not in names:
            p = BODY[p][0]
        return p

    kids: dict[str | None, list[str]] = {}
    for k in keys:
        kids.setdefault(parent(k), []).append(k)

    def fmt(v: np.ndarray) -> str:
        x, y, z = v
        return f"{x:g} {-z:g} {y:g}" if z_up else f"{x:g} {y:g} {z:g}"

    def emit(k: str, depth: int) -> list[str]:
        ind = "  " * depth
        p = parent(k)
        off = np.array(BODY[k][1], float) - (np.array(BODY[p][1], float) if p else 0)
        ch = "6 Xposition Yposition Zposition Zrotation Xrotation Yrotation" if p is None else \
            "3 Zrotation Xrotation Yrotation"
        out = [f"{ind}{'ROOT' if p is None else 'JOINT'} {names[k]}", f"{ind}{{", f"{ind}  OFFSET {fmt(off)}",
               f"{ind}  CHANNELS {ch}"]
        for c in kids.get(k, []):
            out += emit(c, depth + 1)
        if not kids.get(k):
            out += [f"{ind}  End Site", f"{ind}  {{", f"{ind}    OFFSET {fmt(np.array([0, 0, END]))}", f"{ind}  }}"]
        return [*out, f"{ind}}}"]

    (root,) = kids[None]
    lines = ["HIERARCHY", *emit(root, 0), "MOTION", f"Frames: {frames}", "Frame Time: 0.0333333"]
    start = np.array(BODY[root][1], float)
    for t in range(frames):
        lines.append(fmt(start + [0, 0, t]) + " 0" * (3 + 3 * (len(keys) - 1)))
    path.write_text("\n".join(lines) + "\n")
    return path


def expected_cm(family: str, target: str) -> np.ndarray | None:
    key = EXCEPTIONS.get(family, {}).get(target, STANDARD[target]) if target in STANDARD else None
    if key is None:
        return None
    if key.endswith("_End"):
        return np.array(BODY[key[:-4]][1], float) + [0, 0, END]
    return np.array(BODY[key][1], float)
