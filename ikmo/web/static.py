"""The project's own static files (`ikmo/web/static/`, shipped in the package): pages, their
scripts and the vendored three.js (`vendor/three/`, see its VERSION). Nothing is fetched from a
CDN at run time."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_URL = "/static"

# The import map a page puts before its module scripts, so `import * as THREE from "three"` and
# `import {OrbitControls} from "three/addons/controls/OrbitControls.js"` resolve to our copies.
THREE_IMPORT_MAP = {"imports": {"three": f"{STATIC_URL}/vendor/three/build/three.module.js",
                                "three/addons/": f"{STATIC_URL}/vendor/three/addons/"}}


def mount_static(app: FastAPI, directory: Path = STATIC_DIR, url: str = STATIC_URL) -> None:
    """Serve `directory` under `url` (GET only; a missing file is the contract's 404)."""
    app.mount(url, StaticFiles(directory=directory, follow_symlink=False), name="static")
