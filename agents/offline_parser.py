"""Rule-based English parsing of motion requests: the `offline` provider's reading of the user's text.

Deterministic, no network. Reads ordered actions (in the corpus vocabulary, `vocabulary.json`),
styles, numbers with units (metres, feet, steps, seconds, m/s, km/h, degrees), directions, path
shapes (line, arc, circle, semicircle, zigzag, square, turn left/right/around, back and forth),
speeds ("slowly", "quickly"), timings ("for 3 s", "in 6 seconds", "then") and keyframe time
hints ("at 3 s", "at the end"). Anything it cannot read is kept in `ParsedRequest.ignored`, never
acted upon: the text can change nothing but the motion.

Follow-ups in a conversation ("make it slower", "add a wave at the end") are applied to the
previous parse by `apply_followup`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any, Literal

PathShape = Literal["line", "arc", "circle", "zigzag", "square", "turn", "turn_then_line", "back_and_forth"]

STEP_LENGTH_M = 0.7  # one walking step, for "ten steps"
SLOW_FACTOR = 0.6  # 'slowly': 0.72 m/s for a 1.2 m/s walk, a stroll
FAST_FACTOR = 1.4


@cache
def vocabulary() -> dict[str, Any]:
    """The corpus label vocabulary (actions with phrase/kind/speed, styles, CMU descriptions)."""
    return json.loads(resources.files("ikmo.agents").joinpath("vocabulary.json").read_text(encoding="utf-8"))


@dataclass
class ParsedAction:
    """One action of a request, in vocabulary terms. Lengths in metres, times in seconds."""

    action: str
    clause: str
    distance_m: float | None = None
    duration_s: float | None = None
    speed_m_s: float | None = None
    speed_factor: float = 1.0
    direction_deg: float = 0.0
    path: PathShape | None = None
    turn: Literal["left", "right"] | None = None
    angle_deg: float | None = None
    radius_m: float | None = None
    turns: float | None = None
    repeat: int | None = None
    side_m: float | None = None  # a square's side ("1 meter sides")
    height_m: float | None = None  # a jump's height ("jump 1 meter high")
    # Gestures done at the same time ("... while waving both hands"): vocabulary actions, in text order.
    concurrent: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(vocabulary()["actions"][self.action]["kind"])


@dataclass
class ParsedRequest:
    """What the offline parser read. `keyframe_hints` are seconds or "start"/"middle"/"end", in text order."""

    text: str
    actions: list[ParsedAction] = field(default_factory=list)
    style: str | None = None
    total_duration_s: float | None = None
    keyframe_hints: list[float | str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- normalisation

_WORD_NUMS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "hundred": 100,
}  # fmt: skip


def _normalise(text: str) -> str:
    t = text.lower().replace("’", "'").replace("–", "-").replace("°", " degrees ")
    t = re.sub(r"\b(a|one) couple of\b", "2", t)
    t = re.sub(r"\ba few\b", "3", t)
    t = re.sub(r"\bhalf an? (?=(second|sec|meter|metre|minute))", "0.5 ", t)
    t = re.sub(r"\b(" + "|".join(_WORD_NUMS) + r")\b", lambda m: str(_WORD_NUMS[m.group(1)]), t)
    t = re.sub(r"(\d+(?:\.\d+)?) and a half\b", lambda m: str(float(m.group(1)) + 0.5), t)
    t = re.sub(r"(\d),(\d)", r"\1.\2", t)  # "2,5 m" written the European way
    t = re.sub(r"(\d)-(?=[a-z])", r"\1 ", t)  # "6-second" → "6 second"
    # "2 more meters", "another 2 m", "a further 3 feet": the leg's own distance
    t = re.sub(r"\b(?:another|a further|an extra|an additional)\s+(?=\d)", "", t)
    t = re.sub(r"(\d+(?:\.\d+)?)\s+(?:more|further|extra|additional)\s+(?=[a-z])", r"\1 ", t)
    return re.sub(r"\s+", " ", t).strip()


_NUM = r"(\d+(?:\.\d+)?)"
_DIST_UNITS = {
    "m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "metres": 1.0, "cm": 0.01, "centimeters": 0.01,
    "centimetres": 0.01, "km": 1000.0, "kilometer": 1000.0, "kilometers": 1000.0, "kilometre": 1000.0,
    "kilometres": 1000.0, "mile": 1609.34, "miles": 1609.34, "ft": 0.3048, "feet": 0.3048, "foot": 0.3048,
    "yard": 0.9144,
    "yards": 0.9144, "yd": 0.9144, "step": STEP_LENGTH_M, "steps": STEP_LENGTH_M, "pace": STEP_LENGTH_M,
    "paces": STEP_LENGTH_M,
}  # fmt: skip
_DIST_RE = re.compile(_NUM + r"\s*(" + "|".join(sorted(_DIST_UNITS, key=len, reverse=True)) + r")\b(?!\s*/)"
                      r"(?!\s*per\b)")
_SPEED_RE = re.compile(_NUM + r"\s*(m/s|meters? per second|metres? per second|km/h|kmh|kph|mph)")
_SPEED_UNITS = {"m/s": 1.0, "km/h": 1 / 3.6, "kmh": 1 / 3.6, "kph": 1 / 3.6, "mph": 0.44704}
_TIME_UNIT = r"(s|sec|secs|second|seconds|min|mins|minute|minutes)\b"
_TIME_RE = re.compile(r"(for|in|over|lasting|within|during|takes?|at|after)?\s*" + _NUM + r"\s*" + _TIME_UNIT)
_ANGLE_RE = re.compile(_NUM + r"\s*(?:degrees?|deg)\b")
_RADIUS_RE = re.compile(r"radius(?: of)?\s*" + _NUM + r"\s*(m|meters?|metres?|cm|ft|feet)?|" + _NUM +
                        r"\s*(m|meters?|metres?|cm|ft|feet)?[- ]radius")
_DIAMETER_RE = re.compile(r"(?:diameter(?: of)?\s*" + _NUM + r"|" + _NUM + r"\s*(?:m|meters?|metres?)?\s*"
                          r"(?:wide|diameter|across))")
_TIMES_RE = re.compile(r"\b(?:" + _NUM + r"\s*times|(once|twice|thrice))\b")
_TOTAL_RE = re.compile(r"(?:\b(?:in|over|within|lasting|total of|takes?|long)\s*" + _NUM + r"\s*" + _TIME_UNIT +
                       r"|" + _NUM + r"\s*(?:s|sec|second|seconds)\s*(?:long|motion|clip|animation|total|in total))")

# --------------------------------------------------------------------------- lexicon

_SIDE = r"(left|right)"
_ACTION_PATTERNS: list[tuple[str, str]] = [
    # (regex, action or a resolver tag); checked in order, earliest match in the clause wins.
    (r"\b(say|says|saying|wave|waves|waving)\s+(good ?bye|bye|farewell)\b|\bbid(s)? farewell\b", "bye"),
    (r"\bbye[- ]?bye\b", "byebye"),
    (r"\bgood ?bye\b|\bsays? bye\b|\bfarewell\b", "bye"),
    (r"\b(wave|waves|waving|waved)\b", "WAVE"),
    (r"\b(raise|raises|raising|lift|lifts|lifting|put|puts)\b[\w ]{0,20}\b(hands?|arms?)\b|\b(hands?|arms?) up\b"
     r"|\b(hands?|arms?) (raised|lifted|held up|in the air|above)", "RAISE"),
    (r"\b(bow|bows|bowing|bowed)\b", "bow"),
    (r"\b(guide|guides|guiding|usher|ushers|shows? the way|points? the way|directs?)\b", "guide"),
    (r"\b(respond|responds|responding|nod|nods|nodding|reply|replies|answers?|acknowledges?)\b", "respond"),
    (r"\b(beckon|beckons|calls? (someone|somebody|out|over)|calling|call|calls)\b", "call"),
    (r"\b(punch|punches|punching|jab|jabs|uppercut|box|boxes|boxing)\b", "punch"),
    (r"\b(kick|kicks|kicking|kicked)\b", "kick"),
    (r"\b(slash|slashes|slashing|sword|swings? a (blade|sword))\b", "slash"),
    (r"\b(dance|dances|dancing|danced)\b", "dance"),
    (r"\b(jump|jumps|jumping|hop|hops|hopping|leap|leaps|leaping)\b", "jump"),
    (r"\b(side ?steps?|side-steps?|strafes?|shuffles?|walks? sideways|moves? sideways|steps? sideways)\b", "SIDE"),
    (r"\b(walks?|walking|steps?|moves?|go|goes|going)\s+(backwards?|back)\b(?!_and)"
     r"|\bback(s)? (up|away)\b|\bretreats?\b", "walk-back"),
    (r"\b(dash|dashes|dashing|sprint|sprints|sprinting)\b", "dash"),
    (r"\b(run|runs|running|ran|jog|jogs|jogging)\b", "run"),
    (r"\b(walk|walks|walking|walked|stroll|strolls|strolling|march|marches|marching|wander|wanders|pace|paces|"
     r"go|goes|going|move|moves|moving|head|heads|step|steps|circles?|zigzags?|zig-zags?)\b", "walk"),
    (r"\bturns?\s+(around|round|back|left|right|to the left|to the right|by\s+\d|\d)|\bu-?turn\b|\bspins?\b",
     "TURN"),
    (r"\b(stand|stands|standing|idle|idles|wait|waits|waiting|stay|stays|pause|pauses|stop|stops|rest|rests|"
     r"freeze|still|strike|strikes|pose|poses|hold|holds)\b", "stand"),
]
_ACTION_RES = [(re.compile(p), a) for p, a in _ACTION_PATTERNS]

_STYLE_PATTERNS: list[tuple[str, str]] = [
    (r"\bnot confident\b|\bunconfident\b|\bshy\b|\btimid\b|\bnervous\b|\binsecure\b|\bunsure\b|\bhesitant",
     "not-confident"),
    (r"\btired\b|\btiredly\b|\bweary\b|\bwearily\b|\bexhausted\b|\bsleepy\b|\bfatigued\b", "tired"),
    (r"\bold\b|\belderly\b|\baged\b|\bsenior\b|\bgrandp|\bgrandm", "old"),
    (r"\bhappy\b|\bhappily\b|\bjoyful|\bcheerful|\bglad\b|\bexcited", "happy"),
    (r"\bsad\b|\bsadly\b|\bsorrowful|\bdepressed\b|\bgloomy\b|\bupset\b", "sad"),
    (r"\bangry\b|\bangrily\b|\bfurious|\bmad\b|\bannoyed\b|\brage\b", "angry"),
    (r"\bproud\b|\bproudly\b|\bconfident|\barrogant", "proud"),
    (r"\bmasculine\b|\bmanly\b|\bmacho\b", "masculinity"),
    (r"\bfeminine\b|\bgirly\b|\bgraceful|\belegant", "feminine"),
    (r"\bchildish|\bchild\b|\bkid\b|\bplayful", "childish"),
    (r"\bactive\b|\benergetic|\blively\b|\bsporty\b|\bvigorous", "active"),
    (r"\bmusical|\brhythmic", "musical"),
    (r"\bgiant\b|\bhuge\b|\bheavy\b|\bheavily\b|\blumbering", "giant"),
    (r"\bthug|\bchimpira\b|\bgangster|\bdelinquent|\bswagger", "chimpira"),
    (r"\bnormal\b|\bnormally\b|\bneutral\b", "normal"),
]
_STYLE_RES = [(re.compile(p), s) for p, s in _STYLE_PATTERNS]

_SPLIT_RE = re.compile(r"\s*(?:[,;!?]+|\.(?!\d)|\band then\b|\bthen\b|\bafter that\b|\bafterwards\b|\bfollowed by\b|"
                       r"\bbefore\b|\band\b|\bnext\b|\bfinally\b)\s*")
_KEYFRAME_END = re.compile(r"\b(at the end|in the end|finish(es|ing)?|ends?|last pose|final pose|end pose)\b")
_KEYFRAME_START = re.compile(r"\b(at the (start|beginning)|starts?|begins?|first pose|start pose)\b")
_KEYFRAME_MID = re.compile(r"\b(in the middle|halfway|midway)\b")
_KEYFRAME_CUE = re.compile(r"\b(pose|photo|picture|image|keyframe|like this|this)\b")


def _side(clause: str) -> Literal["left", "right"] | None:
    m = re.search(r"\b(left|right)\b", clause)
    return None if m is None else m.group(1)  # type: ignore[return-value]


def _hands(clause: str) -> str:
    if re.search(r"\bboth\b|\btwo (hands|arms)\b|\bhands\b|\barms\b", clause):
        return "both-hands"
    return "left-hand" if _side(clause) == "left" else "right-hand"


def _find_action(clause: str) -> tuple[str, int] | None:
    """(vocabulary action, position) of the earliest action word in the clause."""
    best: tuple[str, int] | None = None
    for rx, tag in _ACTION_RES:
        m = rx.search(clause)
        if m and (best is None or m.start() < best[1]):
            best = (tag, m.start())
    if best is None:
        return None
    tag, pos = best
    if tag == "WAVE":
        tag = f"wave-{_hands(clause)}"
    elif tag == "RAISE":
        tag = f"raise-up-{_hands(clause)}"
    elif tag == "SIDE":
        tag = "walk-right" if _side(clause) == "right" else "walk-left"
    elif tag == "TURN":
        tag = "walk-turn-right" if _side(clause) == "right" else "walk-turn-left"
    elif tag in ("walk", "run") and re.search(r"\bbackwards?\b", clause):
        tag = "walk-back"  # "walk 1.5 m backwards": the direction may follow the distance
    return tag, pos


_WHILE_RE = re.compile(r"\s*\b(?:while|whilst|as (?:he|she|they|it) (?:is |are )?)\b\s*")
# "run forward with both hands raised": a gesture done along, when what follows "with" is one
# ("wave with both hands" is a wave, done with both hands).
_WITH_RE = re.compile(r"\s+\bwith\s+(?=(?:both |his |her |their |the |one |a |my |your )?(?:hands?|arms?)\b)")
_SAME_TIME_RE = re.compile(r"\b(?:at the same time|simultaneously|meanwhile|all the while)\b")


def _split_concurrent(clause: str) -> tuple[str, list[str]]:
    """'zigzag forward 4 m while waving both hands' → ('zigzag forward 4 m', ['waving both hands'])."""
    parts = [p for p in _WHILE_RE.split(clause) if p.strip()]
    if not parts:
        return clause, []
    main, along = parts[0], parts[1:]
    head, *tail = _WITH_RE.split(main, maxsplit=1)
    if tail:
        first, second = _find_action(head), _find_action(tail[0])
        if first is not None and second is not None and first[0] != second[0]:
            main, along = head, [tail[0], *along]
    return main, along


def _is_locomotion(action: str) -> bool:
    return vocabulary()["actions"][action]["kind"] != "gesture"


def _clause_has_action(clause: str) -> bool:
    return _find_action(clause) is not None


def _distance(clause: str) -> float | None:
    total = None
    for m in _DIST_RE.finditer(clause):
        # "radius 2 m" and "2 m wide" are shape sizes, not distances travelled.
        before, after = clause[max(0, m.start() - 10):m.start()], clause[m.end():m.end() + 9]
        if "radius" in before or "diameter" in before or re.match(r"\s*(wide|radius|across|diameter)", after):
            continue
        if re.match(r"\s*(high|up in the air|tall|into the air)\b", after):
            continue  # a jump's height (`_height`), not a distance
        if re.match(r"\s*(sides?|each side|per side|on each side|square)\b", after) or re.search(
                r"\bsides? of\s*$", before):
            continue  # a square's side, not the distance travelled (`_side_length`)
        total = (total or 0.0) + float(m.group(1)) * _DIST_UNITS[m.group(2)]
    return total


_SIDE_RE = re.compile(_NUM + r"\s*(" + "|".join(sorted(_DIST_UNITS, key=len, reverse=True)) + r")\s*"
                      r"(?:sides?|each side|per side|on each side|square)\b|\bsides? of\s*" + _NUM + r"\s*(" +
                      "|".join(sorted(_DIST_UNITS, key=len, reverse=True)) + r")\b")


_HEIGHT_RE = re.compile(_NUM + r"\s*(" + "|".join(sorted(_DIST_UNITS, key=len, reverse=True)) + r")\s*"
                        r"(?:high|up in the air|tall|into the air)\b")


def _height(clause: str) -> float | None:
    """How high a jump should go ("jump 10 meters high"), metres."""
    if (m := _HEIGHT_RE.search(clause)) is None:
        return None
    return float(m.group(1)) * _DIST_UNITS[m.group(2)]


def _side_length(clause: str) -> float | None:
    """A square's side ("1 meter sides", "a 2 m square", "sides of 3 feet"), metres."""
    if (m := _SIDE_RE.search(clause)) is None:
        return None
    value, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    return float(value) * _DIST_UNITS[unit]


