"""Captions in HumanML3D's style, written from the labels of our motion-capture sources.

Every clip gets several (≥ 3) varied English sentences, lowercase, third person, present tense
("a person walks forward tiredly."). Choices among paraphrases are deterministic: seeded by the
clip id, so a rebuild writes the same texts. Mirrored clips get left/right swapped captions
(`mirror_caption`).

HumanML3D text lines are ``caption#tokens#start#end``; tokens are ``lemma/POS`` pairs. Ours come
from a small lexicon tagger (`pos_tokens`), not spaCy: verbs of our vocabulary are lemmatised,
words outside the lexicon are tagged NOUN. Good enough for word-vector + POS text encoders; not a
linguistic gold standard. ``start#end`` is ``0.0#0.0`` (the caption covers the whole clip).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

SUBJECTS = ("a person", "someone", "the person", "a human")

# Bandai Namco content labels → verb phrases (third person).
CONTENT_PHRASES: dict[str, tuple[str, ...]] = {
    "walk": ("walks forward", "walks straight ahead", "takes several steps forward"),
    "run": ("runs forward", "jogs forward", "runs straight ahead"),
    "dash": ("sprints forward", "dashes forward quickly", "runs forward at full speed"),
    "walk-back": ("walks backwards", "steps backward", "walks backward slowly step by step"),
    "walk-left": ("walks to the left", "walks towards their left", "moves to the left walking"),
    "walk-right": ("walks to the right", "walks towards their right", "moves to the right walking"),
    "walk-turn-left": ("walks forward and turns left", "walks and makes a left turn", "walks in a curve to the left"),
    "walk-turn-right": (
        "walks forward and turns right",
        "walks and makes a right turn",
        "walks in a curve to the right",
    ),
    "bow": ("bows", "bows politely", "bends forward at the waist in a bow"),
    "bye": ("waves goodbye", "waves a hand to say goodbye", "says goodbye with a wave"),
    "byebye": ("waves goodbye several times", "waves goodbye eagerly", "waves a hand back and forth to say bye"),
    "guide": (
        "gestures with an arm to guide someone",
        "points the way with an open hand",
        "shows someone the way with a sweeping arm",
    ),
    "respond": (
        "responds to someone with a gesture",
        "answers someone with a nod and a gesture",
        "reacts to someone with a small gesture",
    ),
    "call": ("calls someone over with a hand gesture", "beckons someone to come closer", "waves someone over"),
    "punch": ("throws punches", "punches forward", "punches with the fists"),
    "kick": ("kicks", "kicks forward with a leg", "throws a kick"),
    "slash": ("slashes with a sword", "swings an imaginary sword", "makes slashing motions with the arms"),
    "dance-long": ("dances", "performs a long dance", "dances energetically"),
    "dance-short": ("dances", "performs a short dance", "does a quick dance"),
    "wave-both-hands": ("waves both hands", "waves with both hands", "waves both arms in the air"),
    "wave-left-hand": ("waves the left hand", "waves with the left hand", "raises the left hand and waves"),
    "wave-right-hand": ("waves the right hand", "waves with the right hand", "raises the right hand and waves"),
    "raise-up-both-hands": ("raises both hands", "raises both arms up", "lifts both hands above the head"),
    "raise-up-left-hand": ("raises the left hand", "lifts the left arm up", "raises the left arm above the head"),
    "raise-up-right-hand": ("raises the right hand", "lifts the right arm up", "raises the right arm above the head"),
}

# Bandai Namco style labels (datasets 1 and 2) → adverbial phrases appended to the verb phrase.
STYLE_PHRASES: dict[str, tuple[str, ...]] = {
    "normal": ("normally", "in a normal way", "in a relaxed, ordinary way"),
    "happy": ("happily", "cheerfully", "in a happy mood"),
    "sad": ("sadly", "in a sad, dejected way", "with a sad, slumped posture"),
    "angry": ("angrily", "in an angry way", "furiously"),
    "proud": ("proudly", "with a proud posture", "with chest out, full of pride"),
    "not-confident": ("timidly", "without confidence", "hesitantly"),
    "masculinity": ("in a masculine way", "with a manly, broad posture", "in a macho way"),
    "masculine": ("in a masculine way", "with a manly, broad posture", "in a macho way"),
    "feminine": ("in a feminine way", "gracefully", "in a dainty, feminine manner"),
    "childish": ("childishly", "like a child", "in a playful, childlike way"),
    "youthful": ("in a youthful way", "energetically like a young person", "with youthful energy"),
    "old": ("like an old person", "slowly like an elderly person", "in a frail, elderly way"),
    "elderly": ("like an elderly person", "slowly like an old person", "in a frail, elderly way"),
    "tired": ("tiredly", "wearily", "in a tired way"),
    "exhausted": ("in an exhausted way", "wearily, as if exhausted", "with exhaustion"),
    "active": ("actively", "energetically", "in a lively way"),
    "musical": ("rhythmically", "like in a musical", "in a theatrical, musical way"),
    "giant": ("like a giant", "with heavy movements like a giant", "in a huge, lumbering way"),
    "chimpira": ("like a thug", "in a swaggering, thuggish way", "like a street punk"),
}

IDLE_PHRASES: dict[str, tuple[str, ...]] = {
    "acted": (
        "stands idle, shifting weight from foot to foot",
        "stands in place and waits, moving slightly",
        "stands still and idly looks around",
        "is standing and waiting patiently",
        "stands idle and fidgets a little",
        "stands in place, swaying gently",
    ),
    "genuine": (
        "stands idle, relaxed, while waiting",
        "stands naturally in place and waits",
        "stands still, shifting weight now and then",
        "is standing around idly",
        "stands in place with small natural movements",
        "waits standing, calm and relaxed",
    ),
}


def _rng_ints(key: str, n: int) -> list[int]:
    """n deterministic non-negative ints from a string (stable across runs and machines)."""
    digest = hashlib.sha256(key.encode()).digest()
    return [int.from_bytes(digest[2 * i : 2 * i + 2], "big") for i in range(n)]


def _pick(key: str, phrase_lists: Sequence[Sequence[str]], n: int, make) -> list[str]:
    """Up to n distinct sentences, one item from each list, chosen by hash of key.

    Walks the lists diagonally from key-dependent offsets (so consecutive captions differ in
    every slot: subject, verb phrase and style), then the remaining combinations if needed.
    """
    r = _rng_ints(key, len(phrase_lists))
    total = 1
    for lst in phrase_lists:
        total *= len(lst)
    diagonal = [
        [(off + k) % len(lst) for lst, off in zip(phrase_lists, r, strict=True)]
        for k in range(max(len(lst) for lst in phrase_lists))
    ]
    rest = []
    for k in range(total):
        idx, q = [], k
        for lst, off in zip(phrase_lists, r, strict=True):
            idx.append((q + off) % len(lst))
            q //= len(lst)
        rest.append(idx)
    out: list[str] = []
    for idx in diagonal + rest:
        s = make(*[lst[i] for lst, i in zip(phrase_lists, idx, strict=True)])
        if s not in out:
            out.append(s)
        if len(out) == n:
            break
    return out


def _sentence(*parts: str) -> str:
    return " ".join(p for p in parts if p).strip() + "."


def bandai_captions(content: str, style: str, key: str, n: int = 4) -> list[str]:
    """Captions for a Bandai Namco clip, e.g. ("walk", "tired") → "a person walks forward tiredly."

    Raises:
        KeyError: an unknown content or style label.
    """
    vps, advs = CONTENT_PHRASES[content], STYLE_PHRASES[style]
    return _pick(key, [SUBJECTS, vps, advs], n, lambda s, v, a: _sentence(s, v, a))


def idle_captions(kind: str, key: str, n: int = 4) -> list[str]:
    """Captions for a ReActIdle clip; kind is "acted" or "genuine"."""
    return _pick(key, [SUBJECTS, IDLE_PHRASES[kind]], n, lambda s, v: _sentence(s, v))


# ----------------------------------------------------------------------------- CMU descriptions


def _words(text: str) -> list[str]:
    return text.split()


_ADV_OF = {
    "slow": "slowly",
    "brisk": "briskly",
    "fast": "quickly",
    "quick": "quickly",
    "forward": "forward",
    "backward": "backward",
    "sideways": "sideways",
}
_IRREGULAR = {"do": "does", "go": "goes", "have": "has", "be": "is"}
VERBS = frozenset(_words(
    "walk run jog jump hop skip dance punch strike kick bend scoop rise lift wash stand sit climb balance "
    "reach grab tiptoe turn wave bow stride step throw catch swing crawl dribble shuffle march stretch "
    "squat kneel lie roll spin twist push pull carry pick drop stumble fall limp sneak lean look point "
    "clap shake nod salute swim box fight play sweep mop drink eat raise lower hold move stroll pace leap "
    "dash sprint slash call respond guide shift sway wait fidget answer react beckon gesture throw say "
    "show take make swing perform do lunge hang swim"
))


def _third_person(verb: str) -> str:
    if verb in _IRREGULAR:
        return _IRREGULAR[verb]
    if re.search(r"(s|sh|ch|x|z|o)$", verb):
        return verb + "es"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ies"
    return verb + "s"


def _verb_phrase(phrase: str) -> str:
    """ "slow walk" → "walks slowly"; "jump up to grab" → "jumps up to grab"; "swordplay" → "does swordplay"."""
    words = phrase.split()
    pre_adv = []
    while words and words[0] in _ADV_OF and len(words) > 1:
        pre_adv.append(_ADV_OF[words.pop(0)])
    if not words:
        return ""
    if words[0] in VERBS:
        vp = [_third_person(words[0]), *words[1:]]
    elif len(words) == 1:  # an activity noun: "swordplay", "boxing"
        vp = ["does", words[0]]
    else:  # a manner noun phrase without a verb: "exaggerated stride"
        vp = ["moves with", "an" if words[0][0] in "aeiou" else "a", *words]
    return " ".join(vp + pre_adv)


def cmu_captions(description: str, key: str, n: int = 4) -> list[str]:
    """Captions from a CMU trial description such as "run/jog", "walk, exaggerated stride" or
    "jump up to grab, reach for, tiptoe": "/" separates alternatives, "," a sequence.

    Raises:
        ValueError: an empty description.
    """
    desc = re.sub(r"\s+", " ", description.lower().replace("-", " ")).strip(" .")
    if not desc:
        raise ValueError("empty CMU description")
    steps = [s.strip() for s in desc.split(",") if s.strip()]
    alternatives_per_step = [[_verb_phrase(a.strip()) for a in s.split("/") if a.strip()] for s in steps]
    bodies: list[str] = []
    for k in range(max(len(a) for a in alternatives_per_step)):
        vps = [alts[k % len(alts)] for alts in alternatives_per_step]
        vps = [v for v in vps if v]
        if len(vps) > 1:
            bodies.append(", then ".join(vps[:-1]) + " and then " + vps[-1])
            bodies.append(", ".join(vps[:-1]) + " and " + vps[-1])
        else:
            bodies.append(vps[0])
    bodies = list(dict.fromkeys(bodies))
    return _pick(key, [SUBJECTS, bodies], n, lambda s, b: _sentence(s, b))


# ----------------------------------------------------------------------------- mirroring, tokens

_SWAPS = {
    "left": "right",
    "right": "left",
    "clockwise": "counterclockwise",
    "counterclockwise": "clockwise",
    "anticlockwise": "clockwise",
    "counter-clockwise": "clockwise",
    "leftward": "rightward",
    "rightward": "leftward",
    "leftwards": "rightwards",
    "rightwards": "leftwards",
}
_SWAP_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _SWAPS), key=len, reverse=True)) + r")\b", re.IGNORECASE)


def mirror_caption(text: str) -> str:
    """Swap left/right (and clockwise/counterclockwise) words, keeping their capitalisation."""

    def swap(m: re.Match[str]) -> str:
        w = m.group(0)
        s = _SWAPS[w.lower()]
        return s.capitalize() if w[0].isupper() else s

    return _SWAP_RE.sub(swap, text)


def sequence_caption(first: str, second: str) -> str:
    """One caption for two motions played one after the other: "a person walks forward, then a
    person turns around." (the first caption's final stop dropped, the second's initial capital)."""
    a = first.strip().rstrip(".").rstrip()
    b = second.strip()
    word = b.split(" ", 1)[0] if b else ""
    if word != "I" and not (len(word) > 1 and word.isupper()):  # keep "I" and acronyms
        b = b[:1].lower() + b[1:]
    return f"{a}, then {b}"


