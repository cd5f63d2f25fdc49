"""`ikmo study`: a tiny study built with the bundled defaults (one length, the manifest, resuming, the
measured fit, clear errors for bad study files), served by a real server process (the API's 4xx, kill -9 and
restart), simulated raters over HTTP and the analysis; a participant in Debian chromium (tests/web)."""

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
video: {{width: 192, height: 144}}
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
        assert (tuple(meta["size"]), sum(1 for _ in reader)) == ((192, 144), 40), s["id"]  # 2 s at 20 fps
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
    ("name: x\nconditions: [{name: no_agents}, {name: agents}]\nitems: [{id: a, text: hi, duration_s: 500}]\n",
     "items[0] ('a').duration_s: Input should be less than or equal to 120"),
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


# --------------------------------------------------------------------------- serving


def _post(url: str, body: object, raw: bytes | None = None) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=raw if raw is not None else json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _get(url: str) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def fresh(built: Path, tmp_path: Path) -> Path:
    """A copy of the built study with no answers yet."""
    import shutil

    dst = tmp_path / "study"
    shutil.copytree(built, dst, ignore=shutil.ignore_patterns("responses.sqlite*", "analysis", "simulated_fits.json"))
    return dst


def _tokens(folder: Path) -> tuple[str, list[str]]:
    from ikmo.eval.study.responses import RESPONSES, Store

    with Store(folder / RESPONSES) as s:
        return s.admin_token(), [p.token for p in s.participants()]


def test_bad_and_replayed_submissions_get_a_4xx_and_change_nothing(fresh: Path, server_process):
    from ikmo.eval.study.responses import RESPONSES, read_answers

    srv = server_process(["study", "serve", str(fresh), "--port", "0"])
    admin, (me, other) = _tokens(fresh)
    api = f"{srv.url}/api/p/{me}"
    ok = {"position": 0, "rating_left": 3, "rating_right": 6, "choice": "right",
          "played": {"left": True, "right": True}}
    assert _post(f"{srv.url}/api/p/not-a-token/answer", ok)[0] == 404
    status, body = _post(f"{api}/answer", ok)
    assert status == 403 and "consent" in body["error"]  # no answers before consent
    assert _post(f"{api}/consent", {"consent": "yes"})[0] == 422
    st = _post(f"{api}/consent", {"consent": True})[1]
    assert st["position"] == 0 and st["total"] == 4 and st["trial"]["text"]
    # the page never names the conditions or the stimuli (the participant's own random token, which is in
    # the state's URLs, is left out: token_urlsafe holds "__" in about 1 token of 130)
    assert not any(w in json.dumps(st).replace(me, "<token>") for w in ("agents", "misfit", "__"))
    for bad, code, says in [
        ({**ok, "rating_left": 8}, 422, "rating_left = 8"), ({**ok, "rating_right": 2.5}, 422, "rating_right"),
        ({**ok, "choice": "middle"}, 422, "choice"), ({**ok, "played": {"left": True}}, 422, "played"),
        ({**ok, "position": 2}, 409, "not your next trial"), ({**ok, "position": 99}, 422, "position = 99"),
        ({**ok, "extra": 1}, 422, "unknown field"),
    ]:
        status, body = _post(f"{api}/answer", bad)
        assert (status, says in body["error"]) == (code, True), (bad, status, body)
    assert _post(f"{api}/answer", None, raw=b"{not json")[0] == 400
    assert read_answers(fresh / RESPONSES) == []  # none of that changed anything
    assert _post(f"{api}/answer", ok)[1]["position"] == 1
    status, body = _post(f"{api}/answer", ok)  # the same trial again
    assert status == 409 and "already answered" in body["error"]
    rows = read_answers(fresh / RESPONSES)
    assert [(r["position"], r["rating_left"], r["rating_right"]) for r in rows] == [(0, 3, 6)]
    # one participant cannot see or answer for another: their own link only, their own trials only
    assert _get(f"{api}/video/0/left")[0] == 200 and _get(f"{api}/video/3/left")[0] == 404
    assert _get(f"{srv.url}/api/p/{other}/video/0/left")[0] == 404  # the other has not consented
    assert json.loads(_get(f"{srv.url}/api/p/{other}")[1])["position"] == 0
    # the admin page needs its own token; the CSV has the answer
    assert _get(f"{srv.url}/admin/{me}")[0] == 403 and _get(f"{srv.url}/admin/{me}/answers.csv")[0] == 403
    status, page = _get(f"{srv.url}/admin/{admin}")
    assert status == 200 and b"1/4" in page and other.encode() in page
    csv_text = _get(f"{srv.url}/admin/{admin}/answers.csv")[1].decode()
    assert csv_text.splitlines()[0].startswith("participant,position,trial") and len(csv_text.splitlines()) == 2


