"""The studio page of `ikmo serve` in a real browser (Debian's chromium through Playwright) against a
real `ikmo serve` process on 127.0.0.1 (the tiny model, the real pose tools): upload a photo and
set its time, draw a path on the floor, send a request, watch the player, scrub, download the BVH
and read it, send a follow-up, get an impossible request refused without losing the motion, and
find it all again after a reload. Screenshots are checked: the canvas is not blank, the skeleton
is drawn (its bone colours appear once a motion plays, and move when scrubbed), and the run's
`motion.glb` mannequin is loaded by GLTFLoader and drawn in its place."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from web_fixtures import count_ink

pytestmark = pytest.mark.integration

def skeleton_pixels(png: bytes, box: tuple[int, int, int, int]) -> np.ndarray:
    """Mask of the pixels in `box` of the player's bone hues (studio.js: left side blue 0x4fb3ff,
    right side orange 0xff8a3d, lit, so tested by hue, not value); nothing else on the canvas has
    them (grid grey-blue, path cyan and gold)."""
    px = np.asarray(Image.open(io.BytesIO(png)).convert("RGB").crop(box)).astype(np.int16)
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    blue = (b > r + 80) & (b > g + 25)
    orange = (r > g + 80) & (g > b + 20)
    return np.stack([blue, orange])


def _drawn(mask: np.ndarray) -> bool:
    """Both sides of a body: enough blue and orange pixels."""
    return bool(mask[0].sum() > 60 and mask[1].sum() > 30)


@pytest.fixture
def studio(server_process, weights_dir: Path, tmp_path: Path):  # noqa: ANN001, ANN201
    env = {"IKMO_WEIGHTS": str(weights_dir), "IKMO_PREVIEW": "false", "IKMO_CRITIQUE_ROUNDS": "0",
           "HOME": str(tmp_path)}
    return server_process(["serve", "--port", "0", "--out", str(tmp_path / "runs")], env=env, cwd=tmp_path)


def _canvas_box(page) -> tuple[int, int, int, int]:  # noqa: ANN001
    b = page.locator("#viewport").bounding_box()
    return int(b["x"]), int(b["y"]), int(b["x"] + b["width"]), int(b["y"] + b["height"])


def _draw(page, points: list[tuple[float, float]]) -> None:  # noqa: ANN001
    """Drag the mouse through `points` (fractions of the canvas' width and height)."""
    b = page.locator("#viewport").bounding_box()
    xy = [(b["x"] + fx * b["width"], b["y"] + fy * b["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=4)
    page.mouse.up()


def test_the_studio_end_to_end(studio, page, page_log, photos: list[Path], tmp_path: Path) -> None:  # noqa: ANN001
    url = studio.url
    page.goto(url + "/")
    page.wait_for_selector("body[data-studio='ready']", timeout=30000)
    left, top, right, bottom = _canvas_box(page)
    box = (left, top + 40, right, bottom - 40)  # not the tool buttons and the legend
    empty = page.screenshot()
    assert count_ink(empty, box) > 1000, "the floor grid is not drawn"
    assert skeleton_pixels(empty, box).sum() < 20, "a skeleton before any motion"

    # bad files: said in the page, nothing sent
    (tmp_path / "notes.txt").write_text("not a photo")
    page.set_input_files("#photo-input", str(tmp_path / "notes.txt"))
    page.wait_for_selector("#notice:not([hidden])")
    assert "is not an image" in page.inner_text("#notice")
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(50 * 2**20))
    page.set_input_files("#photo-input", str(big))
    page.wait_for_function("document.querySelector('#notice-text').textContent.includes('50.0 MB')")
    assert "photos up to 20 MB" in page.inner_text("#notice")
    r = httpx.post(url + "/v1/photos", content=big.read_bytes(), timeout=60)  # the server says so too
    assert r.status_code == 400 and "the photo is 50.0 MB" in r.json()["error"]

    # a photo: its fitted skeleton overlay and the fit check's verdict
    page.set_input_files("#photo-input", str(photos[1]))
    page.wait_for_selector(".photo img[src*='_overlay.png']", timeout=90000)
    assert page.locator(".photo .verdict.ok, .photo .verdict.bad").count() == 1
    # its time: the chip dragged to a quarter of the timeline (6 s until a motion says otherwise)
    chip = page.locator(".tl-photo").first.bounding_box()
    tl = page.locator("#timeline").bounding_box()
    page.mouse.move(chip["x"] + chip["width"] / 2, chip["y"] + chip["height"] / 2)
    page.mouse.down()
    page.mouse.move(tl["x"] + tl["width"] * 0.25, chip["y"] + 10, steps=6)
    page.mouse.up()
    assert "at 1.50 s" in page.inner_text(".photo")

    # a path on the floor; a stroke that leaves the floor keeps what was drawn and says so
    page.click("#tool-draw")
    _draw(page, [(0.5, 0.75), (0.55, 0.7), (0.6, 0.66), (0.65, 0.64)])
    assert "your path" in page.inner_text("#path-info")
    _draw(page, [(0.5, 0.8), (0.52, 0.7), (0.53, 0.4), (0.55, 0.02)])  # up over the horizon
    page.wait_for_function("document.querySelector('#notice-text').textContent.includes('left the floor')")
    assert "your path" in page.inner_text("#path-info")
    page.click("#tool-draw")

    page.fill("#text", "walk along my path and strike this pose at the end")
    page.click("#send")
    page.wait_for_selector("#progress:not([hidden])", timeout=10000)
    page.wait_for_selector("body[data-player='ready']", timeout=120000)
    page.wait_for_selector(".msg.answer", timeout=30000)
    assert "the trajectory is the path you drew" in page.inner_text(".msg.answer")
    first_run = page.get_attribute("body", "data-run")
    # the run's motion.glb (the mannequin skinned to the motion) plays as a mesh through GLTFLoader
    page.wait_for_selector("body[data-mannequin='loaded']", timeout=30000)
    assert page.locator("a[data-file='motion.glb']").count() == 1
    page.locator("#scrub").fill("0")
    mesh = page.screenshot(path=str(tmp_path / "studio_mesh.png"))
    page.uncheck("#show-mesh")  # the skeleton instead
    shot0 = page.screenshot(path=str(tmp_path / "studio_frame0.png"))
    assert count_ink(mesh, box) != count_ink(shot0, box), "the mesh and the skeleton look the same"
    on0 = skeleton_pixels(shot0, box)
    assert _drawn(on0), f"the skeleton is not drawn: {on0[0].sum()} blue, {on0[1].sum()} orange pixels"
    frames = int(page.get_attribute("#scrub", "max")) + 1
    page.locator("#scrub").fill(str(frames - 1))
    assert page.get_attribute("body", "data-frame") == str(frames - 1)
    shot1 = page.screenshot(path=str(tmp_path / "studio_last.png"))
    assert (skeleton_pixels(shot1, box) != on0).sum() > 50, "scrubbing does not move the skeleton"

    # the BVH download parses, with one frame per frame of the player
    with page.expect_download() as dl:
        page.click("a[data-file='motion.bvh']")
    bvh_path = tmp_path / "downloaded.bvh"
    dl.value.save_as(bvh_path)
    import bvhio

    bvh = bvhio.readAsBvh(str(bvh_path))
    assert len(bvh.Root.Keyframes) == frames

    # a follow-up edits the motion
    page.fill("#text", "make it slower")
    page.click("#send")
    page.wait_for_function(f"document.body.dataset.run && document.body.dataset.run !== '{first_run}'",
                           timeout=120000)
    assert page.locator(".msg.answer").count() == 2
    slower = int(page.get_attribute("#scrub", "max")) + 1
    assert slower > frames

    # an impossible request: the agents say why (in a chat, as a question: what to change), and the
    # motion already made stays in the player
    second_run = page.get_attribute("body", "data-run")
    page.click("#tool-clear")
    page.fill("#text", "run forward 100 meters in 2 seconds")
    page.click("#send")
    page.wait_for_selector(".msg.question, .msg.error", timeout=120000)
    assert "m/s" in page.inner_text(".msg.question, .msg.error")
    assert page.get_attribute("body", "data-run") == second_run

    # a reload finds the thread, its messages and its motion
    page.reload()
    page.wait_for_selector("body[data-player='ready']", timeout=30000)
    assert page.locator(".thread").count() == 1
    assert "walk along my path" in page.inner_text(".thread.active")
    assert page.locator(".msg.user").count() == 3 and page.locator(".msg.answer").count() == 2
    assert page.get_attribute("body", "data-run") == second_run
    page.wait_for_selector("body[data-mannequin='loaded']", timeout=30000)
    page.uncheck("#show-mesh")
    assert _drawn(skeleton_pixels(page.screenshot(path=str(tmp_path / "studio_reloaded.png")), box))
    assert not page_log, page_log
