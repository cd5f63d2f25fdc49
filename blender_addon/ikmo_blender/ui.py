"""The add-on's panel, settings and operators (Blender UI; the HTTP client is `client`, the
importing `importing`)."""

from __future__ import annotations

import os
import tempfile
import textwrap

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)
from bpy_extras.io_utils import ImportHelper

from . import client, importing

_FILES = {"GLB": "motion.glb", "BVH": "motion.bvh"}


class IKMoPhoto(bpy.types.PropertyGroup):
    """A keyframe photo of the request: the file and, optionally, when the pose is struck."""

    path: StringProperty(name="Photo", subtype="FILE_PATH")
    use_time: BoolProperty(name="At", description="strike this pose at a given time (else the agents choose)")
    time_s: FloatProperty(name="Time", min=0.0, max=9.8, default=0.0, unit="TIME_ABSOLUTE", subtype="TIME_ABSOLUTE")


class IKMoSettings(bpy.types.PropertyGroup):
    """What the panel edits (scene.ikmo) and what the last run answered."""

    server: StringProperty(name="Server", default=client.DEFAULT_URL,
                           description="address of a running `ikmo serve`")
    text: StringProperty(name="Request", description="what the character should do, e.g. 'walk in an arc, then wave'")
    photos: CollectionProperty(type=IKMoPhoto)
    duration_s: FloatProperty(name="Duration", min=0.0, max=9.8, default=0.0,
                              description="seconds (0: as the request says)")
    use_seed: BoolProperty(name="Seed", default=False,
                           description="a fixed seed: the same request gives the same motion")
    seed: IntProperty(name="Seed", min=0, default=0)
    file_format: EnumProperty(name="Import", default="GLB", items=[
        ("GLB", "GLB", "armature with the skinned mannequin (motion.glb)"),
        ("BVH", "BVH", "armature only (motion.bvh)")])
    folder: StringProperty(name="Files", subtype="DIR_PATH", default="",
                           description="where the downloaded motions go (empty: //ikmo_runs beside the saved "
                                       ".blend, else the temporary folder)")
    answer: StringProperty(name="Answer")
    notes: StringProperty(name="Notes")
    error: StringProperty(name="Error")
    run_id: StringProperty(name="Run")