def test_kill_9_loses_no_submitted_answer_and_a_restart_resumes(fresh: Path, server_process):
    from ikmo.eval.study.design import plan
    from ikmo.eval.study.raters import StudyClient, make_raters
    from ikmo.eval.study.responses import RESPONSES, read_answers

    srv = server_process(["study", "serve", str(fresh), "--port", "0"])
    _, (me, _) = _tokens(fresh)
    client = StudyClient(srv.url, f"/p/{me}")
    client.consent()
    trials = plan(load_study(fresh / "study.yaml", check_photos=False), 0)
    rater = make_raters(1, 0, inattentive=0.0)[0]
    fits = {t: 0.5 for tr in trials for t in (tr.left, tr.right)}
    for k in range(2):
        client.answer(k, *rater.answer(trials[k], fits))
    before = read_answers(fresh / RESPONSES)
    srv.proc.kill()  # SIGKILL: no shutdown, no flush
    srv.proc.wait()
    assert read_answers(fresh / RESPONSES) == before and len(before) == 2
    srv2 = server_process(["study", "serve", str(fresh), "--port", "0"])
    client = StudyClient(srv2.url, f"/p/{me}")
    st = client.state()
    assert st["consented"] and st["position"] == 2 and _tokens(fresh)[1][0] == me
    while not st["finished"]:
        st = client.answer(st["trial"]["position"], *rater.answer(trials[st["trial"]["position"]], fits))
    assert [r["trial"] for r in read_answers(fresh / RESPONSES)] == [t.id for t in trials]


def test_simulated_raters_answer_over_http_and_analyze_reports(fresh: Path):
    r = ikmo("study", "simulate", str(fresh), "--raters", "4", "--inattentive", "0")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "serving on" not in r.stdout and "4 simulated rater(s) answered" in r.stdout
    r = ikmo("study", "analyze", str(fresh))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((fresh / "analysis" / "analysis.json").read_text())
    assert res["raters"] == "simulated" and res["participants"] == 4
    (c,) = res["comparisons"]
    assert c["n"] == res["included"] and c["trials"] == 2 * res["included"]
    assert "Simulated raters, not people" in (fresh / "analysis" / "report.md").read_text()
    assert (fresh / "analysis" / "report.html").is_file() and (fresh / "analysis" / "ratings.png").is_file()
    r = ikmo("study", "analyze", str(fresh), "--raters", "people")
    assert r.returncode == 2 and "no answers yet" in r.stderr


# --------------------------------------------------------------------------- a participant in a real browser

SHOTS = Path(__import__("os").environ.get("IKMO_STUDY_SHOTS", "")) if __import__("os").environ.get(
    "IKMO_STUDY_SHOTS") else None


def _shot(page, tmp_path: Path, name: str) -> bytes:
    png = page.screenshot(full_page=True)
    for d in (tmp_path, SHOTS):
        if d is not None:
            d.mkdir(parents=True, exist_ok=True)
            (d / name).write_bytes(png)
    return png


def _video_box(page, side: str) -> tuple[int, int, int, int]:
    b = page.locator(f"#video-{side}").bounding_box()
    return int(b["x"]), int(b["y"]), int(b["x"] + b["width"]), int(b["y"] + b["height"])


