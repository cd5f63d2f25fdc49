"""Run inside Blender (`blender -b --factory-startup --python run_addon.py -- ZIP SERVER PHOTO OUT.json`):
install the add-on from its zip as a user would, fill its panel's settings and press Generate
(the operator) against a running `ikmo serve`, then report what happened to OUT.json.

Steps: (1) a request with a photo → a new armature; (2) the same armature selected, a second
request (BVH) → its animation replaced; (3) a request the server cannot make → its error shown;
(4) a server that is not there → a clear error. Set BLENDER_USER_SCRIPTS to a scratch folder: the
add-on is installed there.
"""

import json
import os
import sys
from pathlib import Path

import addon_utils
import bpy

zip_path, server, photo, out_path = sys.argv[sys.argv.index("--") + 1:][:4]
files_dir = str(Path(out_path).parent / "downloads")
bpy.ops.preferences.addon_install(filepath=zip_path, overwrite=True)
addon_utils.enable("ikmo_blender", default_set=True, handle_error=None)
bpy.ops.wm.read_factory_settings(use_empty=True)
addon_utils.enable("ikmo_blender", default_set=True, handle_error=None)  # factory settings reset the add-ons
scene = bpy.context.scene
s = scene.ikmo
report: dict = {"module": addon_utils.check("ikmo_blender")}


def state(result: set) -> dict:
    arms = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    active = bpy.context.view_layer.objects.active
    action = active.animation_data.action if active is not None and active.animation_data else None
    return {"result": sorted(result), "answer": s.answer, "notes": s.notes, "error": s.error, "run_id": s.run_id,
            "armatures": [a.name for a in arms], "active": active.name if active else None,
            "active_format": active.get("ikmo_format") if active else None,
            "active_run": active.get("ikmo_run") if active else None,
            "meshes": [o.name for o in bpy.data.objects if o.type == "MESH"],
            "frames": (int(round(action.frame_range[1] - action.frame_range[0])) + 1) if action else 0,
            "scene_fps": scene.render.fps / scene.render.fps_base,
            "downloads": sorted(os.listdir(files_dir)) if os.path.isdir(files_dir) else []}


s.server, s.folder = server, files_dir
s.text = "walk forward 2 meters and strike this pose at the end"
bpy.ops.ikmo.add_photos(directory=os.path.dirname(photo), files=[{"name": os.path.basename(photo)}])
s.photos[0].use_time, s.photos[0].time_s = True, 3.0
s.duration_s, s.use_seed, s.seed = 4.0, True, 1
report["photos"] = [p.path for p in s.photos]
report["first"] = state(bpy.ops.ikmo.generate())

s.text, s.file_format = "wave with the right hand", "BVH"
bpy.ops.ikmo.remove_photo(index=0)
s.duration_s = 3.0
report["bvh_new"] = state(bpy.ops.ikmo.generate())  # the GLB armature is active: not the same format → new
report["bvh_onto"] = state(bpy.ops.ikmo.generate())  # now the BVH armature is active → replaced in place

s.text = "blorp fnord zzz"
try:
    result = bpy.ops.ikmo.generate()
except RuntimeError as e:  # an operator that reports an error raises in background mode
    result = {"CANCELLED"}
    report["raised"] = str(e)
report["unmakeable"] = state(result)

s.server, s.text = "http://127.0.0.1:9", "walk"
try:
    result = bpy.ops.ikmo.generate()
except RuntimeError:
    result = {"CANCELLED"}
report["no_server"] = state(result)
Path(out_path).write_text(json.dumps(report))