_WALK_RE = re.compile(r"\b(walk|walks|walking|steps?|stepping)\b", re.IGNORECASE)
_AHEAD_RE = re.compile(r"\b(straight ahead|forwards?|ahead)\b", re.IGNORECASE)
# Words that a walk played backwards would make false ("turns left" reversed is not "turns left").
_NOT_REVERSIBLE_RE = re.compile(
    r"\b(turn\w*|left|right|circle\w*|around|round|back\w*|up|down|sit\w*|stand\w*|jump\w*|pick\w*|"
    r"curve\w*|diagonal\w*|sideways|zig\w*|stop\w*|then|and)\b", re.IGNORECASE)


def backward_caption(text: str) -> str | None:
    """The caption of a forward walk played backwards in time ("a person walks forward." → "a person
    walks backward."), or None when `text` is not a plain forward walk, whose reversal it could not
    name (a turn, a sit-down, a walk "and" something else)."""
    if not _WALK_RE.search(text) or not _AHEAD_RE.search(text) or _NOT_REVERSIBLE_RE.search(text):
        return None
    return _AHEAD_RE.sub("backward", text)


_POS_LEXICON: dict[str, str] = {
    **dict.fromkeys(_words(
        "a an the their his her its some this that these those"
    ), "DET"),
    **dict.fromkeys(_words(
        "someone they it something he she them him"
    ), "PRON"),
    **dict.fromkeys(_words(
        "to with of in on for from towards toward like at above over into onto by around behind through "
        "across as"
    ), "ADP"),
    **dict.fromkeys(_words(
        "and then or but while"
    ), "CCONJ"),
    **dict.fromkeys(_words(
        "forward forwards backward backwards away back up down still again ahead sideways now straight closer "
        "several"
    ), "ADV"),
    **dict.fromkeys(_words(
        "left right both full small quick long short normal relaxed ordinary sad happy angry proud broad "
        "manly young old elderly frail heavy huge natural calm open imaginary exaggerated uneven playful "
        "childlike lively theatrical musical dejected slumped macho dainty feminine masculine youthful tired "
        "swaggering thuggish lumbering sweeping high"
    ), "ADJ"),
    "is": "AUX",
}


