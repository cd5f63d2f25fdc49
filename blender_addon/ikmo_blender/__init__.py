"""IKMo for Blender: type a request, pick photos, press Generate; the motion a running `ikmo serve`
makes is imported onto the selected IKMo armature or a new one (View3D → sidebar → IKMo).

Install: zip this folder (`python scripts/zip_blender_addon.py`), then Edit → Preferences →
Add-ons → Install… → the zip, and tick "Animation: IKMo". Start the server first: `ikmo serve`.
"""

bl_info = {
    "name": "IKMo",
    "author": "IKMo",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "View3D > Sidebar > IKMo",
    "description": "Generate human motion from words and photos with a local IKMo server",
    "category": "Animation",
}

from . import ui  # noqa: E402  (Blender reads bl_info before the module's imports run)


def register() -> None:
    ui.register()


def unregister() -> None:
    ui.unregister()
