"""`ikmo data build` over user clips whose caption sidecar is not UTF-8: that clip is skipped with a
message naming the file, the build goes on with the others (a real build, real BVH files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ikmo.motion_model.data.synthetic import synthetic_walk
from ikmo.tools.export_bvh import write_bvh

pytestmark = pytest.mark.integration


def test_a_non_utf8_caption_file_skips_its_clip_and_the_build_goes_on(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, caption in (("good", b"a person walks forward.\n"), ("bad", b"une personne \xe9 marche\n")):
        write_bvh(raw / f"{name}.bvh", synthetic_walk(60, speed=1.0, turn=0.0))
        (raw / f"{name}.txt").write_bytes(caption)
    out = tmp_path / "corpus"
    proc = subprocess.run([sys.executable, "-m", "ikmo.cli", "data", "build", "--raw", str(raw), "--out", str(out),
                           "--workers", "1", "--unpack-dir", str(tmp_path / "unpacked")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{raw / 'bad.txt'}: the caption file is not UTF-8 text" in proc.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["clips"] == 1
    assert [r["clip"] for r in card["rejected"]] == ["user_bad"]
    assert any(p.name.startswith("user_good") for p in (out / "texts").iterdir())
