"""What a user hands the agents at the edge, checked before anything heavy runs: keyframe arguments
(`IMAGE` or `IMAGE@SECONDS`), photo paths, chat thread names and message texts.

Light on purpose (no langgraph, no torch): `ikmo generate` and `ikmo chat` check their flags with
it before the tool process starts or the model loads, so a typo costs a fraction of a second.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from ikmo.motion_model.constraints import MAX_DURATION_S
from ikmo.motion_model.errors import InputFileError, UsageError, quote_value

from . import state as S

# A thread id names a folder under `ikmo chat --out` and a row of the SQLite file: a name, never a path.
_THREAD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_image_path(path: str | Path, what: str = "keyframe image") -> Path:
    """The absolute path of a photo the user named; InputFileError when it is not a regular file."""
    p = Path(path).expanduser()
    hint = "give the path of a photo (JPEG, PNG, ...)"
    if not p.exists():
        raise InputFileError(f"{what} {path} does not exist; {hint}")
    if p.is_dir():
        raise InputFileError(f"{what} {path} is a folder, not a photo; {hint}")
    if not p.is_file():
        raise InputFileError(f"{what} {path} is not a regular file (a device or a pipe?); {hint}")
    return p.resolve()


def parse_time(text: str, arg: str) -> float:
    """The SECONDS of `IMAGE@SECONDS` (a trailing `s` allowed): a finite number >= 0. A time after the
    motion's end is the agents' to judge (a question in a chat, a clear error in a batch run)."""
    raw = text[:-1] if text.endswith("s") else text
    try:
        seconds = float(raw)
    except ValueError:
        raise UsageError(f"keyframe {quote_value(arg)}: {quote_value(text)} is not a time; write IMAGE@SECONDS, "
                         "e.g. photo.jpg@2.5") from None
    if not (math.isfinite(seconds) and seconds >= 0):
        raise UsageError(f"keyframe {quote_value(arg)}: the time {text} is not a number of seconds >= 0 (a motion "
                         f"lasts up to {MAX_DURATION_S:g} s); give one, e.g. photo.jpg@2.5")
    return seconds


def parse_keyframe_arg(arg: str) -> S.ImageRef:
    """'photo.jpg@3.5' → ImageRef(path, 3.5); 'photo.jpg' → time chosen by the agents.

    A name that exists as it is stays a path even when it holds an `@`; otherwise the text after
    the last `@` is the time, and a bad time is named as such (not as a missing photo).
    """
    path, time_s = arg, None
    if "@" in arg and not Path(arg).expanduser().exists():
        path, _, when = arg.rpartition("@")
        time_s = parse_time(when, arg)
    return S.ImageRef(path=str(check_image_path(path)), time_s=time_s)


def check_thread_id(thread_id: str) -> str:
    """A chat thread id: a name of letters, digits, '-', '_' and '.', never a path."""
    if not _THREAD_ID.fullmatch(thread_id) or ".." in thread_id:
        raise UsageError(f"--thread {quote_value(thread_id)}: a thread id is a name of 1-64 letters, digits, '-', "
                         "'_' or '.' (no '/' or '..'); use the id `ikmo chat` printed, or a new name")
    return thread_id


def check_text(text: str, what: str = "the text") -> str:
    """A request's words: at most `MAX_TEXT_CHARS`, and valid Unicode (a file's raw bytes are not)."""
    if len(text) > S.MAX_TEXT_CHARS:
        raise UsageError(f"{what} has {len(text)} characters, more than the {S.MAX_TEXT_CHARS} allowed; "
                         "say it in fewer words")
    if not S.is_valid_unicode(text):
        raise UsageError(f"{what} holds bytes that are not valid UTF-8 text; type it again or fix its encoding")
    return text