def _seconds(value: str, unit: str) -> float:
    return float(value) * (60.0 if unit.startswith("min") else 1.0)


def _parse_clause(clause: str, req: ParsedRequest, action: str) -> ParsedAction:
    a = ParsedAction(action=action, clause=clause)
    voc = vocabulary()["actions"][action]
    a.direction_deg = float(voc.get("direction_deg", 0.0))
    a.distance_m = _distance(clause)
    a.side_m = _side_length(clause)
    a.height_m = _height(clause)
    if (m := _SPEED_RE.search(clause)) is not None:
        unit = "m/s" if "per second" in m.group(2) else m.group(2)
        a.speed_m_s = float(m.group(1)) * _SPEED_UNITS[unit]
    if re.search(r"\b(slow|slowly|slower|leisurely|gently|carefully|calmly)\b", clause):
        a.speed_factor = SLOW_FACTOR
    elif re.search(r"\b(quick|quickly|fast|faster|briskly|brisk|hurr(y|ies|iedly)|rapidly|swiftly)\b", clause):
        a.speed_factor = FAST_FACTOR
    for m in _TIME_RE.finditer(clause):
        if m.group(1) not in ("at", "after") and a.duration_s is None:
            a.duration_s = _seconds(m.group(2), m.group(3))
    if (m := _ANGLE_RE.search(clause)) is not None:
        a.angle_deg = float(m.group(1))
    if (m := _RADIUS_RE.search(clause)) is not None:
        val, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        a.radius_m = float(val) * _DIST_UNITS.get(unit or "m", 1.0)
    elif (m := _DIAMETER_RE.search(clause)) is not None:
        a.radius_m = float(m.group(1) or m.group(2)) / 2
    if (m := _TIMES_RE.search(clause)) is not None:
        a.repeat = int(float(m.group(1))) if m.group(1) else {"once": 1, "twice": 2, "thrice": 3}[m.group(2)]
    side = _side(clause)
    if voc["kind"] == "locomotion":
        if re.search(r"\b(semi-?circle|half[- ]circle)\b", clause):
            a.path, a.angle_deg = "arc", a.angle_deg or 180.0
        elif re.search(r"\bcircles?\b|\bround in a\b|\bloop\b", clause):
            a.path = "circle"
            a.turns = float(a.repeat) if a.repeat else (2.0 if re.search(r"\b2 circles\b", clause) else None)
        elif re.search(r"\b(arc|arcs|curve|curves|curving|curved|bend|bends)\b", clause):
            a.path = "arc"
        elif re.search(r"\bzig-?zags?\b|\bzig zag\b|\bslalom\b|\bweav(e|es|ing)\b", clause):
            a.path = "zigzag"
        elif re.search(r"\bsquare\b", clause):
            a.path = "square"
        elif re.search(r"\bback_and_forth\b|\bto_and_fro\b|\bthere_and_back\b", clause):
            a.path = "back_and_forth"
        elif re.search(r"\bturns? (around|round|back)\b|\bu-?turn\b", clause):
            a.path, a.angle_deg = "turn", 180.0
        elif re.search(r"\bturns? (to the )?(left|right)\b", clause):
            a.path = "turn"
        elif re.search(r"\bdiagonal(ly)?\b", clause):
            a.direction_deg = 45.0 if side != "right" else -45.0
        elif side is not None and action in ("walk", "run", "dash"):
            # "walk to the left": turn towards that side, then go straight.
            a.path = "turn_then_line"
        if a.path in ("arc", "circle", "turn", "turn_then_line", "zigzag"):
            a.turn = side or "left"
    elif voc["kind"] == "turn":
        a.path, a.turn = "turn", side or "left"
        if re.search(r"\b(around|round|back)\b|\bu-?turn\b", clause):
            a.angle_deg = 180.0
    return a


