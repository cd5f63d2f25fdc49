"""Benchmark of the export room: preview rendering (PIL renderer vs a matplotlib-3D baseline measured in
the same run), MP4/GIF encoding, BVH and SMPL writing, features.

    python benchmarks/bench_export.py                 # 196 frames, median of 3
    taskset -c 0 python benchmarks/bench_export.py    # everything (ffmpeg included) on one core

The motion is the HumanML3D fixture clip (012314, extended to 196 frames by playing it back and forth)
when ../shared is present, else a synthetic rig motion. The baseline draws what HumanML3D's
`plot_3d_motion` draws (matplotlib 3D axes, kinematic chains, floor plane, trajectory) and renders
each frame to an RGB array; it renders `--baseline-frames` frames and is scaled to the full length
(stated in the table). CPU times include child processes (the ffmpeg encoder).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO.parent / "shared" / "fixtures" / "humanml3d" / "new_joints" / "012314.npy"


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds incl. children) of `fn` over `repeats` runs."""
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), _cpu()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(_cpu() - c0)
    return statistics.median(walls), statistics.median(cpus)


def load_motion(n_frames: int) -> tuple[np.ndarray, str]:
    if FIXTURE.is_file():
        clip = np.load(FIXTURE).astype(np.float64)
        name = "HumanML3D fixture 012314"
    else:
        from ikmo.motion_model.representation.skeleton import HUMANML3D_22
        from ikmo.tools.rig_rotations import T_POSE_DIRECTIONS_22, rig_forward

        T = n_frames
        t = np.linspace(0, 4 * np.pi, T)
        local = np.broadcast_to(np.eye(3), (T, 22, 3, 3)).copy()
        c, s = np.cos(0.6 * np.sin(t)), np.sin(0.6 * np.sin(t))
        for j in (1, 2, 16, 17):  # swing hips and shoulders about x
            sign = 1 if j in (1, 17) else -1
            local[:, j, 1, 1], local[:, j, 2, 2] = c, c
            local[:, j, 1, 2], local[:, j, 2, 1] = -sign * s, sign * s
        root = np.stack([0 * t, np.full(T, 0.93), 0.15 * t], 1)
        clip = rig_forward(root, local, T_POSE_DIRECTIONS_22 * HUMANML3D_22.bone_lengths[:, None])
        name = "synthetic walk"
    while len(clip) < n_frames:
        clip = np.concatenate([clip, clip[::-1]])
    return clip[:n_frames], name


