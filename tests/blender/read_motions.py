"""Run inside Blender (`blender -b --factory-startup --python read_motions.py -- JOBS.json OUT.json`):
import each job's file with Blender's own importer and report what Blender made of it.

JOBS.json: [{"kind": "bvh" | "glb", "path": FILE, "bones": [names whose heads to report]}, ...], each
imported into a fresh empty scene. OUT.json: per job the armatures and meshes made, the bone
names, the action's frame range, the scene fps, and the evaluated world head of each listed bone
at every frame of the action (Blender's Z-up metres, as Blender shows them).

The BVH and glTF importers are called through the add-on's `ikmo_blender.importing` (which works
around Debian's Blender 3.4 "rU" open mode and NumPy 1.24's missing ``numpy.bool``).
"""

import json
import sys
from pathlib import Path

import bpy

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "blender_addon"))
from ikmo_blender import importing  # noqa: E402

jobs_path, out_path = sys.argv[sys.argv.index("--") + 1:][:2]
results = []
for job in json.loads(Path(jobs_path).read_text()):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm = importing.import_bvh(job["path"]) if job["kind"] == "bvh" else importing.import_glb(job["path"], 20.0)
    action = arm.animation_data.action
    first, last = (int(round(f)) for f in action.frame_range)
    heads = []
    scene = bpy.context.scene
    for frame in range(first, last + 1):
        scene.frame_set(frame)
        heads.append([list(arm.matrix_world @ arm.pose.bones[name].head) for name in job["bones"]])
    meshes = [o for o in bpy.data.objects if o.type == "MESH"]
    results.append({
        "armatures": [o.name for o in bpy.data.objects if o.type == "ARMATURE"],
        "meshes": [{"name": o.name, "vertices": len(o.data.vertices), "parent": o.parent.name if o.parent else None,
                    "armature_modifiers": [m.object.name for m in o.modifiers if m.type == "ARMATURE" and m.object]}
                   for o in meshes],
        "bones": [b.name for b in arm.data.bones],
        "action": action.name, "frame_range": [first, last], "fps": scene.render.fps / scene.render.fps_base,
        "heads": heads,
    })
Path(out_path).write_text(json.dumps(results))