_LANGUAGES = {"fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese", "ja": "Japanese"}


@cache
def _foreign_tables() -> dict[str, list[tuple[re.Pattern[str], str]]]:
    data = json.loads(resources.files("ikmo.agents").joinpath("foreign_words.json").read_text(encoding="utf-8"))
    out: dict[str, list[tuple[re.Pattern[str], str]]] = {}
    for lang, table in data["phrases"].items():
        rows = sorted(table.items(), key=lambda kv: len(kv[0]), reverse=True)
        # Japanese has no spaces between words: its phrases match anywhere.
        out[lang] = [(re.compile(re.escape(k) if lang == "ja" else r"(?<!\w)" + re.escape(k) + r"(?!\w)"), v)
                     for k, v in rows]
    return out


def _translate(text: str) -> tuple[str, str] | None:
    """(English words, language) for a request in one of `_LANGUAGES` read word by word, or None."""
    t = text.lower()
    best: tuple[int, str] | None = None
    for lang, rows in _foreign_tables().items():
        hits = sum(1 for rx, en in rows if en.strip() and len(en.strip()) > 2 and rx.search(t))
        if hits and (best is None or hits > best[0]):
            best = (hits, lang)
    if best is None:
        return None
    lang = best[1]
    for rx, en in _foreign_tables()[lang]:
        t = rx.sub(f" {en} " if en else " ", t)
    return re.sub(r"\s+", " ", t).strip(), lang