def _lemma_verb(word: str) -> str | None:
    if word in VERBS:
        return word
    for inv, v in ((b, a) for a, b in _IRREGULAR.items()):
        if word == inv:
            return v
    for cand in (
        word[:-3] + "y" if word.endswith("ies") else None,
        word[:-2] if word.endswith("es") else None,
        word[:-1] if word.endswith("s") else None,
        word[:-3] if word.endswith("ing") else None,
        word[:-3] + "e" if word.endswith("ing") else None,
    ):
        if cand and cand in VERBS:
            return cand
    return None


def pos_tokens(text: str) -> str:
    """HumanML3D-style ``lemma/POS`` tokens from a lexicon (see the module docstring)."""
    out = []
    for w in re.findall(r"[a-z]+(?:-[a-z]+)*|\d+", text.lower()):
        if w in _POS_LEXICON:
            out.append(f"{w}/{_POS_LEXICON[w]}")
        elif w.isdigit():
            out.append(f"{w}/NUM")
        elif (lemma := _lemma_verb(w)) is not None:
            out.append(f"{lemma}/VERB")
        elif w.endswith("ly"):
            out.append(f"{w}/ADV")
        else:
            out.append(f"{w}/NOUN")
    return " ".join(out)


def text_line(caption: str, start_s: float = 0.0, end_s: float = 0.0) -> str:
    """One line of a HumanML3D texts/<id>.txt file: ``caption#tokens#start#end``."""
    if "#" in caption or "\n" in caption:
        raise ValueError(f"caption may not contain '#' or a newline: {caption!r}")
    return f"{caption}#{pos_tokens(caption)}#{start_s:.1f}#{end_s:.1f}"


def parse_text_line(line: str) -> tuple[str, float, float]:
    """(caption, start_s, end_s) from a ``caption#tokens#start#end`` line (NaN fields read as 0)."""
    parts = line.rstrip("\n").split("#")
    caption = parts[0].strip()
    start = _float0(parts[2]) if len(parts) > 2 else 0.0
    end = _float0(parts[3]) if len(parts) > 3 else 0.0
    return caption, start, end


def _float0(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        return 0.0
    return 0.0 if v != v else v
