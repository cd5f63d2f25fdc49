"""The offline provider's agents: a `ParsedRequest` → `MotionDescription` and `TrajectoryPlan`.

Deterministic rules, no network. Durations come from the text when given, else from distance and
a typical speed (walk 1.2 m/s, run 3 m/s; `vocabulary.json`), else from the action's natural
length; a stated total stretches or shrinks the untimed actions to fit. Locomotion becomes line,
arc, circle, zigzag or waypoint pieces timed like their segments; gestures become `Stand` pieces.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ikmo.motion_model.constraints import (
    MAX_DURATION_S,
    Arc,
    Circle,
    Line,
    MotionDescription,
    Primitive,
    Segment,
    Stand,
    TrajectoryPlan,
    Waypoints,
    Zigzag,
    duration_to_frames,
)
from ikmo.motion_model.errors import ConstraintError
from ikmo.motion_model.representation.skeleton import FPS

from .offline_parser import ParsedAction, ParsedRequest, vocabulary
from .state import MotionRequest

DEFAULT_ARC = (2.0, 90.0)  # radius m, angle deg
DEFAULT_CIRCLE_RADIUS_M = 1.0
TURN_RADIUS_M = 0.25  # a walker's turn on the spot: a 90° turn adds 0.4 m of path
U_TURN_RADIUS_M = 0.15  # turning around: the pelvis swings through a tight half circle (0.47 m)
QUARTER_TURN_LEN_M = TURN_RADIUS_M * math.pi / 2  # the path of a 90° turn on the spot
U_TURN_LEN_M = U_TURN_RADIUS_M * math.pi  # the path of a turn around
MAX_JUMP_HEIGHT_M = 1.0
# How fast a walker turns. Measured on the corpus's 730 training clips whose captions walk and turn
# (facing from the hips and shoulders, 0.25 s smoothing): the fastest 80° of a clip takes 1.45 s
# (median; fastest tenth 1.05 s), the peak rate over 0.5 s is 80°/s (median; p90 104°/s). Turns
# timed by path length alone came out at 270°/s ("walk to the left 2 meters": 90° in 0.33 s) and
# 450°/s (a U-turn), faster than anyone turns, and the bodies slid through them.
MAX_TURN_RATE_DEG_S = 90.0
DEFAULT_ZIGZAG_AMPLITUDE_M = 0.5
MIN_SEGMENT_S = 0.5


def _speed(a: ParsedAction) -> float:
    if a.speed_m_s is not None:
        return a.speed_m_s
    return float(vocabulary()["actions"][a.action].get("speed_m_s", 0.0)) * a.speed_factor


def _shape_length(a: ParsedAction) -> float | None:
    """Path length implied by the shape alone (circle radius, arc), metres; None if open-ended."""
    if a.path == "circle":
        return 2 * math.pi * (a.radius_m or DEFAULT_CIRCLE_RADIUS_M) * (a.turns or 1.0)
    if a.path == "arc":
        return (a.radius_m or DEFAULT_ARC[0]) * math.radians(a.angle_deg or DEFAULT_ARC[1])
    if a.path == "square" and a.side_m is not None:
        return 4 * a.side_m
    if a.path == "turn":
        angle = a.angle_deg or 90.0
        return (U_TURN_RADIUS_M if angle >= 179 else TURN_RADIUS_M) * math.radians(angle)
    if a.path == "back_and_forth" and a.distance_m is not None:
        return 2 * a.distance_m + U_TURN_LEN_M  # the distance is each way
    return None


def turn_seconds(angle_deg: float, length_m: float, speed: float) -> float:
    """Seconds a turn of `angle_deg` along `length_m` of path takes at `speed` m/s: the path at the
    walking speed, but no faster than a walker turns (`MAX_TURN_RATE_DEG_S`)."""
    return max(length_m / speed if speed > 0 else 0.0, abs(angle_deg) / MAX_TURN_RATE_DEG_S)


def natural_duration(a: ParsedAction) -> float:
    """Seconds this action takes when the text does not say: distance/speed, shape/speed or the default;
    the turns in it take at least `turn_seconds`."""
    voc = vocabulary()["actions"][a.action]
    speed = _speed(a)
    length = _shape_length(a) if a.path == "back_and_forth" else a.distance_m
    length = length if length is not None else _shape_length(a)
    if voc["kind"] != "gesture" and length is not None and speed > 0:
        if a.path == "turn":
            return max(MIN_SEGMENT_S, turn_seconds(a.angle_deg or 90.0, length, speed))
        if a.path == "turn_then_line":
            return max(MIN_SEGMENT_S, max(length - QUARTER_TURN_LEN_M, 0.0) / speed
                       + turn_seconds(90.0, QUARTER_TURN_LEN_M, speed))
        if a.path == "back_and_forth":
            return max(MIN_SEGMENT_S, (length - U_TURN_LEN_M) / speed + turn_seconds(180.0, U_TURN_LEN_M, speed))
        return max(MIN_SEGMENT_S, length / speed)
    reps = a.repeat or 1
    # A single stroke ("kick", "jump") repeated n times takes n strokes' time; a cyclic action
    # ("wave", "dance") asked for n times is a longer cycle, not n separate ones.
    base = float(voc["default_s"]) * (reps if voc.get("repeatable") else reps**0.5)
    # Slower gestures take longer too; a fast one less.
    return max(MIN_SEGMENT_S, base / a.speed_factor)


def segment_durations(req: ParsedRequest, duration_override: float | None = None) -> tuple[list[float], list[str]]:
    """Duration of each action (s) and notes. Raises ConstraintError for contradictory timings."""
    notes: list[str] = []
    total = duration_override if duration_override is not None else req.total_duration_s
    fixed = [a.duration_s for a in req.actions]
    natural = [natural_duration(a) for a in req.actions]
    if total is None:
        durs = [f if f is not None else n for f, n in zip(fixed, natural, strict=True)]
        if sum(durs) > MAX_DURATION_S:
            if any(f is not None for f in fixed) and sum(f for f in fixed if f is not None) > MAX_DURATION_S:
                raise ConstraintError(
                    f"the request asks for {sum(f for f in fixed if f is not None):.1f}s of motion but a motion "
                    f"lasts at most {MAX_DURATION_S:g}s; ask for less time or fewer actions"
                )
            scale = MAX_DURATION_S / sum(durs)
            durs = [d * scale for d in durs]
            notes.append(f"shortened to the {MAX_DURATION_S:g}s limit of a motion (everything {1 / scale:.2f}x faster)")
        return durs, notes
    if total > MAX_DURATION_S + 1e-6:
        raise ConstraintError(
            f"a {total:g}s motion is longer than a motion may last ({MAX_DURATION_S:g}s); ask for at most "
            f"{MAX_DURATION_S:g}s, or make it in parts"
        )
    fixed_sum = sum(f for f in fixed if f is not None)
    free = [i for i, f in enumerate(fixed) if f is None]
    if fixed_sum > total + 1e-6:
        raise ConstraintError(
            f"the actions are timed to last {fixed_sum:g}s but the motion should last {total:g}s; "
            "make the parts shorter or the whole longer"
        )
    if not free:
        durs = [float(f) for f in fixed]  # type: ignore[arg-type]
        if total - fixed_sum > 1e-6:
            durs[-1] += total - fixed_sum
        return durs, notes
    rest = total - fixed_sum
    if rest < MIN_SEGMENT_S * len(free) - 1e-6:
        raise ConstraintError(
            f"only {rest:.2f}s remain for {len(free)} untimed action(s) in a {total:g}s motion; "
            "lengthen the motion or time fewer actions"
        )
    nat_sum = sum(natural[i] for i in free)
    durs = [float(f) if f is not None else natural[i] * rest / nat_sum for i, f in enumerate(fixed)]
    return durs, notes


def _style_words(style: str | None) -> str:
    if style is None or style == "normal":
        return "a person"
    word = vocabulary()["styles"].get(style, style)
    return f"an {word} person" if word[0] in "aeiou" else f"a {word} person"


def _phrase(a: ParsedAction) -> str:
    voc = vocabulary()["actions"][a.action]
    phrase = str(voc["phrase"])
    if a.path == "circle":
        phrase = phrase.replace(" forward", "") + f" in a circle to the {a.turn or 'left'}"
    elif a.path == "arc":
        phrase = phrase.replace(" forward", "") + f" in an arc to the {a.turn or 'left'}"
    elif a.path == "zigzag":
        phrase = phrase.replace(" forward", "") + " in a zigzag"
    elif a.path == "square":
        phrase = phrase.replace(" forward", "") + " in a square"
    elif a.path == "back_and_forth":
        phrase = phrase.replace(" forward", "") + " back and forth"
    elif a.path == "turn_then_line":
        phrase = f"turns {a.turn} and " + phrase
    elif a.path == "turn" and voc["kind"] != "turn":
        phrase = phrase.replace(" forward", "") + (" and turns around" if (a.angle_deg or 0) >= 180
                                                   else f" and turns {a.turn}")
    if a.speed_factor < 1 and voc["kind"] != "gesture":
        phrase = phrase.replace("walks", "walks slowly").replace("runs", "jogs")
    elif a.speed_factor > 1 and a.action == "walk":
        phrase = phrase.replace("walks", "walks quickly")
    if a.repeat is not None and a.repeat > 1:
        phrase += " " + _COUNTS.get(a.repeat, f"{a.repeat} times")
    if a.concurrent:
        phrase += " while " + " and ".join(_gerund(str(vocabulary()["actions"][c]["phrase"])) for c in a.concurrent)
    return phrase


def _gerund(phrase: str) -> str:
    """'waves both hands' → 'waving both hands' (the vocabulary's phrases start with a 3rd-person verb)."""
    verb, _, rest = phrase.partition(" ")
    stem = verb[:-2] if verb.endswith(("ches", "shes", "sses")) else verb[:-1] if verb.endswith("s") else verb
    if stem.endswith("e") and not stem.endswith("ee"):
        stem = stem[:-1]
    elif stem in ("nod", "run", "jog", "hop", "stop"):
        stem += stem[-1]
    return f"{stem}ing {rest}".strip()


_COUNTS = {2: "twice", 3: "three times", 4: "four times", 5: "five times"}


def describe(req: ParsedRequest, duration_override: float | None = None, n_images: int = 0) -> MotionDescription:
    """The description agent, offline: ordered segments in corpus vocabulary and a HumanML3D-style sentence.

    Raises ConstraintError when nothing in the text is a motion (and no image gives a pose) or the
    timings contradict each other.
    """
    actions = req.actions
    if not actions:
        if n_images == 0:
            raise ConstraintError(
                f"no motion found in {req.text!r}; describe an action, e.g. 'walk forward 3 meters then wave', "
                f"using words like walk, run, wave, bow, kick, punch, dance, jump or turn"
            )
        actions = req.actions = [ParsedAction(action="stand", clause="strike the poses in the images")]
    _check_feasible(actions)
    durs, notes = segment_durations(req, duration_override)
    segs: list[Segment] = []
    t = 0.0
    for a, d in zip(actions, durs, strict=True):
        segs.append(Segment(action=a.action, start_s=round(t, 4), end_s=round(t + d, 4), text=_phrase(a)))
        t += d
    total = round(t, 4)
    phrases = [s.text or s.action for s in segs]
    sentence = f"{_style_words(req.style)} {', then '.join(phrases)}."
    req.notes.extend(notes)
    return MotionDescription(text=sentence, duration_s=min(total, MAX_DURATION_S), segments=segs, style=req.style)


_DEICTIC = re.compile(r"\b(over )?there\b|\bover here\b|\bthat way\b|\bthis way\b|\bover to (it|them|him|her)\b")


def _check_feasible(actions: list[ParsedAction]) -> None:
    """Raise ConstraintError for what no person (or no reading of the words) can do: a jump far
    higher than people jump, a destination the words only point at."""
    for a in actions:
        if a.height_m is not None and a.height_m > MAX_JUMP_HEIGHT_M:
            raise ConstraintError(
                f"a jump {a.height_m:g} m high is beyond a person (a standing jump rises well under "
                f"{MAX_JUMP_HEIGHT_M:g} m); ask for a jump without a height, or at most {MAX_JUMP_HEIGHT_M:g} m")
        if (vocabulary()["actions"][a.action]["kind"] == "locomotion" and a.distance_m is None and a.path is None
                and a.duration_s is None and (there := _DEICTIC.search(a.clause)) is not None):
            raise ConstraintError(
                f"where is {there.group(0)!r}? I can't see the scene: say how far and which way, "
                "e.g. 'walk 3 meters to the left'")


def _primitives_for(a: ParsedAction, dur: float) -> list[Primitive]:
    voc = vocabulary()["actions"][a.action]
    if voc["kind"] == "gesture":
        return [Stand(duration_s=dur)]
    speed = _speed(a)
    dist = a.distance_m if a.distance_m is not None else speed * dur
    side = a.turn or "left"
    if a.path == "circle":
        turns = a.turns or 1.0
        radius = a.radius_m or (dist / (2 * math.pi * turns) if a.distance_m else DEFAULT_CIRCLE_RADIUS_M)
        return [Circle(radius_m=max(radius, 0.2), turns=min(turns, 4.0), turn=side, duration_s=dur)]
    if a.path == "arc":
        angle = a.angle_deg or DEFAULT_ARC[1]
        radius = a.radius_m or (dist / math.radians(angle) if a.distance_m else DEFAULT_ARC[0])
        return [Arc(radius_m=max(radius, 0.2), angle_deg=min(angle, 720.0), turn=side, duration_s=dur)]
    if a.path == "turn":
        angle = min(a.angle_deg or 90.0, 720.0)
        radius = U_TURN_RADIUS_M if angle >= 179 else TURN_RADIUS_M
        return [Arc(radius_m=radius, angle_deg=angle, turn=side, duration_s=dur)]
    if a.path == "turn_then_line":
        t_turn = min(dur / 2, turn_seconds(90.0, QUARTER_TURN_LEN_M, max(speed, 0.3)))
        return [Arc(radius_m=TURN_RADIUS_M, angle_deg=90.0, turn=side, duration_s=t_turn),
                Line(distance_m=max(dist - QUARTER_TURN_LEN_M, 0.0), duration_s=dur - t_turn)]
    if a.path == "zigzag":
        return [Zigzag(distance_m=max(dist * 0.9, 0.1), amplitude_m=DEFAULT_ZIGZAG_AMPLITUDE_M, n_legs=4,
                       direction_deg=a.direction_deg, duration_s=dur)]
    if a.path == "square":
        s = max(a.side_m if a.side_m is not None else dist / 4, 0.2)
        sign = 1.0 if side == "left" else -1.0
        return [Waypoints(points_xz=[(0.0, s), (sign * s, s), (sign * s, 0.0), (0.0, 0.0)], duration_s=dur)]
    if a.path == "back_and_forth":
        half = max(a.distance_m if a.distance_m is not None else (dist - U_TURN_LEN_M) / 2, 0.2)
        turn_t = min(dur / 2, max(dur * U_TURN_LEN_M / (2 * half + U_TURN_LEN_M), turn_seconds(180.0, 0.0, speed)))
        leg_t = (dur - turn_t) / 2
        return [Line(distance_m=half, duration_s=leg_t),
                Arc(radius_m=U_TURN_RADIUS_M, angle_deg=180.0, turn=side, duration_s=turn_t),
                Line(distance_m=half, duration_s=leg_t)]
    return [Line(distance_m=dist, direction_deg=a.direction_deg, duration_s=dur)]


def plan_trajectory(req: ParsedRequest, description: MotionDescription) -> TrajectoryPlan:
    """The trajectory agent, offline: one or more primitives per segment, timed like the segments."""
    prims: list[Primitive] = []
    actions = req.actions or [ParsedAction(action="stand", clause="")]
    if len(actions) != len(description.segments):
        # A description written by another provider: fall back to one primitive per segment by name.
        actions = [ParsedAction(action=s.action if s.action in vocabulary()["actions"] else "walk", clause=s.text or "")
                   for s in description.segments] or [ParsedAction(action="stand", clause="")]
        segs = description.segments or [Segment(action="stand", start_s=0.0, end_s=description.duration_s)]
    else:
        segs = description.segments
    for a, s in zip(actions, segs, strict=True):
        prims.extend(_primitives_for(a, s.end_s - s.start_s))
    return TrajectoryPlan(primitives=prims)


def keyframe_times(request: MotionRequest, description: MotionDescription, parsed: dict[str, Any] | None
                   ) -> list[float]:
    """Time (s) of each image: given with the image, else the text's hints in order ("at 3 s", "at the end"),
    else spread in image order over the motion (one image → the end)."""
    req, desc = request, description
    hints = list((parsed or {}).get("keyframe_hints", []))
    end = (duration_to_frames(desc.duration_s) - 1) / FPS  # the time of the last frame
    free = [i for i, im in enumerate(req.images) if im.time_s is None]
    times = [im.time_s for im in req.images]
    for j, i in enumerate(free):
        if hints:
            h = hints.pop(0)
            times[i] = {"start": 0.0, "middle": end / 2, "end": end}[h] if isinstance(h, str) else float(h)
        else:
            times[i] = end * (j + 1) / len(free)
    return [float(t) for t in times if t is not None]