def parse_request(text: str) -> ParsedRequest:
    """Read a motion request. Never raises on odd text; unreadable parts land in `ignored`.

    A request in which no English motion word is found is tried once more through a small lexicon
    of French, German, Spanish, Italian, Portuguese and Japanese motion words (said in the notes)."""
    req = _parse(text, _normalise(text))
    if req.actions:
        return req
    translated = _translate(text)
    if translated is None:
        return req
    english, lang = translated
    again = _parse(text, _normalise(english))
    if not again.actions:
        return req
    again.notes.append(f"read the {_LANGUAGES[lang]} request word by word as {english!r} (the built-in lexicon "
                       "knows only common motion words of other languages; an LLM provider reads any language)")
    return again


def _parse(text: str, t: str) -> ParsedRequest:
    """The parse of the original `text`, read from its normalised form `t`."""
    req = ParsedRequest(text=text)
    for rx, style in _STYLE_RES:
        if rx.search(t):
            req.style = style
            break
    if (m := _TOTAL_RE.search(t)) is not None:
        req.total_duration_s = _seconds(m.group(1), m.group(2)) if m.group(1) else float(m.group(3))
    req.keyframe_hints = _keyframe_hints(t)
    t = _after_to_then(t)
    for phrase in ("back and forth", "to and fro", "there and back"):
        t = t.replace(phrase, phrase.replace(" ", "_"))
    clauses = [c for c in _SPLIT_RE.split(t) if c and c.strip()]
    pending: list[str] = []  # modifier-only clauses waiting for an action ("2 m", "slowly")
    for whole in clauses:
        clause, together = _split_concurrent(whole)
        found = _find_action(clause)
        with_actions: list[tuple[str, str]] = []
        for part in together:
            if (f := _find_action(part)) is not None:
                with_actions.append((part, f[0]))
            else:
                req.ignored.append(part)
                req.notes.append(f"{part!r} is not a motion the model knows (it makes the corpus's walks, runs, "
                                 "turns, jumps and gestures); it was left out")
        if found is not None and with_actions and not _is_locomotion(found[0]) and _is_locomotion(
                with_actions[0][1]):
            # "wave while walking forward": the walk carries the path, the wave goes along
            (clause, loco), gesture = with_actions[0], found[0]
            found, with_actions = (loco, 0), [(whole, gesture), *with_actions[1:]]
        if found is not None and req.actions and _SAME_TIME_RE.search(clause):
            req.actions[-1].concurrent.append(found[0])  # "walk forward and wave at the same time"
            continue
        if found is None:
            if req.actions and _is_modifier(clause):
                last = req.actions[-1]
                req.actions[-1] = _parse_clause(f"{last.clause} {clause}", req, last.action)
            elif _is_modifier(clause):
                pending.append(clause)
            elif not re.fullmatch(r"(at the end|in the end|at the (start|beginning)|this pose|in this pose)",
                                  clause):
                req.ignored.append(clause)
            continue
        action, _ = found
        full = " ".join([*pending, clause])
        pending.clear()
        if action == "stand" and req.actions and _KEYFRAME_CUE.search(clause) and not re.search(
            r"\b(stand|stands|standing|wait|waits|stay|stays|idle)\b", clause
        ):
            continue  # "... and end in this pose": a keyframe cue, not a new action
        parsed = _parse_clause(full, req, action)
        parsed.concurrent = [a for _, a in with_actions]
        req.actions.append(parsed)
    _walk_back_after_turning_around(req)
    # A total stated once ("in 6 seconds") must not also be read as the last clause's own duration.
    if req.total_duration_s is not None and len(req.actions) > 1:
        for a in req.actions:
            if a.duration_s is not None and abs(a.duration_s - req.total_duration_s) < 1e-9 and re.search(
                r"\b(in|over|within|lasting|total)\s*" + _NUM, a.clause
            ):
                a.duration_s = None
    if len(req.actions) == 1 and req.total_duration_s is None and req.actions[0].duration_s is not None:
        req.total_duration_s = req.actions[0].duration_s
    return req


