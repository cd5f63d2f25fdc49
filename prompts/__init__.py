"""Agent prompts, one text file per agent, loaded by name (`load_prompt`)."""

from __future__ import annotations

from importlib import resources


def load_prompt(name: str) -> str:
    """Return the text of prompt `name` (file `prompts/<name>.md` or `.txt`)."""
    root = resources.files(__name__)
    for ext in (".md", ".txt"):
        f = root / f"{name}{ext}"
        if f.is_file():
            return f.read_text(encoding="utf-8")
    raise FileNotFoundError(f"no prompt named {name!r} in {root}")
