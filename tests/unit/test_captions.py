"""Captions from labels, mirroring, HumanML3D text lines."""

from __future__ import annotations

import pytest

from ikmo.motion_model.data.captions import (
    CONTENT_PHRASES,
    STYLE_PHRASES,
    bandai_captions,
    cmu_captions,
    idle_captions,
    mirror_caption,
    parse_text_line,
    pos_tokens,
    text_line,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("content", sorted(CONTENT_PHRASES))
def test_every_bandai_content_gets_several_distinct_captions(content: str) -> None:
    for style in STYLE_PHRASES:
        caps = bandai_captions(content, style, key=f"{content}_{style}")
        assert len(caps) >= 3 and len(set(caps)) == len(caps)
        assert all(c.endswith(".") and c == c.lower() and "#" not in c for c in caps)


def test_captions_vary_in_more_than_the_subject() -> None:
    caps = bandai_captions("walk", "tired", key="k")
    bodies = {c.split(" ", 2)[-1] for c in caps}
    assert len(bodies) >= 3
    assert any("tired" in c or "wearily" in c for c in caps)


def test_captions_are_deterministic_and_depend_on_the_clip() -> None:
    assert bandai_captions("run", "happy", "a") == bandai_captions("run", "happy", "a")
    many = {tuple(bandai_captions("run", "happy", str(i))) for i in range(20)}
    assert len(many) > 3


def test_unknown_label_raises() -> None:
    with pytest.raises(KeyError):
        bandai_captions("moonwalk", "normal", "k")


@pytest.mark.parametrize(
    ("desc", "must_contain"),
    [
        ("walk", "walks"),
        ("run/jog", "jogs"),
        ("slow walk", "walks slowly"),
        ("forward jump", "jumps forward"),
        ("jump, balance", "jumps and"),
        ("walk, exaggerated stride", "with an exaggerated stride"),
        ("swordplay", "does swordplay"),
    ],
)
def test_cmu_descriptions(desc: str, must_contain: str) -> None:
    caps = cmu_captions(desc, key=desc)
    assert len(caps) >= 3
    assert any(must_contain in c for c in caps), caps


def test_idle_captions() -> None:
    for kind in ("acted", "genuine"):
        caps = idle_captions(kind, "k")
        assert len(caps) >= 3 and all("stand" in c or "wait" in c for c in caps)


def test_mirror_swaps_sides_and_keeps_case() -> None:
    assert mirror_caption("a person waves the left hand.") == "a person waves the right hand."
    assert mirror_caption("Right then left, clockwise") == "Left then right, counterclockwise"
    assert mirror_caption("walks counterclockwise") == "walks clockwise"
    assert mirror_caption("the leftover") == "the leftover"  # whole words only
    for c in bandai_captions("walk-turn-left", "normal", "k"):
        assert "right" in mirror_caption(c) and "left" not in mirror_caption(c)


def test_text_line_round_trip() -> None:
    line = text_line("someone walks forward slowly.")
    cap, tokens, start, end = line.split("#")
    assert cap == "someone walks forward slowly." and (start, end) == ("0.0", "0.0")
    assert tokens == "someone/PRON walk/VERB forward/ADV slowly/ADV"
    assert parse_text_line(line) == ("someone walks forward slowly.", 0.0, 0.0)
    assert parse_text_line("a man jumps.#a/DET#1.5#3.0\n") == ("a man jumps.", 1.5, 3.0)
    assert parse_text_line("a man jumps.#a/DET#nan#nan") == ("a man jumps.", 0.0, 0.0)
    with pytest.raises(ValueError, match="#"):
        text_line("bad # caption")


def test_pos_tokens_lemmatise_our_verbs() -> None:
    assert pos_tokens("the person raises both hands") == "the/DET person/NOUN raise/VERB both/ADJ hands/NOUN"
    assert pos_tokens("someone is dancing") == "someone/PRON is/AUX dance/VERB"