def matplotlib_frames(joints: np.ndarray, n: int) -> list[np.ndarray]:
    """The baseline: HumanML3D's plot_3d_motion drawing, one RGB array per frame (first `n` frames)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    chains = [[0, 2, 5, 8, 11], [0, 1, 4, 7, 10], [0, 3, 6, 9, 12, 15], [9, 14, 17, 19, 21], [9, 13, 16, 18, 20]]
    colours = ["red", "blue", "black", "red", "blue"]
    data = joints.copy()
    data[..., 1] -= data[..., 1].min()
    traj = data[:, 0, [0, 2]]
    fig = plt.figure(figsize=(5.12, 3.84), dpi=100)
    ax = fig.add_subplot(111, projection="3d")
    out = []
    for i in range(n):
        ax.clear()
        ax.set_xlim3d([-1.5, 1.5])
        ax.set_ylim3d([0, 3])
        ax.set_zlim3d([0, 3])
        ax.view_init(elev=120, azim=-90)
        ax.dist = 7.5
        x0, z0 = data[i, 0, 0], data[i, 0, 2]
        floor = [[-1.5 + x0, 0, -1.5 + z0], [-1.5 + x0, 0, 1.5 + z0], [1.5 + x0, 0, 1.5 + z0], [1.5 + x0, 0, -1.5 + z0]]
        plane = Poly3DCollection([floor])
        plane.set_facecolor((0.5, 0.5, 0.5, 0.5))
        ax.add_collection3d(plane)
        ax.plot3D(traj[: i + 1, 0] - x0, np.zeros(i + 1), traj[: i + 1, 1] - z0, linewidth=1.0, color="blue")
        for chain, colour in zip(chains, colours, strict=True):
            ax.plot3D(data[i, chain, 0] - x0, data[i, chain, 1], data[i, chain, 2] - z0, linewidth=4.0, color=colour)
        ax.axis("off")
        fig.canvas.draw()
        out.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=196)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-frames", type=int, default=40, help="frames the matplotlib baseline renders")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args(argv)

    from ikmo.tools.export_bvh import write_bvh
    from ikmo.tools.export_smpl import smpl_params, smpl_rest_joints
    from ikmo.tools.exports import motion_features
    from ikmo.tools.preview import PreviewRenderer, write_preview

    joints, name = load_motion(args.frames)
    T = len(joints)
    rows: list[tuple[str, float, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        pil = measure(lambda: PreviewRenderer(joints).frames(), args.repeats)
        rows.append(("preview frames, PIL (ours)", *pil, f"{T} frames"))
        try:
            import matplotlib  # noqa: F401

            k = min(args.baseline_frames, T)
            mw, mc = measure(lambda: matplotlib_frames(joints, k), 1)
            base = (mw * T / k, mc * T / k)
            rows.append(("preview frames, matplotlib 3D (baseline)", *base, f"{k} frames timed, scaled to {T}"))
        except ImportError:
            base = None
            rows.append(("preview frames, matplotlib 3D (baseline)", float("nan"), float("nan"),
                         "matplotlib not installed (pip install matplotlib)"))
        rows.append(("preview.mp4 (render + H.264 encode)",
                     *measure(lambda: write_preview(d / "p.mp4", joints), args.repeats), f"{T} frames 512x384"))
        rows.append(("preview.gif (render + palette + LZW)",
                     *measure(lambda: write_preview(d / "p.gif", joints), args.repeats), f"{T} frames 512x384"))
        rows.append(("motion.bvh", *measure(lambda: write_bvh(d / "m.bvh", joints), args.repeats), "solve + write"))
        rest = smpl_rest_joints()
        rows.append(("SMPL params", *measure(lambda: smpl_params(joints, rest_joints=rest), args.repeats),
                     "body model loaded once, outside the timing"))
        motion_features(joints[:10])  # warm-up: first call imports torch
        rows.append(("features (263-d)", *measure(lambda: motion_features(joints), args.repeats), ""))
        from ikmo.tools.exports import write_motion_files

        write_motion_files(joints[:4], d / "warm", formats=["smpl"])  # body model file read once, as in a server
        rows.append(("write_motion_files (all 5 files)",
                     *measure(lambda: write_motion_files(joints, d / "all"), args.repeats),
                     "joints, features, bvh, smpl, preview.mp4"))
        mp4_bytes = (d / "p.mp4").stat().st_size
        gif_bytes = (d / "p.gif").stat().st_size

    print(f"motion: {name}, {T} frames; median of {args.repeats}; CPU includes ffmpeg")
    print(f"{'step':44s} {'wall s':>8s} {'CPU s':>8s}  note")
    for label, wall, cpu, note in rows:
        print(f"{label:44s} {wall:8.3f} {cpu:8.3f}  {note}")
    result = {"motion": name, "frames": T, "rows": [dict(zip(("step", "wall_s", "cpu_s", "note"), r, strict=True))
                                                    for r in rows], "mp4_bytes": mp4_bytes, "gif_bytes": gif_bytes}
    if base is not None:
        ratio_wall, ratio_cpu = base[0] / pil[0], base[1] / pil[1]
        print(f"PIL renderer vs matplotlib baseline: {ratio_wall:.1f}x faster (wall), {ratio_cpu:.1f}x (CPU)")
        result.update(speedup_wall=ratio_wall, speedup_cpu=ratio_cpu)
    print(f"sizes: preview.mp4 {mp4_bytes / 1e3:.0f} kB, preview.gif {gif_bytes / 1e3:.0f} kB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
