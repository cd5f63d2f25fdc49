"""The programs outside Python that the export tests run (imported by name:
`from external_tools import run_blender, run_node`): Debian's Blender and node with the packages
of `.node/` (scripts/install.sh installs all of them). A missing tool fails the test with what to
run, never skips it: CI installs them, so a skip would hide a broken install."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
NODE_MODULES = REPO / ".node" / "node_modules"
BLENDER = os.environ.get("IKMO_BLENDER", "blender")


def run_node(script: Path, *args: str, timeout: float = 120) -> Any:
    """Run a node script with the .node/ packages' folder as its last argument; its stdout as JSON."""
    if shutil.which("node") is None or not (NODE_MODULES / "gltf-validator").is_dir():
        pytest.fail("node or the .node/ packages are missing: run `bash scripts/install.sh` "
                    "(or `bash scripts/install_node_tools.sh`)")
    done = subprocess.run(["node", str(script), *args, str(NODE_MODULES)], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def run_blender(script: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run `script` in a headless Blender with factory settings (`-- args` after it); its output."""
    if shutil.which(BLENDER) is None:
        pytest.fail("blender is missing: run `bash scripts/install.sh` as root (it installs Debian's blender)")
    done = subprocess.run([BLENDER, "-b", "--factory-startup", "--python-exit-code", "3", "--python", str(script),
                           "--", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout + done.stderr
