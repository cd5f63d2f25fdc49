"""`ikmo --config FILE` reaches the commands: the real `ikmo generate` process (with the tool process
and without), and a broken file is one clear line with exit code 2 for any command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _ikmo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ikmo.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.mark.parametrize("tool_process", ["true", "false"])
def test_config_file_sets_generate(weights_dir: Path, tmp_path: Path, tool_process: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"critique_rounds: 0\npreview: false\nseed: 5\ntool_process: {tool_process}\n")
    out = tmp_path / "out"
    proc = _ikmo("--config", str(cfg), "generate", "--text", "walk forward 1 meter", "--out", str(out),
                 "--weights", str(weights_dir), "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((out / "config.json").read_text())["settings"]
    assert (saved["critique_rounds"], saved["preview"], saved["seed"]) == (0, False, 5)
    assert saved["tool_process"] is (tool_process == "true")
    assert not (out / "preview.mp4").exists()  # preview: false was obeyed, not only recorded
    assert len(json.loads((out / "agent_spec.json").read_text())["attempts"]) == 1  # no critique round
    assert json.loads((out / "spec.json").read_text())["options"]["seed"] == 5


@pytest.mark.parametrize(("text", "message"), [
    (None, "does not exist"),
    ("critique_rounds: [1\n", "not valid YAML"),
    ("- a\n- b\n", "must hold a mapping"),
])
def test_a_broken_config_file_is_one_clear_line(tmp_path: Path, text: str | None, message: str) -> None:
    cfg = tmp_path / "c.yaml"
    if text is not None:
        cfg.write_text(text)
    proc = _ikmo("--config", str(cfg), "data", "info", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_an_unknown_setting_in_the_file_is_named(weights_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("critique_rouds: 0\n")
    proc = _ikmo("--config", str(cfg), "generate", "--text", "walk", "--out", str(tmp_path / "o"),
                 "--weights", str(weights_dir), "--no-tool-process", cwd=tmp_path)
    assert proc.returncode == 2 and "critique_rouds" in proc.stderr and "not permitted" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()
