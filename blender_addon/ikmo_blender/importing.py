"""Bring an IKMo motion into the open Blender file with Blender's own importers.

- BVH: `import_anim.bvh`, 1:1 (the file is in metres), Y-up converted to Blender's Z-up by the
  importer, the scene's fps and frame range set from the file (20 fps);
- GLB: `import_scene.gltf`; the scene is set to the motion's fps first, because the glTF importer
  turns key times into frames at the scene's rate.

Debian's Blender 3.4 BVH importer opens files with mode "rU", which its Python 3.11 rejects
("invalid mode"); `bvh_open_fix` drops the "U" for the importer's call only (text mode reads
universal newlines anyway). Its glTF importer asks for ``numpy.bool``, an alias NumPy 1.24 (Debian
12's) removed; `gltf_numpy_fix` puts the alias back (it meant the builtin ``bool``) while it runs.

`place_motion` puts a new import onto an armature the user selected when that armature is an
earlier IKMo import of the same format (same bone names and rest convention): the selected object
keeps its name, transform and parent and gets the new skeleton and action (and, for GLB, the new
mesh); anything else is left alone and the motion stays on its own new armature.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterator

import bpy

FORMAT_KEY = "ikmo_format"  # custom property on armatures this add-on imported: "bvh" or "glb"
RUN_KEY = "ikmo_run"


@contextlib.contextmanager
def bvh_open_fix() -> Iterator[None]:
    """While active, `open(path, "rU")` means `open(path, "r")` (see the module doc)."""
    original = builtins.open

    def open_without_u(file, mode="r", *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if isinstance(mode, str) and "U" in mode:
            mode = mode.replace("U", "") or "r"
        return original(file, mode, *args, **kwargs)

    builtins.open = open_without_u
    try:
        yield
    finally:
        builtins.open = original


@contextlib.contextmanager
def gltf_numpy_fix() -> Iterator[None]:
    """While active, ``numpy.bool`` is the builtin ``bool`` where NumPy no longer has it."""
    import numpy

    added = "bool" not in numpy.__dict__
    if added:
        numpy.bool = bool  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if added:
            del numpy.bool


def glb_fps(path: str, default: float = 20.0) -> float:
    """The frame rate a motion.glb names in its ``extras`` (tools/export_glb.py), else `default`."""
    import json
    import struct

    try:
        with open(path, "rb") as f:
            magic, _, _, length, kind = struct.unpack("<4sIIII", f.read(20))
            if magic != b"glTF" or kind != 0x4E4F534A:  # "JSON"
                return default
            extras = json.loads(f.read(length)).get("extras") or {}
    except (OSError, ValueError, struct.error):
        return default
    fps = extras.get("fps")
    return float(fps) if isinstance(fps, (int, float)) and fps > 0 else default


def _new_objects(before: set[str]) -> list[bpy.types.Object]:
    return [o for o in bpy.data.objects if o.name not in before]


def _armature_of(objects: list[bpy.types.Object], what: str) -> bpy.types.Object:
    arms = [o for o in objects if o.type == "ARMATURE"]
    if len(arms) != 1:
        raise RuntimeError(f"importing {what} made {len(arms)} armatures, expected 1")
    return arms[0]


def import_bvh(path: str) -> bpy.types.Object:
    """Import a BVH (metres, Y-up) as a new armature with its action; returns the armature object."""
    before = {o.name for o in bpy.data.objects}
    with bvh_open_fix():
        result = bpy.ops.import_anim.bvh(filepath=path, target="ARMATURE", global_scale=1.0, frame_start=1,
                                         use_fps_scale=False, update_scene_fps=True, update_scene_duration=True,
                                         rotate_mode="NATIVE", axis_forward="-Z", axis_up="Y")
    if "FINISHED" not in result:
        raise RuntimeError(f"Blender's BVH importer did not finish on {path}: {result}")
    arm = _armature_of(_new_objects(before), path)
    arm[FORMAT_KEY] = "bvh"
    return arm


def import_glb(path: str, fps: float = 20.0) -> bpy.types.Object:
    """Import a motion.glb (armature, skinned mannequin, one action) at `fps`; the armature object."""
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = round(fps), round(fps) / fps
    before = {o.name for o in bpy.data.objects}
    with gltf_numpy_fix():
        result = bpy.ops.import_scene.gltf(filepath=path)
    if "FINISHED" not in result:
        raise RuntimeError(f"Blender's glTF importer did not finish on {path}: {result}")
    arm = _armature_of(_new_objects(before), path)
    arm[FORMAT_KEY] = "glb"
    action = arm.animation_data.action if arm.animation_data else None
    if action is not None:
        start, end = (int(round(f)) for f in action.frame_range)
        scene.frame_start, scene.frame_end = start, end
        scene.frame_set(start)
    return arm


def _meshes_of(arm: bpy.types.Object) -> list[bpy.types.Object]:
    return [o for o in bpy.data.objects if o.type == "MESH" and o.parent == arm]


def place_motion(imported: bpy.types.Object, target: bpy.types.Object | None) -> tuple[bpy.types.Object, str]:
    """Put the `imported` armature's motion onto `target` when it is an earlier IKMo import of the
    same format (see the module doc); returns (the armature that now plays it, a note)."""
    if target is None or target == imported:
        return imported, "imported as a new armature"
    if target.type != "ARMATURE" or target.get(FORMAT_KEY) != imported.get(FORMAT_KEY):
        return imported, (f"the selected object {target.name!r} is not an IKMo {imported.get(FORMAT_KEY)} armature; "
                          "imported as a new armature (retarget onto your own rig with `ikmo export --rig`)")
    old_meshes = _meshes_of(target)
    target.data = imported.data
    target.animation_data_create()
    target.animation_data.action = imported.animation_data.action if imported.animation_data else None
    for mesh in _meshes_of(imported):
        mesh.parent = target
        for mod in mesh.modifiers:
            if mod.type == "ARMATURE":
                mod.object = target
    old_names = [m.name for m in old_meshes]
    for mesh in old_meshes:
        bpy.data.objects.remove(mesh, do_unlink=True)
    for mesh, name in zip(_meshes_of(target), old_names, strict=False):  # "mannequin.001" → "mannequin"
        mesh.name = name
    for key in (FORMAT_KEY, RUN_KEY):
        if key in imported:
            target[key] = imported[key]
    bpy.data.objects.remove(imported, do_unlink=True)
    return target, f"the motion replaced the animation of {target.name!r}"
