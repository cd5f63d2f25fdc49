"""The evaluation room end to end on a tiny synthetic corpus and a tiny random motion model:
train an evaluator, sample control cases, run `bench control --quick` and `bench speed` through
the real CLI. Real code paths throughout; only the data and the weights are small."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.integration

pytest.importorskip("ikmo.motion_model.sampling")

from ikmo.eval import cases as cases_mod  # noqa: E402
from ikmo.eval.evaluator import EvaluatorConfig, EvaluatorTrainConfig, load_evaluator, train_evaluator  # noqa: E402
from ikmo.motion_model.model.checkpoints import save_checkpoint  # noqa: E402
from ikmo.motion_model.model.training import load_corpus  # noqa: E402
from ikmo.motion_model.model_config import ControlConfig, DenoiserConfig, DiffusionConfig, ModelConfig  # noqa: E402
from ikmo.motion_model.representation.features import (  # noqa: E402
    Normalizer,
    features_to_pose_frames,  # noqa: E402
    joints_to_features,
)
from ikmo.motion_model.representation.skeleton import HUMANML3D_22  # noqa: E402
from ikmo.motion_model.sampling import build_model  # noqa: E402

KINDS = {
    "forward": ["a person walks forward", "someone walks straight ahead"],
    "left": ["a person walks to the left", "someone steps sideways to the left"],
    "wave": ["a person stands and waves the right hand", "someone waves while standing still"],
}


def _rest_pose() -> np.ndarray:
    rest = np.zeros((22, 3))
    offs = HUMANML3D_22.offsets()
    for j, p in enumerate(HUMANML3D_22.parents):
        if p >= 0:
            rest[j] = rest[p] + offs[j]
    return rest


def _clip(kind: str, T: int, rng: np.random.Generator) -> np.ndarray:
    """(T, 22, 3) joints of a crude procedural motion of `kind`."""
    t = np.arange(T) / 20.0
    j = np.repeat(_rest_pose()[None], T, axis=0)
    speed = rng.uniform(0.8, 1.4)
    phase = 2 * np.pi * 1.8 * t + rng.uniform(0, 2 * np.pi)
    if kind in ("forward", "left"):
        axis = 2 if kind == "forward" else 0
        j[:, :, axis] += (speed * t)[:, None]
        swing = 0.15 * np.sin(phase)
        for leg, sign in (((4, 7, 10), 1.0), ((5, 8, 11), -1.0)):
            j[:, list(leg), axis] += sign * swing[:, None]
    else:
        j[:, 21, 1] += 0.6 + 0.1 * np.sin(phase)
        j[:, 21, 0] += 0.15 * np.sin(phase)
        j[:, 19, 1] += 0.3
    return j + rng.normal(scale=0.003, size=j.shape)


def build_synthetic_corpus(root: Path, per_kind: int = 8, seed: int = 0) -> Path:
    """A HumanML3D-layout corpus: train/val/test splits of procedural clips with captions."""
    rng = np.random.default_rng(seed)
    (root / "new_joint_vecs").mkdir(parents=True)
    (root / "texts").mkdir()
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    feats_all = []
    for kind, caps in KINDS.items():
        for i in range(per_kind):
            name = f"{kind}_{i:03d}"
            feats = joints_to_features(_clip(kind, int(rng.integers(48, 90)), rng)).astype(np.float32)
            np.save(root / "new_joint_vecs" / f"{name}.npy", feats)
            (root / "texts" / f"{name}.txt").write_text("".join(f"{c}#x#0.0#0.0\n" for c in caps))
            split = "train" if i < per_kind - 4 else ("val" if i < per_kind - 2 else "test")
            splits[split].append(name)
            if split == "train":
                feats_all.append(feats)
    for s, names in splits.items():
        (root / f"{s}.txt").write_text("\n".join(names) + "\n")
    Normalizer.fit(np.concatenate(feats_all)).save(root)
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    base = tmp_path_factory.mktemp("bench")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI machine has 2 shared cores; a second thread only waits
    corpus = build_synthetic_corpus(base / "corpus", per_kind=12)
    tr = load_corpus(corpus, "train")
    ev_path = base / "evaluator.safetensors"
    train_evaluator(tr.clips, load_corpus(corpus, "val").clips, tr.mean, tr.std, ev_path,
                    EvaluatorConfig(text_encoder="hash:32", d_model=32, ff_dim=64, latent_dim=16),
                    EvaluatorTrainConfig(max_steps=100, eval_every=50, batch_size=16, lr=1e-3))
    mcfg = ModelConfig(denoiser=DenoiserConfig(d_model=32, n_layers=1, n_heads=2, ff_dim=64, text_dim=32),
                       control=ControlConfig(hidden=16), text_encoder="hash:32")
    model = build_model(mcfg, DiffusionConfig(sample_steps=4), seed=0, mean=torch.as_tensor(tr.mean),
                        std=torch.as_tensor(tr.std))
    weights = save_checkpoint(base / "model", model.net, model.diffusion.cfg)
    yield {"corpus": corpus, "evaluator": ev_path, "weights": weights, "base": base}
    torch.set_num_threads(threads)


def test_evaluator_learns_retrieval(setup: dict[str, Path]) -> None:
    ev = load_evaluator(setup["evaluator"])
    best = ev.info["best"]
    # 6 val clips of 3 kinds in one pool: chance is 1/6 for top-1 and 1/2 for top-3; an evaluator
    # that tells the kinds apart gets top-1 near 1/2 and top-3 near 1.
    assert best["r_precision_top1"] >= 0.33 and best["r_precision_top3"] > 0.8, best
    # embeddings are unit norm and deterministic
    clips = load_corpus(setup["corpus"], "test").clips
    a = ev.embed_motions([c.features for c in clips])
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, ev.embed_motions([c.features for c in clips]), atol=1e-6)


def test_cases_deterministic_and_consistent(setup: dict[str, Path]) -> None:
    clips = load_corpus(setup["corpus"], "test").clips
    c1 = cases_mod.sample_cases(clips, 5, seed=3)
    c2 = cases_mod.sample_cases(clips, 5, seed=3)
    assert [c.case_id for c in c1] == [c.case_id for c in c2]
    assert [c.control().keyframe_indices() for c in c1] == [c.control().keyframe_indices() for c in c2]
    for c in c1:
        ctl = c.control()
        assert 1 <= len(ctl.keyframe_indices()) <= 3
        assert 0 not in ctl.keyframe_indices()
        # the trajectory is the real window's pelvis, and the window starts at the origin facing +Z
        np.testing.assert_allclose(ctl.traj.numpy(), c.joints[:, 0], atol=1e-5)
        np.testing.assert_allclose(c.joints[0, 0, [0, 2]], 0.0, atol=1e-5)
        np.testing.assert_allclose(features_to_pose_frames(torch.as_tensor(c.features)).numpy(), c.joints, atol=1e-4)
        # the path carries the window's own facing (its root yaw), starting at +Z
        assert bool(ctl.heading_mask.all()) and abs(float(ctl.heading[0])) < 1e-6
        from ikmo.motion_model.control.align import facing_yaw

        yaw = facing_yaw(torch.as_tensor(c.joints))
        off = torch.atan2(torch.sin(yaw - ctl.heading), torch.cos(yaw - ctl.heading)).abs()
        assert float(off.median()) < 0.35, "the root yaw is the body's facing, up to HumanML3D's smoothing"
    bare = cases_mod.sample_cases(clips, 5, seed=3, heading=False)
    assert not any(bool(c.control().heading_mask.any()) for c in bare)
    # the ground truth satisfies its own constraints: zero control and keyframe error
    from ikmo.eval.bench_control import keyframe_errors, trajectory_errors

    for c in c1:
        assert trajectory_errors(c.joints, c).max() < 1e-5
        assert keyframe_errors(c.joints, c).max() < 1e-4


def test_bench_control_quick_cli(setup: dict[str, Path], tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from ikmo.cli import _build
    from ikmo.eval.agents.cases import load_cases

    # Three suite requests for the request table: a forward arc, a backward walk, a walk then a wave.
    picked = [c for c in load_cases() if c.id in ("shape-arc-left", "dir-backward", "seq-walk-then-wave")]
    cases_dir = tmp_path / "cases"
    cases_dir.mkdir()
    (cases_dir / "picked.yaml").write_text(yaml.safe_dump(
        {"cases": [c.model_dump(mode="json", exclude_none=True) for c in picked]}))
    out = tmp_path / "control.json"
    res = CliRunner().invoke(_build(), [
        "bench", "control", "--quick", "--corpus", str(setup["corpus"]), "--weights", str(setup["weights"]),
        "--evaluator", str(setup["evaluator"]), "--out", str(out), "--batch-size", "4", "--threads", "1",
        "--requests-cases", str(cases_dir), "--requests-dir", str(tmp_path / "agents"),
        "--baseline-weights", str(setup["weights"]),
    ])
    assert res.exit_code == 0, res.output
    assert "Test clips:" in res.output and "requests" in res.output
    assert "FID" in res.output and "ikmo" in res.output
    data = json.loads(out.read_text())
    rows = {r["method"]: r for r in data["results"]}
    assert set(rows) == {"real", "ikmo", "no_footlock", "no_projection", "no_optimization", "no_controlnet",
                         "unconditioned", "baseline_ikmo", "baseline_no_footlock", "baseline_no_optimization"}
    # the baseline rows are the same methods with the --baseline-weights: here the same weights
    for new in ("ikmo", "no_footlock", "no_optimization"):
        old = f"baseline_{new}"
        assert rows[old]["avg_err"] == pytest.approx(rows[new]["avg_err"], abs=1e-6)
        assert rows[old]["fid"] == pytest.approx(rows[new]["fid"], abs=1e-6)
        assert rows[old]["skating_ratio"] == pytest.approx(rows[new]["skating_ratio"], abs=1e-6)
    assert rows["no_footlock"]["skating_ratio"] > rows["ikmo"]["skating_ratio"]  # the lock's rows differ
    assert any("joint_encoder" in n for n in data["notes"])
    assert any("joint_no_optimization" in n for n in data["notes"])
    assert any("joint_no_projection" in n for n in data["notes"])
    real = rows["real"]
    assert real["fid"] == pytest.approx(0.0, abs=1e-6)
    assert real["avg_err"] < 1e-5 and real["keyframe_mpjpe"] < 1e-4
    for r in rows.values():
        assert r["n_motions"] == data["n_cases"] == 8
        assert 0.0 <= r["r_precision_top3"] <= 1.0 and 0.0 <= r["skating_ratio"] <= 1.0
    alone = [e for e in rows["no_optimization"]["per_case"]["traj_err"] if e is not None]
    assert rows["no_optimization"]["avg_err_case_median"] == pytest.approx(float(np.median(alone)))
    assert "AvgErr p50" in res.output
    # stage 1 acts: with optimization the pelvis lands much closer to the trajectory than without
    assert rows["no_controlnet"]["avg_err"] < 0.5 * rows["unconditioned"]["avg_err"]
    # the exact projection puts the pelvis on the trajectory even for this untrained model
    assert rows["ikmo"]["avg_err"] < 1e-3 and rows["ikmo"]["loc_err_0.5"] == 0.0
    # stage 1's gradient steps alone (L-BFGS, no projection) also bring this untrained model's pelvis
    # to the path, far closer than its ControlNet alone; the projection is exact
    assert rows["no_projection"]["avg_err"] < 0.1 * rows["no_optimization"]["avg_err"], rows["no_projection"]
    assert rows["ikmo"]["avg_err"] <= rows["no_projection"]["avg_err"]
    for r in rows.values():  # the plausibility figures are measured on every row
        assert r["jerk"] > 0 and r["penetration_m"] >= 0 and 0 <= r["floating_ratio"] <= 1
        assert -1 <= r["text_similarity"] <= 1 and 0 <= r["skating_ok_share"] <= 1
        # a travelling motion is held to the real travelling clips' level, so never to a stricter one
        assert r["skating_ok_kind_share"] >= r["skating_ok_share"]
    assert rows["real"]["n_travelling"] >= 1  # the picked test clips include walks

    # The request table: the suite's specs (made by the real offline agents), no 'real' row, motions
    # as `ikmo generate` writes them, FID against the test clips.
    req = json.loads((tmp_path / "control_requests.json").read_text())
    assert req["benchmark"] == "control_requests" and req["n_cases"] == 3
    assert {c["id"] for c in req["cases"]} == {"shape-arc-left", "dir-backward", "seq-walk-then-wave"}
    assert all(c["request"] for c in req["cases"])
    rrows = {r["method"]: r for r in req["results"]}
    assert set(rrows) == set(rows) - {"real"}
    assert rrows["ikmo"]["avg_err"] < 0.02  # the projection meets the planned path (the rig moves it a little)
    assert rrows["no_projection"]["avg_err"] < 0.1 * rrows["no_optimization"]["avg_err"]
    # the arc and the walk are forward walks; walking backwards is not
    assert 1 <= rrows["ikmo"]["n_forward_walks"] <= 2
    # stage 1's heading projection turns even this untrained model's body onto the path's tangent
    assert rrows["ikmo"]["facing_err_median_deg"] < 20.0, rrows["ikmo"]
    # The per-category breakdown: each picked case under its suite category, the figures its own.
    from ikmo.eval.bench_requests import by_group

    assert "By suite category" in res.output and "| shapes | 1 |" in res.output
    groups = {g["group"]: g for g in by_group(req)}
    assert set(groups) == {"shapes", "directions", "sequencing"} and all(g["n"] == 1 for g in groups.values())
    arc = [c["id"] for c in req["cases"]].index("shape-arc-left")
    assert groups["shapes"]["no_optimization"]["traj_err"] == pytest.approx(
        rrows["no_optimization"]["per_case"]["traj_err"][arc])
    assert sum(g["n"] * g["ikmo"]["skating_ok_share"] for g in groups.values()) == pytest.approx(
        3 * rrows["ikmo"]["skating_ok_share"])
    assert sum(g["n"] * g["ikmo"]["skating_ok_kind_share"] for g in groups.values()) == pytest.approx(
        3 * rrows["ikmo"]["skating_ok_kind_share"])


def test_bench_compare_cli_pairs_cases_and_noise_across_checkpoints(setup: dict[str, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ikmo.cli import _build

    # B: the same architecture with other random weights.
    mcfg = ModelConfig(denoiser=DenoiserConfig(d_model=32, n_layers=1, n_heads=2, ff_dim=64, text_dim=32),
                       control=ControlConfig(hidden=16), text_encoder="hash:32")
    tr = load_corpus(setup["corpus"], "train")
    other = build_model(mcfg, DiffusionConfig(sample_steps=2), seed=7, mean=torch.as_tensor(tr.mean),
                        std=torch.as_tensor(tr.std))
    other_dir = save_checkpoint(tmp_path / "other", other.net, other.diffusion.cfg)

    def compare(b: Path, out: Path) -> dict:
        res = CliRunner().invoke(_build(), [
            "bench", "compare", "--corpus", str(setup["corpus"]), "--weights", str(setup["weights"]),
            "--other-weights", str(b), "--names", "mine,theirs", "--seeds", "0,1", "--n-cases", "4",
            "--steps", "2", "--batch-size", "4", "--threads", "1", "--evaluator", str(setup["evaluator"]),
            "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert "mine − theirs" in res.output and "95 %" in res.output
        return {**json.loads(out.read_text()), "output": res.output}

    same = compare(setup["weights"], tmp_path / "same.json")
    assert same["seeds"] == [0, 1] and len(same["per_seed"]) == 2
    assert same["same_base"] is True and "different base denoisers" not in same["output"]
    rows = {(r["stage"], r["metric"]): r for r in same["summary"]}
    assert set(rows) == {(s, m) for s in ("alone", "gradient", "ikmo")
                         for m in ("traj_err", "keyframe_mpjpe", "skating", "text_similarity", "jerk", "floating",
                                   "fid", "r_precision_top3")}
    # One checkpoint against itself: the same cases and the same noise, so every difference is exactly 0.
    for r in rows.values():
        assert r["diff"] == 0.0 and r["diff_ci"] == [0.0, 0.0] and r["verdict"] == "no difference shown", r
    assert rows[("alone", "traj_err")]["n"] == 8  # 4 cases × 2 seeds, each with a path
    # Stage 1 meets the path; the untrained ControlNet alone does not: both stages are really run.
    assert rows[("ikmo", "traj_err")]["a"] < 0.1 * rows[("alone", "traj_err")]["a"]
    assert rows[("gradient", "traj_err")]["a"] < 0.1 * rows[("alone", "traj_err")]["a"]
    lo, hi = rows[("alone", "traj_err")]["a_ci"]
    assert lo <= rows[("alone", "traj_err")]["a"] <= hi and lo < hi

    diff = compare(other_dir, tmp_path / "diff.json")
    assert diff["same_base"] is False  # other random weights: the bases differ, and the output says so
    assert "different base denoisers" in diff["output"]
    alone = {r["metric"]: r for r in diff["summary"] if r["stage"] == "alone"}
    assert alone["traj_err"]["diff"] != 0.0
    assert alone["traj_err"]["diff"] == pytest.approx(alone["traj_err"]["a"] - alone["traj_err"]["b"])

    res = CliRunner().invoke(_build(), ["bench", "compare", "--corpus", str(setup["corpus"]), "--seeds", "0,x"])
    from ikmo.motion_model.errors import ConfigError

    assert isinstance(res.exception, ConfigError) and "--seeds" in str(res.exception)  # the CLI prints it as one line


def test_bench_control_stage1_settings_reach_every_row(setup: dict[str, Path], tmp_path: Path) -> None:
    """`--stage1 enabled=false` switches stage 1 off for the run: full IKMo then samples exactly as the
    ControlNet alone does (same cases, same noise), and the JSON says how stage 1 was set. A setting
    that is not a field fails before anything loads, naming the fields."""
    from typer.testing import CliRunner

    from ikmo.cli import _build
    from ikmo.motion_model.errors import ConfigError

    out = tmp_path / "s1.json"
    common = ["bench", "control", "--quick", "--corpus", str(setup["corpus"]), "--weights", str(setup["weights"]),
              "--evaluator", str(setup["evaluator"]), "--batch-size", "4", "--threads", "1", "--no-requests",
              "--methods", "ikmo,no_optimization"]
    res = CliRunner().invoke(_build(), [*common, "--out", str(out), "--stage1", "enabled=false"])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    rows = {r["method"]: r for r in data["results"]}
    assert rows["ikmo"]["avg_err"] == pytest.approx(rows["no_optimization"]["avg_err"], abs=1e-9)
    assert rows["ikmo"]["avg_err"] > 1e-3  # this untrained model's ControlNet misses the path
    assert data["optimization"]["enabled"] is False and any("--stage1" in n for n in data["notes"])
    res = CliRunner().invoke(_build(), [*common, "--out", str(tmp_path / "x.json"), "--stage1", "w_feet=1"])
    assert isinstance(res.exception, ConfigError) and "w_foot" in str(res.exception)
    assert not (tmp_path / "x.json").exists()


def test_bench_speed_cli(setup: dict[str, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ikmo.cli import _build

    out = tmp_path / "speed.json"
    res = CliRunner().invoke(_build(), [
        "bench", "speed", "--weights", str(setup["weights"]), "--repeats", "2", "--n-frames", "60",
        "--no-memory", "--threads", "1", "--out", str(out),
    ])
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["median_s"] > 0 and r["baseline_s"] > r["median_s"] and r["speedup"] > 1
    assert r["steps"] == 4 and r["baseline_schedule"]["steps"] == 1000


def test_infonce_masks_duplicate_captions() -> None:
    from ikmo.eval.evaluator import infonce_loss

    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), dim=-1)
    raw = z.clone()  # captions 1 and 2 are the same sentence
    # texts 1 and 2 both match motions 1 and 2 equally: unmasked, each pays for the other as a "negative"
    unmasked = infonce_loss(z, z, 0.1)
    masked = infonce_loss(z, z, 0.1, raw, dup_threshold=0.95)
    assert masked < 0.01 < unmasked
