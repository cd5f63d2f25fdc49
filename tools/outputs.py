"""The files of a finished run, in its output folder: the chosen attempt's motion files promoted
from `attempts/NN/`, and the run's records (`agent_spec.json`, `transcript.json` / `.md`,
`result.json`). Names are the contract of the README's *Outputs* table."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ikmo.motion_model.constraints import MotionResult, MotionSpec
from ikmo.motion_model.fileio import write_json, write_text

from .exports import ALL_FORMATS, FILE_NAMES
from .toolbox import Toolbox


def promote_attempt(src: Path, dst: Path, spec: MotionSpec, toolbox: Toolbox, preview: bool = True
                    ) -> dict[str, str]:
    """The chosen attempt's files in `dst`: copy what the attempt wrote (joints, spec, config, report),
    write the formats it did not (features, BVH, SMPL, and preview.mp4 unless `preview` is off) from
    its joints (T, 22, 3). Returns {format or file stem: path}, the keys of `generate_motion`'s files."""
    files: dict[str, str] = {}
    by_name = {name: fmt for fmt, name in FILE_NAMES.items()}
    for f in sorted(src.iterdir()) if src.is_dir() else []:
        if f.is_file():
            target = dst / f.name
            shutil.copy2(f, target)
            files[by_name.get(f.name, f.stem)] = str(target)
    wanted = [f for f in ALL_FORMATS if f not in files and (preview or f != "preview")]
    joints_path = src / FILE_NAMES["joints"]
    if wanted and joints_path.is_file():
        files.update(toolbox.write_motion_files(np.load(joints_path), dst, spec=spec, formats=wanted))
    return files


def transcript_markdown(events: Sequence[Mapping[str, Any]]) -> str:
    """Human-readable transcript: one line per event ({"t", "node", "message"})."""
    t0 = events[0]["t"] if events else 0.0
    lines = ["# IKMo agent transcript", ""]
    for e in events:
        lines.append(f"- **{e['node']}** (+{e['t'] - t0:.2f}s): {e['message']}")
    return "\n".join(lines) + "\n"


def write_run_records(out_dir: Path, agent_spec: Mapping[str, Any], transcript: Sequence[Mapping[str, Any]],
                      result: MotionResult | None, files: Mapping[str, str]) -> dict[str, str]:
    """Write agent_spec.json, transcript.json and transcript.md (and result.json when the run made a
    motion) into `out_dir`. Returns `files` with the records added."""
    out = dict(files)
    out["agent_spec"] = str(write_json(out_dir / "agent_spec.json", dict(agent_spec)))
    out["transcript"] = str(write_json(out_dir / "transcript.json", list(transcript)))
    out["transcript_md"] = str(write_text(out_dir / "transcript.md", transcript_markdown(transcript)))
    if result is not None:
        out["result"] = str(out_dir / "result.json")
        write_json(out_dir / "result.json", result.model_copy(update={"files": out}).model_dump(mode="json"))
    return out
