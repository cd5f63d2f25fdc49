"""`ikmo study build`: a tiny study's stimuli made with the bundled defaults, videos of one length,
the manifest, resuming, the simulated raters' measured fit; and clear errors for bad study files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ikmo.eval.study.definition import load_study
from ikmo.motion_model.errors import InputFileError

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PHOTO = REPO / "eval" / "cases" / "agents" / "photos" / "p0_front.png"

TINY = f"""
name: tiny
seed: 3
participants: 2
duration_s: 2
conditions: [{{name: no_agents}}, {{name: agents}}]
attention: {{identical: wave, misfit: {{item: walk, text: "sit down"}}}}
video: {{width: 128, height: 96}}
items:
  - id: walk
    text: "walk forward 2 meters"
    expect: {{pelvis_travel_m: [1.5, 2.5]}}
  - id: wave
    text: "strike this pose at 1 s"
    photos: [{{path: {PHOTO}, time_s: 1.0}}]
"""


def ikmo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ikmo.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A built tiny study (shared by the study tests of this module)."""
    root = tmp_path_factory.mktemp("study")
    (root / "tiny.yaml").write_text(TINY)
    r = ikmo("study", "build", str(root / "tiny.yaml"), "--out", str(root / "out"))
    assert r.returncode == 0, r.stderr[-3000:]
    return root / "out"


def test_build_makes_every_stimulus_with_one_length_and_resumes(built: Path):
    import imageio_ffmpeg

    man = json.loads((built / "manifest.json").read_text())
    ids = [s["id"] for s in man["stimuli"]]
    assert ids == ["walk__no_agents", "walk__agents", "wave__no_agents", "wave__agents", "attention_misfit"]
    by = {s["id"]: s for s in man["stimuli"]}
    # the baseline: the words as the caption, no trajectory, no keyframes; the agents: both
    assert by["walk__no_agents"]["caption"] == "walk forward 2 meters" and not by["walk__no_agents"]["trajectory"]
    assert by["wave__no_agents"]["keyframes"] == 0 and by["wave__agents"]["keyframes"] >= 1
    assert by["walk__agents"]["trajectory"] and by["walk__agents"]["seed"] == by["walk__no_agents"]["seed"] == 3
    assert by["attention_misfit"]["caption"] == "sit down"
    for s in man["stimuli"]:
        reader = imageio_ffmpeg.read_frames(str(built / s["files"]["video"]))
        meta = next(reader)
        assert (tuple(meta["size"]), sum(1 for _ in reader)) == ((128, 96), 40), s["id"]  # 2 s at 20 fps
        assert (built / s["files"]["joints"]).is_file() and s["recipe"]["condition"]["name"] == s["condition"]
    assert (built / man["photos"]["wave"][0]).read_bytes() == PHOTO.read_bytes()
    before = {i: (built / by[i]["files"]["video"]).stat().st_mtime_ns for i in ids}
    # a rerun makes nothing again; a changed recipe (the misfit's text) remakes only that stimulus
    study = built.parent / "tiny.yaml"
    study.write_text(TINY.replace('"sit down"', '"lie down"'))
    r = ikmo("study", "build", str(study), "--out", str(built))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "4 finished earlier, 1 to make" in r.stderr
    after = {i: (built / by[i]["files"]["video"]).stat().st_mtime_ns for i in ids}
    assert [i for i in ids if after[i] != before[i]] == ["attention_misfit"]
    study.write_text(TINY)


def test_measured_fit_prefers_the_fitting_motion(built: Path):
    from ikmo.eval.agents.runner import Worker
    from ikmo.eval.study.scoring import stimulus_fit

    man = json.loads((built / "manifest.json").read_text())
    study = load_study(built / "study.yaml", source=man["source"])
    worker = Worker()
    fits = {s["id"]: stimulus_fit(study, s, built, worker) for s in man["stimuli"]}
    assert all(0.0 <= f.fit <= 1.0 and f.text is not None for f in fits.values())
    assert fits["walk__agents"].checks == 1.0  # travels its 2 m
    assert fits["wave__agents"].poses is not None and fits["wave__agents"].poses > fits["wave__no_agents"].poses
    assert fits["walk__agents"].fit > fits["attention_misfit"].fit


@pytest.mark.parametrize(("text", "message"), [
    ("name: x\nconditions: [{name: no_agents}]\nitems: [{id: a, text: hi}]\n",
     "conditions: List should have at least 2 items"),
    ("name: x\nconditions: [{name: no_agents}, {name: agents}]\nitems: [{id: a, text: hi, duration_s: 50}]\n",
     "items[0] ('a').duration_s: Input should be less than or equal to 9.8"),
    ("name: x\nconditions: [{name: no_agents}, {name: agents}]\nitems: [{id: a, text: hi, photos: [{path: no.png}]}]\n",
     "items[0] ('a').photos[0].path:"),
    ("name: x\nconditions: [{name: no_agents, provider: smollm2}, {name: agents}]\nitems: [{id: a, text: hi}]\n",
     "a provider needs pipeline: agents"),
    ("name: x\nconditions: [{name: no_agents}, {name: agents}]\nattention: {identical: b}\n"
     "items: [{id: a, text: hi}]\n",
     "attention.identical: no item 'b'"),
    ("name: x\nconditions: [{name: no_agents}, {name: agents}]\nitems: [{id: a, text: hi, colour: red}]\n",
     "items[0] ('a').colour: Extra inputs are not permitted"),
    ("name: [x\n", "not a readable YAML file"),
])
def test_bad_study_files_name_the_file_and_field(tmp_path: Path, text: str, message: str):
    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(InputFileError) as e:
        load_study(f)
    assert str(e.value).startswith(f"{f}: ") and message in str(e.value), str(e.value)


def test_bad_condition_setting_is_one_line_before_any_work(tmp_path: Path):
    f = tmp_path / "s.yaml"
    f.write_text("name: x\nconditions: [{name: no_agents}, {name: agents, settings: {critique_rounds: 99}}]\n"
                 "items: [{id: a, text: wave}]\n")
    r = ikmo("study", "build", str(f), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "condition 'agents': settings.critique_rounds" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()


def test_the_shipped_example_study_loads():
    study = load_study(REPO / "eval" / "studies" / "paper_replay.yaml")
    assert len(study.items) == 10 and [c.name for c in study.conditions] == ["no_agents", "agents"]
    assert sum(len(i.photos) for i in study.items) >= 6
    assert all(study.truth_path(p).is_file() for i in study.items for p in i.photos if "cases" in p.path)
    assert np.load(study.truth_path(study.items[0].photos[0])).shape == (22, 3)
