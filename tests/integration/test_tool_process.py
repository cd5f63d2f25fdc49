"""The tool process (`ikmo.tools.worker`): a real child process with the real pose tools, motion
model and exports, against the same tools in this process; errors crossing the boundary; and
`ikmo generate`, whose own process must not import torch when the tools run in the child."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_graph_offline import ctx

from ikmo.agents.run import raise_if_failed, run_request
from ikmo.agents.state import ImageRef, MotionRequest
from ikmo.motion_model.errors import ConfigError, InputFileError
from ikmo.tools.generate import generate_motion
from ikmo.tools.smpl_fit import read_photo
from ikmo.tools.toolbox import PhotoReading, ToolSettings
from ikmo.tools.worker import ToolProcess, ToolProcessError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tools(weights_dir: Path):
    tp = ToolProcess(threads=1, warm_pose=True)
    tp.load(ToolSettings(weights=weights_dir))
    yield tp
    tp.close()


def test_same_results_as_in_process(tools: ToolProcess, model, photos: list[Path], tmp_path: Path) -> None:
    remote = tools.read_photo(photos[1], 2.0)
    local = read_photo(photos[1], 2.0)
    assert isinstance(remote, PhotoReading) and remote.image is None and remote.check_image is None
    # the notes carry the fit's timing; everything else is the same reading
    assert remote.keyframe.model_dump(exclude={"notes"}) == local.keyframe.model_dump(exclude={"notes"})
    assert remote.keyframe.time_s == 2.0
    assert remote.fit.error_m == pytest.approx(local.fit.error_m, abs=1e-9)
    assert np.array_equal(remote.landmarks.visibility, local.landmarks.visibility)

    req = MotionRequest(text="walk forward 2 meters in 6 seconds and strike this pose at the end",
                        images=[ImageRef(path=str(photos[1]))], out_dir=str(tmp_path / "g"), seed=3)
    spec = raise_if_failed(run_request(req, ctx(model))).spec
    steps: list[tuple[int, int]] = []
    a = tools.generate_motion(spec, tmp_path / "a", formats=("joints",), on_step=lambda s, t: steps.append((s, t)))
    b = generate_motion(spec, tmp_path / "b", model=model, formats=("joints",))
    assert np.array_equal(np.load(a.files["joints"]), np.load(b.files["joints"]))  # same seed, same motion
    assert a.metrics == b.metrics and a.spec == spec
    assert steps and steps[-1] == (4, 4) and [s for s, _ in steps] == sorted(s for s, _ in steps)

    files = tools.write_motion_files(np.load(a.files["joints"]), tmp_path / "x", spec=spec,
                                     formats=("bvh", "features", "smpl"))
    assert {Path(f).name for f in files.values()} == {"motion.bvh", "features.npy", "motion_smpl.npz"}
    assert all(Path(f).is_file() for f in files.values())


def test_errors_cross_as_themselves_and_the_child_stays_up(tools: ToolProcess, photos: list[Path],
                                                           tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="nope.png"):
        tools.read_photo(tmp_path / "nope.png", 0.0)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(InputFileError, match="junk.png"):
        tools.read_photo(junk, 0.0)
    with pytest.raises(ToolProcessError, match="no call 'exec'"):  # names, never code
        tools._call("exec", source="import os")
    assert tools.read_photo(photos[0], 1.0).keyframe.time_s == 1.0


def test_photo_and_check_image_for_a_vision_provider(weights_dir: Path, photos: list[Path]) -> None:
    with ToolProcess(threads=1) as tp:
        tp.load(ToolSettings(weights=weights_dir))
        reading = tp.read_photo(photos[1], 0.0, with_images=True)
    assert reading.image is not None and reading.image.shape == (384, 384, 3)
    check = reading.overlay()
    assert check.size[1] >= 384  # a PIL image: the photo with landmarks beside the fitted skeleton


def test_load_error_reaches_the_caller(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with ToolProcess(threads=1) as tp:
        tp.load(ToolSettings(weights=empty))
        with pytest.raises(ConfigError, match="no model weights"):
            tp.wait_ready()
        with pytest.raises(ConfigError, match="no model weights"):  # and again, not a hang
            tp.read_photo(empty / "a.png", 0.0)


def test_a_dead_child_is_a_clear_error(weights_dir: Path, photos: list[Path]) -> None:
    tp = ToolProcess(threads=1)
    tp.load(ToolSettings(weights=weights_dir))
    assert tp.wait_ready()["pid"] == tp._proc.pid
    tp._proc.kill()
    tp._proc.wait()
    with pytest.raises(ToolProcessError, match="IKMO_TOOL_PROCESS=false"):
        tp.read_photo(photos[0], 0.0)
    tp.close()


# The CLI in a subprocess; reports whether its own process imported torch.
_RUN_CLI = """
import json, sys
from ikmo.cli import main
sys.argv = ["ikmo", *json.loads(sys.argv[1])]
try:
    main()
finally:
    print(json.dumps({"torch_in_parent": "torch" in sys.modules}))