class IKMO_OT_add_photos(bpy.types.Operator, ImportHelper):
    """Add keyframe photos to the request"""

    bl_idname = "ikmo.add_photos"
    bl_label = "Add Photos"
    filter_glob: StringProperty(default="*.png;*.jpg;*.jpeg;*.webp;*.bmp", options={"HIDDEN"})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    directory: StringProperty(subtype="DIR_PATH", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        names = [f.name for f in self.files if f.name] or [os.path.basename(self.filepath)]
        folder = self.directory or os.path.dirname(self.filepath)
        for name in names:
            context.scene.ikmo.photos.add().path = os.path.join(folder, name)
        return {"FINISHED"}


class IKMO_OT_remove_photo(bpy.types.Operator):
    """Remove this photo from the request"""

    bl_idname = "ikmo.remove_photo"
    bl_label = "Remove Photo"
    index: IntProperty()

    def execute(self, context: bpy.types.Context) -> set[str]:
        context.scene.ikmo.photos.remove(self.index)
        return {"FINISHED"}


def _runs_folder(chosen: str) -> str:
    """The folder the user chose, else next to the saved .blend (//ikmo_runs), else the temporary folder."""
    if chosen:
        return bpy.path.abspath(chosen)
    if bpy.data.filepath:
        return bpy.path.abspath("//ikmo_runs")
    return os.path.join(tempfile.gettempdir(), "ikmo_runs")


class IKMO_OT_generate(bpy.types.Operator):
    """Ask the IKMo server for this motion and import it onto the selected IKMo armature or a new one"""

    bl_idname = "ikmo.generate"
    bl_label = "Generate"

    def execute(self, context: bpy.types.Context) -> set[str]:
        s = context.scene.ikmo
        s.answer = s.notes = s.error = ""
        if not s.text.strip():
            s.error = "type a request first, e.g. 'walk forward 3 meters, then wave'"
            self.report({"ERROR"}, s.error)
            return {"CANCELLED"}
        target = context.active_object if context.active_object and context.active_object.type == "ARMATURE" else None
        try:
            reply = client.generate(s.server, s.text, [(bpy.path.abspath(p.path), p.time_s if p.use_time else None)
                                                       for p in s.photos],
                                    duration_s=s.duration_s or None, seed=s.seed if s.use_seed else None)
            name = _FILES[s.file_format]
            notes = [str(n) for n in reply.get("notes") or []]
            if name not in reply["files"]:  # an older server without GLB export
                notes.append(f"the server wrote no {name}; imported motion.bvh")
                name = "motion.bvh"
            path = client.download(s.server, reply, name, _runs_folder(s.folder))
        except client.ServerError as e:
            s.error = str(e)
            self.report({"ERROR"}, s.error)
            return {"CANCELLED"}
        if name.endswith(".glb"):
            arm = importing.import_glb(path, importing.glb_fps(path))
        else:
            arm = importing.import_bvh(path)
        arm[importing.RUN_KEY] = str(reply.get("id", ""))
        arm, placed = importing.place_motion(arm, target)
        context.view_layer.objects.active = arm
        s.run_id = str(reply.get("id", ""))
        s.answer = str(reply.get("answer") or "")
        s.notes = "\n".join([*notes, placed])
        self.report({"INFO"}, f"IKMo run {s.run_id}: {placed}")
        return {"FINISHED"}


class IKMO_OT_check_server(bpy.types.Operator):
    """Ask the server whether it is up (GET /v1/health)"""

    bl_idname = "ikmo.check_server"
    bl_label = "Check Server"

    def execute(self, context: bpy.types.Context) -> set[str]:
        s = context.scene.ikmo
        try:
            h = client.health(s.server)
        except client.ServerError as e:
            s.error = str(e)
            self.report({"ERROR"}, s.error)
            return {"CANCELLED"}
        s.error = ""
        s.notes = f"server {h.get('status')}: provider {h.get('provider')}, {h.get('requests')} request(s) served"
        return {"FINISHED"}


def _wrapped(layout: bpy.types.UILayout, text: str, region: bpy.types.Region | None, **kw: object) -> None:
    """Labels of `text` wrapped to the sidebar's width (Blender labels do not wrap; they cut off)."""
    px = region.width if region is not None else 300
    width = max(16, int(px / (7 * bpy.context.preferences.view.ui_scale)))
    for para in text.splitlines():
        for line in textwrap.wrap(para, width) or [""]:
            layout.label(text=line, **kw)


class IKMO_PT_panel(bpy.types.Panel):
    bl_idname = "IKMO_PT_panel"
    bl_label = "IKMo"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "IKMo"

    def draw(self, context: bpy.types.Context) -> None:
        s = context.scene.ikmo
        col = self.layout.column()
        row = col.row(align=True)
        row.prop(s, "server", text="")
        row.operator(IKMO_OT_check_server.bl_idname, text="", icon="URL")
        col.prop(s, "text", text="")
        box = col.box()
        box.label(text=f"Photos ({len(s.photos)})", icon="IMAGE_DATA")
        for i, photo in enumerate(s.photos):
            row = box.row(align=True)
            row.prop(photo, "path", text="")
            row.prop(photo, "use_time", text="", icon="TIME")
            if photo.use_time:
                row.prop(photo, "time_s", text="")
            row.operator(IKMO_OT_remove_photo.bl_idname, text="", icon="X").index = i
        box.operator(IKMO_OT_add_photos.bl_idname, icon="ADD")
        col.prop(s, "duration_s")
        row = col.row(align=True)
        row.prop(s, "use_seed", text="")
        sub = row.row()
        sub.enabled = s.use_seed
        sub.prop(s, "seed")
        col.row().prop(s, "file_format", expand=True)
        col.prop(s, "folder")
        target = context.active_object
        on = target.name if target and target.type == "ARMATURE" else "a new armature"
        col.operator(IKMO_OT_generate.bl_idname, icon="PLAY", text=f"Generate onto {on}")
        if s.error:
            err = col.box()
            err.alert = True
            _wrapped(err, s.error, context.region, icon="ERROR")
        if s.answer:
            _wrapped(col.box(), s.answer, context.region)
        if s.notes:
            _wrapped(col.box(), s.notes, context.region)


CLASSES = (IKMoPhoto, IKMoSettings, IKMO_OT_add_photos, IKMO_OT_remove_photo, IKMO_OT_generate, IKMO_OT_check_server,
           IKMO_PT_panel)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.ikmo = PointerProperty(type=IKMoSettings)


def unregister() -> None:
    del bpy.types.Scene.ikmo
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
