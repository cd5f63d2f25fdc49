"""Check the import contracts (pyproject `[tool.importlinter]`) with import-linter.

The rooms live at the top of the repository and install as one namespace (`ikmo.agents` is
`agents/`, through setuptools' `package-dir`). import-linter reads a package from its folder, so
this lays the namespace out as it is installed (a temporary `ikmo/` with the rooms linked in) and
runs `lint-imports` on it. Exit code: lint-imports' own (0 when every contract is kept).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOMS = {"agents": "agents", "tools": "tools", "motion_model": "motion_model", "eval": "eval", "prompts": "prompts"}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ikmo_imports_") as tmp:
        pkg = Path(tmp) / "ikmo"
        shutil.copytree(REPO / "ikmo", pkg, ignore=shutil.ignore_patterns("__pycache__"))
        for name, folder in ROOMS.items():
            (pkg / name).symlink_to(REPO / folder, target_is_directory=True)
        env = {**os.environ, "PYTHONPATH": tmp}
        lint = Path(sys.executable).with_name("lint-imports")
        cmd = [str(lint), str(REPO / "pyproject.toml"), "--no-cache"]
        return subprocess.run(cmd, env=env, cwd=tmp).returncode


if __name__ == "__main__":
    sys.exit(main())