def _after_to_then(t: str) -> str:
    """'bow after you wave' → 'wave then bow' (both sides actions; 'after 2 seconds' is a time)."""
    m = re.fullmatch(r"(.+?)\s+after\s+(?:you |he |she |they |i |we |it )?(?!\d|that\b|this\b)(.+)", t)
    if m is None or _find_action(m.group(1)) is None or _find_action(m.group(2)) is None:
        return t
    return f"{m.group(2)} then {m.group(1)}"


def _walk_back_after_turning_around(req: ParsedRequest) -> None:
    """'walk 2 m, turn around and walk back': the walk back retraces the leg before the turn (it is
    no walk backwards)."""
    for i in range(2, len(req.actions)):
        a, turn = req.actions[i], req.actions[i - 1]
        turned = (turn.path == "turn" or turn.action.startswith("walk-turn")) and (turn.angle_deg or 0) >= 179
        if a.action == "walk-back" and turned and not re.search(r"\bbackwards?\b", a.clause):
            leg = next((b for b in reversed(req.actions[:i - 1]) if b.distance_m is not None), None)
            back = _parse_clause(a.clause.replace("back", "forward"), req, "walk")
            if back.distance_m is None and leg is not None:
                back.distance_m = leg.distance_m
            req.actions[i] = back


