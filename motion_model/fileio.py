"""File writing that never leaves a half-written file: write to a temporary name, then rename."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ikmo.motion_model.errors import OutputFileError


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on error delete it.

    The temporary name keeps the suffix so that writers that dispatch on it (imageio, np.save) work.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.partial{final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
    return Path(path)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def ensure_output_dir(path: str | os.PathLike[str], what: str = "--out", label: str | None = None) -> Path:
    """Prove that the output folder `path` can be made and written, before any work, leaving nothing.

    The folder and its missing parents are created, a probe file written and removed, then the
    folders this made are removed again (a command that fails later has written nothing; the run
    creates the folder when it writes). Raises OutputFileError naming `what` (the flag) when it is
    a file, cannot be created, or cannot be written (read-only, /proc, full disk): one line, said
    before minutes of work, not after. label: how the message names the folder (default "`what`
    `path`").
    """
    p = Path(path)
    label = label or f"{what} {p}"
    if p.exists() and not p.is_dir():
        raise OutputFileError(f"{label} is a file, not a folder; give a folder (it is created if missing)")
    made = [d for d in (p, *p.parents) if not d.exists()]
    probe = p / f".ikmo-write-check-{os.getpid()}"
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OutputFileError(f"cannot write into {label}: {e.strerror or e}; choose a folder you can write to"
                              ) from e
    finally:
        for d in made:  # deepest first
            try:
                d.rmdir()
            except OSError:
                break
    return p


def ensure_output_file(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """Check that the file `path` can be written (its folder is created); OutputFileError if not."""
    p = Path(path)
    if p.is_dir():
        raise OutputFileError(f"{what} {p} is a folder; give a file name (e.g. {p / 'out.json'})")
    ensure_output_dir(p.parent, label=f"the folder of {what} {p}")
    return p
