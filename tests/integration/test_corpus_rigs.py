"""A build over clips of several rigs: one warning per unmappable rig, a summary table, and
`ikmo data inspect` on a rig whose names do not tell."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import typer
from PIL import Image
from rig_bodies import FAMILIES, body_bvh
from typer.testing import CliRunner

from ikmo.commands.data import register
from ikmo.motion_model.data.corpus import build_corpus, discover_sources
from ikmo.motion_model.errors import InputFileError

pytestmark = pytest.mark.integration


def _clip(folder: Path, name: str, names: dict[str, str]) -> None:
    body_bvh(folder / f"{name}.bvh", names, frames=40)
    (folder / f"{name}.txt").write_text("a person stands still.\n")


def test_one_warning_per_rig_and_a_summary(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    no_legs = {k: v for k, v in FAMILIES["mixamo"].items() if not k.startswith(("shin_", "foot_", "toe_"))}
    for i in range(3):
        _clip(raw, f"cc_{i}", FAMILIES["character_creator"])
        _clip(raw, f"broken_{i}", no_legs)
    with caplog.at_level(logging.WARNING):
        card = build_corpus(discover_sources(raw), tmp_path / "corpus", workers=1)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("3 clip(s) on rig Mixamo rig 'mixamorig:Hips'") and "no joint for" in warnings[0]
    assert "ikmo data inspect" in warnings[0] and len(warnings[0]) < 400
    rows = {r["rig"]: r for r in card["rig_summary"]}
    cc = next(r for k, r in rows.items() if k.startswith("Character Creator"))
    assert (cc["imported"], cc["skipped"], cc["guessed"]) == (3, 0, ["neck"])
    mx = next(r for k, r in rows.items() if k.startswith("Mixamo"))
    assert (mx["imported"], mx["skipped"]) == (0, 3) and "left_knee" in mx["reason"]
    assert "## Rigs" in (tmp_path / "corpus" / "card.md").read_text()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    a, data = typer.Typer(), typer.Typer()
    a.add_typer(data, name="data")
    register(a, {"data": data})
    return a


def test_inspect_prints_mapping_and_draws(app: typer.Typer, tmp_path: Path) -> None:
    f = body_bvh(tmp_path / "anon.bvh", FAMILIES["unnamed"], frames=5)
    res = CliRunner().invoke(app, ["data", "inspect", str(f), "--png", str(tmp_path / "r.png")])
    assert res.exit_code == 0, res.output
    assert "unit cm, 30 fps, 5 frames" in res.output
    assert "left_knee       guessed       joint" in res.output and "guessed from the skeleton" in res.output
    img = Image.open(tmp_path / "r.png")
    assert img.size == (1440, 400) and len(img.getcolors(65536) or []) > 4
    bad = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "missing.bvh")])
    assert isinstance(bad.exception, InputFileError) and "missing.bvh" in str(bad.exception)