def _keyframe_hints(t: str) -> list[float | str]:
    """Time hints for the photos, in text order: seconds ("at 3 s"), or "start"/"middle"/"end" when the
    text talks about a pose or photo."""
    found: list[tuple[int, float | str]] = []
    for m in _TIME_RE.finditer(t):
        if m.group(1) in ("at", "after"):
            found.append((m.start(), _seconds(m.group(2), m.group(3))))
    if _KEYFRAME_CUE.search(t):
        for rx, name in ((_KEYFRAME_END, "end"), (_KEYFRAME_START, "start"), (_KEYFRAME_MID, "middle")):
            if (cue := rx.search(t)) is not None:
                found.append((cue.start(), name))
    return _dedupe([h for _, h in sorted(found, key=lambda x: x[0])])


def _is_modifier(clause: str) -> bool:
    return bool(
        _DIST_RE.search(clause) or _TIME_RE.search(clause) or _SPEED_RE.search(clause)
        or re.search(r"\b(slowly|quickly|fast|slow|left|right|forward|backwards?|circle|arc|zigzag|"
                     r"degrees?|radius)\b", clause)
    )


def _dedupe(hints: list[float | str]) -> list[float | str]:
    out: list[float | str] = []
    for h in hints:
        if h not in out:
            out.append(h)
    return out