def _answer(page, tmp_path: Path, k: int, shots: bool) -> None:
    """Watch both videos of the current trial to the end, rate them, choose, submit."""
    from web_fixtures import count_ink

    page.wait_for_function("document.getElementById('video-left').readyState >= 2 && "
                           "document.getElementById('video-right').readyState >= 2", timeout=20_000)
    for sel in ("#likert-left input", "#likert-right input", "#choice input"):
        n = page.locator(sel).count()
        assert n in (2, 7) and all(page.locator(sel).nth(i).is_disabled() for i in range(n)), \
            f"trial {k}: {sel} answerable before the videos played"
    assert page.locator("#submit").is_disabled()
    if shots:
        _shot(page, tmp_path, "trial_before_play.png")
    page.evaluate("Promise.all([...document.querySelectorAll('video')].map(v => v.play()))")
    page.wait_for_function("!document.getElementById('choice').disabled", timeout=30_000)
    assert page.locator("#watched-left").inner_text() == "watched to the end"
    assert page.locator("#likert-right input").nth(6).is_enabled() and page.locator("#choice input").nth(0).is_enabled()
    if shots:
        png = _shot(page, tmp_path, "trial_after_play.png")
        for side in ("left", "right"):  # each video shows its last frame: a figure on a floor, not black
            assert count_ink(png, _video_box(page, side)) > 2000, side
    page.locator(f"#likert-left input[value='{2 + k % 3}']").check()
    assert page.locator("#submit").is_disabled()  # not before both ratings and the choice
    page.locator("#likert-right input[value='6']").check()
    page.locator("input[name='choice'][value='right']").check()
    page.locator("#submit").click()


def test_a_participant_completes_the_study_in_chromium_with_a_resume(fresh: Path, server_process, chromium,
                                                                     tmp_path: Path):
    from ikmo.eval.study.responses import RESPONSES, read_answers

    srv = server_process(["study", "serve", str(fresh), "--port", "0"])
    _, (me, _) = _tokens(fresh)
    link = f"{srv.url}/p/{me}"
    errors: list[str] = []

    def open_page():
        ctx = chromium.new_context(viewport={"width": 1280, "height": 1000})
        pg = ctx.new_page()
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on("console", lambda m: m.type == "error" and errors.append(m.text))
        pg.goto(link)
        return ctx, pg

    ctx, page = open_page()
    page.wait_for_selector("#consent:not([hidden])")
    assert page.locator("#start").is_disabled()
    page.locator("#agree").check()
    page.locator("#start").click()
    page.wait_for_selector("#trial:not([hidden])")
    assert page.locator("#progress-text").inner_text() == "1 of 4"
    assert page.locator("video").count() == 2
    for k in range(2):
        _answer(page, tmp_path, k, shots=k == 0)
        page.wait_for_function(f"document.getElementById('progress').value === {k + 1}")
    ctx.close()  # the browser closes; the link brings the participant back where they were
    ctx, page = open_page()
    page.wait_for_selector("#trial:not([hidden])")
    assert page.locator("#consent").is_hidden() and page.locator("#progress-text").inner_text() == "3 of 4"
    for k in range(2, 4):
        _answer(page, tmp_path, k, shots=False)
        page.wait_for_function(f"document.getElementById('progress').value === {k + 1}")
    page.wait_for_selector("#done:not([hidden])")
    assert "Thank you" in page.inner_text("#done") and page.locator("#trial").is_hidden()
    _shot(page, tmp_path, "done.png")
    ctx.close()
    rows = read_answers(fresh / RESPONSES)
    assert [(r["participant"], r["position"], r["rating_right"], r["choice"]) for r in rows] == \
        [(0, k, 6, "right") for k in range(4)]
    assert not errors, errors


def test_a_condition_can_name_weights_and_settings(tmp_path: Path):
    weights = REPO / "motion_model" / "model" / "weights"
    (tmp_path / "s.yaml").write_text(
        "name: w\nduration_s: 1\nconditions: [{name: no_agents},\n"
        f"  {{name: no_critic, weights: {weights}, settings: {{critique_rounds: 0, guidance_scale: 1.5}}}}]\n"
        "items: [{id: a, text: walk forward 1 meter}]\nvideo: {width: 96, height: 64}\n")
    r = ikmo("study", "build", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr[-2000:]
    rec = {s["condition"]: s for s in json.loads((tmp_path / "out" / "manifest.json").read_text())["stimuli"]}
    assert rec["no_critic"]["pipeline"] == "agents" and rec["no_critic"]["trajectory"]
    st = rec["no_critic"]["settings"]
    assert (st["critique_rounds"], st["guidance_scale"], st["weights"]) == (0, 1.5, str(weights))
    cfg = json.loads((tmp_path / "out" / rec["no_critic"]["files"]["config"]).read_text())
    assert cfg["sampler"]["guidance_scale"] == 1.5 and cfg["settings"]["critique_rounds"] == 0  # what sampled