"""


def _cli(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _RUN_CLI, json.dumps(args)], capture_output=True, text=True,
                          env={**os.environ, "IKMO_PREVIEW": "false", **env}, timeout=300)


def test_cli_keeps_torch_out_of_the_agents_process(weights_dir: Path, photos: list[Path], tmp_path: Path) -> None:
    args = ["generate", "--text", "walk forward 2 meters and strike this pose at the end", "--keyframe",
            str(photos[1]), "--weights", str(weights_dir), "--no-progress", "--critique-rounds", "1"]
    split = _cli([*args, "--out", str(tmp_path / "split")])
    assert split.returncode == 0, split.stderr[-2000:]
    assert json.loads(split.stdout.strip().splitlines()[-1]) == {"torch_in_parent": False}
    # mediapipe's native start-up notes go to the tool process's DEBUG log, not to the user
    assert "TensorFlow Lite" not in split.stderr and "inference_feedback_manager" not in split.stderr
    one = _cli([*args, "--out", str(tmp_path / "one")], IKMO_TOOL_PROCESS="false")
    assert one.returncode == 0, one.stderr[-2000:]
    assert json.loads(one.stdout.strip().splitlines()[-1]) == {"torch_in_parent": True}
    for name in ("joints.npy", "features.npy"):  # wherever the tools ran: the same motion, the same files
        assert np.array_equal(np.load(tmp_path / "split" / name), np.load(tmp_path / "one" / name)), name
    assert (tmp_path / "split" / "motion.bvh").read_bytes() == (tmp_path / "one" / "motion.bvh").read_bytes()
    spec_a = json.loads((tmp_path / "split" / "agent_spec.json").read_text())
    spec_b = json.loads((tmp_path / "one" / "agent_spec.json").read_text())
    assert [a["metrics"] for a in spec_a["attempts"]] == [a["metrics"] for a in spec_b["attempts"]]


def test_cli_bad_weights_fail_at_once(tmp_path: Path) -> None:
    bad = _cli(["generate", "--text", "walk", "--weights", str(tmp_path / "none"), "--out", str(tmp_path / "o"),
                "--no-progress"])
    assert bad.returncode == 2 and "no model weights" in bad.stderr
    assert not (tmp_path / "o").exists()  # nothing written


def test_cli_chat_through_the_tool_process(weights_dir: Path, tmp_path: Path) -> None:
    """A piped conversation: a request, a follow-up that edits it, /quit; both turns written."""
    chat = subprocess.run([sys.executable, "-m", "ikmo.cli", "chat", "--weights", str(weights_dir), "--db",
                           str(tmp_path / "chat.sqlite"), "--out", str(tmp_path / "runs"), "--thread", "t1"],
                          input="walk forward 3 meters\nmake it slower\n/quit\n", capture_output=True, text=True,
                          env={**os.environ, "IKMO_PREVIEW": "false", "IKMO_CRITIQUE_ROUNDS": "0"}, timeout=300)
    assert chat.returncode == 0, chat.stderr[-2000:]
    answers = [line for line in chat.stdout.splitlines() if "ikmo> Made a" in line]
    assert len(answers) == 2 and "slowly" in answers[1]
    assert f"files in {tmp_path / 'runs' / 't1' / 'turn001'}" in chat.stdout  # each answer says where its files are
    durations = [json.loads((tmp_path / "runs" / "t1" / f"turn{i:03d}" / "agent_spec.json").read_text())
                 ["description"]["duration_s"] for i in range(2)]
    assert durations[1] > durations[0] * 1.2


def test_bench_agents_times_both_modes(weights_dir: Path, tmp_path: Path) -> None:
    """`ikmo bench agents` on the tiny model, one repeat: every mode timed, the ratios and the
    same-motion check filled from the run itself."""
    from ikmo.eval.bench_agents import format_table, run

    res = run(repeats=1, weights=weights_dir, out_json=tmp_path / "b.json", critique_rounds=0)
    assert json.loads((tmp_path / "b.json").read_text()) == res
    for case in ("text", "text+2img"):
        row = res["cases"][case]
        assert row["modes_identical"] is True
        for mode in ("cli", "cli_inproc", "serve", "tool"):
            assert row[f"median_{mode}_s"] > 0 and row[f"median_{mode}_cpu_s"] > 0
        assert row["inproc_over_cli"] == pytest.approx(row["median_cli_inproc_s"] / row["median_cli_s"], abs=0.01)
        assert row["stages_cli"]["generate"] > 0
    assert "inproc/cli" in format_table(res)


def test_native_stderr_filter_drops_only_the_chatter() -> None:
    """What native code writes to fd 2 in the tool process: mediapipe's notes are dropped (to DEBUG),
    errors and anything else pass, and so does Python's own stderr."""
    script = """
import os, sys
from ikmo.tools.worker import filter_native_stderr
stop = filter_native_stderr()
os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
os.write(2, b"W0000 00:00:1.2 99 inference_feedback_manager.cc:114] Feedback manager requires a model\\n")
os.write(2, b"E0000 00:00:1.3 99 calculator_graph.cc:12] a real native error\\n")
os.write(1, b"a stray print from a library\\n")
print("python stderr", file=sys.stderr)
stop()
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # fd 1 leads to the filter, never to the reply stream
    lines = proc.stderr.splitlines()
    assert "python stderr" in lines and "a stray print from a library" in lines
    assert any("a real native error" in line for line in lines)
    assert not any("XNNPACK" in line or "Feedback manager" in line for line in lines)