# --------------------------------------------------------------------------- follow-ups

_EDIT_SLOWER = re.compile(r"\b(slower|slow(er)? (it )?down|more slowly|less fast|calmer)\b")
_EDIT_FASTER = re.compile(r"\b(faster|quicker|speed (it )?up|more quickly|hurry)\b")
_EDIT_LONGER = re.compile(r"\b(longer|extend|lengthen)\b")
_EDIT_SHORTER = re.compile(r"\b(shorter|shorten|trim)\b")
_EDIT_ADD = re.compile(r"\b(add|also|append|include|plus|and then)\b")
# "then walk back and bow": a message that starts by saying what comes next continues the motion.
_EDIT_NEXT = re.compile(r"^\W*(and )?(then|after that|afterwards|next|followed by|continue)\b")
_EDIT_START = re.compile(r"\b(at the (start|beginning)|first|before)\b")
_EDIT_REPLACE = re.compile(r"\b(instead|replace|rather than|change it to|swap)\b")
_EDIT_DROP = re.compile(r"\b(remove|drop|without|no more|don't|do not)\b")


def apply_followup(previous: ParsedRequest, text: str) -> tuple[ParsedRequest, list[str]]:
    """Apply a conversational follow-up to the previous request; return the new request and what changed.

    A follow-up with actions and no edit words ("now run in a circle") starts a new request.
    """
    t = _normalise(text)
    new = parse_request(text)
    out = replace(previous, actions=[replace(a) for a in previous.actions],
                  keyframe_hints=list(previous.keyframe_hints), ignored=[], notes=[], text=f"{previous.text} | {text}")
    changes: list[str] = []
    if _EDIT_SLOWER.search(t) or _EDIT_FASTER.search(t):
        f = SLOW_FACTOR if _EDIT_SLOWER.search(t) else FAST_FACTOR
        for a in out.actions:
            a.speed_factor *= f
            if a.duration_s is not None:
                a.duration_s /= f
        if out.total_duration_s is not None:
            out.total_duration_s = out.total_duration_s / f
        changes.append("slower" if f < 1 else "faster")
    if (_EDIT_LONGER.search(t) or _EDIT_SHORTER.search(t)) and not new.actions:
        f = 1.3 if _EDIT_LONGER.search(t) else 0.75
        base = out.total_duration_s
        out.total_duration_s = None if base is None else base * f
        for a in out.actions:
            if a.duration_s is not None:
                a.duration_s *= f
            if a.distance_m is not None:
                a.distance_m *= f
        changes.append("longer" if f > 1 else "shorter")
    if new.total_duration_s is None and not new.actions and (m := _TIME_RE.search(t)) and m.group(1) not in (
        "at", "after"
    ):
        new.total_duration_s = _seconds(m.group(2), m.group(3))
    if new.total_duration_s is not None and not new.actions:
        out.total_duration_s = new.total_duration_s
        changes.append(f"duration {new.total_duration_s:g}s")
    if new.style is not None:
        out.style = new.style
        changes.append(f"style {new.style}")
    if new.actions:
        if _EDIT_REPLACE.search(t) and out.actions:
            out.actions = new.actions
            changes.append("replaced the actions")
        elif _EDIT_DROP.search(t):
            names = {a.action for a in new.actions}
            out.actions = [a for a in out.actions if a.action not in names] or out.actions
            changes.append(f"removed {', '.join(sorted(names))}")
        elif _EDIT_ADD.search(t) or _EDIT_NEXT.search(t) or _KEYFRAME_END.search(t) or _EDIT_START.search(t):
            if _EDIT_START.search(t):
                out.actions = new.actions + out.actions
            else:
                out.actions = out.actions + new.actions
            changes.append(f"added {', '.join(a.action for a in new.actions)}")
            out.total_duration_s = None  # the old total no longer fits
        else:
            return new, ["new request"]
    # Photos of earlier turns keep their times; hints in this message are for the photos it brings.
    out.keyframe_hints = list(new.keyframe_hints)
    if new.keyframe_hints:
        changes.append(f"keyframe times {new.keyframe_hints}")
    if not changes:
        out.ignored = [text]
    return out, changes


def parsed_to_dict(req: ParsedRequest) -> dict[str, Any]:
    """JSON-safe form for the graph state (checkpointed between conversation turns)."""
    from dataclasses import asdict

    return asdict(req)


def parsed_from_dict(d: dict[str, Any]) -> ParsedRequest:
    d = dict(d)
    d["actions"] = [ParsedAction(**a) for a in d.get("actions", [])]
    return ParsedRequest(**d)
