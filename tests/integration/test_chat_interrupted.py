"""A chat turn killed with SIGKILL mid-turn: the next turn must not build on the edit the user never
saw. A real process runs a real `Conversation` (SQLite checkpointer, the CLI's own context with the
tiny model) and is killed by a real SIGKILL while its second turn generates; this process then
resumes the thread from the same database file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CHILD = """
import os, signal, sys, time
from pathlib import Path
from ikmo.agents.context import Context
from ikmo.config import load_settings
from ikmo.agents.run import Conversation
from ikmo.tools.local import LocalToolbox

db, weights, out = map(Path, sys.argv[1:4])
settings = load_settings(weights=weights, critique_rounds=0, preview=False, tool_process=False)
ctx = Context(settings=settings, toolbox=LocalToolbox(settings))
conv = Conversation(db, "t1", ctx, out)
print("turn 1:", conv.say("walk forward 2 meters")["answer"], flush=True)

def die(event):
    # The edit is parsed and planned, its motion not yet shown: once its parse is in the database
    # (checkpoints are written in the background), kill this process as `kill -9` would.
    if event.get("stage") == "generate":
        for _ in range(200):
            if "wave" in str(conv.values().get("parsed")):
                break
            time.sleep(0.05)
        print("edit saved:", "wave" in str(conv.values().get("parsed")), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

conv.say("add a wave at the end", on_event=die)
print("not killed", flush=True)
"""


def _conversation(db: Path, thread: str, weights: Path, out: Path):  # noqa: ANN202
    from ikmo.agents.context import Context
    from ikmo.agents.run import Conversation
    from ikmo.config import load_settings
    from ikmo.tools.local import LocalToolbox

    settings = load_settings(weights=weights, critique_rounds=0, preview=False, tool_process=False)
    return Conversation(db, thread, Context(settings=settings, toolbox=LocalToolbox(settings)), out)


def test_a_turn_killed_mid_run_is_dropped_and_said(tmp_path: Path, weights_dir: Path) -> None:
    db, out = tmp_path / "chat.sqlite", tmp_path / "out"
    env = {**os.environ, "IKMO_TOOL_PROCESS": "false"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(db), str(weights_dir), str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stdout + proc.stderr  # SIGKILL, in the middle of turn 2
    assert "turn 1:" in proc.stdout and "edit saved: True" in proc.stdout and "not killed" not in proc.stdout

    conv = _conversation(db, "t1", weights_dir, out)
    try:
        assert conv.interrupted_turn() == "add a wave at the end"
        final = conv.say("make it faster")
        assert final["status"] == "ok"
        assert "'add a wave at the end' was interrupted before it finished and was not applied" in final["answer"]
        assert conv.interrupted_turn() is None
        recovered = final["description"]
    finally:
        conv.close()

    # The same conversation without the killed turn: the same motion description (no wave).
    control = _conversation(tmp_path / "control.sqlite", "c1", weights_dir, tmp_path / "control")
    try:
        control.say("walk forward 2 meters")
        expected = control.say("make it faster")["description"]
    finally:
        control.close()
    assert recovered == expected
    assert "wave" not in recovered.text
