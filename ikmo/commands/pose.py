"""`ikmo pose IMAGE` (keyframe photo → SMPL pose JSON + overlay) and `ikmo bench pose`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from ikmo.commands.options import finite

log = logging.getLogger("ikmo.pose")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("pose")
    def pose(
        image: Annotated[Path, typer.Argument(help="photo of one person (JPEG/PNG/...)")],
        out: Annotated[Path, typer.Option("--out", help="where to write the KeyframePose JSON")],
        overlay: Annotated[Path | None, typer.Option(help="also write a check image (PNG)")] = None,
        time_s: Annotated[float, typer.Option("--time", min=0, help="keyframe time in seconds",
                                              callback=finite)] = 0.0,
        complexity: Annotated[int, typer.Option(min=0, max=2, help="BlazePose model: 0 lite, 1 full, 2 heavy")] = 1,
    ) -> None:
        """Read the body pose in IMAGE: BlazePose landmarks → SMPL fit → canonical 22 joints."""
        from ikmo.agents.inputs import check_image_path
        from ikmo.motion_model.fileio import ensure_output_file

        check_image_path(image, what="photo")
        ensure_output_file(out)
        if overlay is not None:
            ensure_output_file(overlay, what="--overlay")
        import torch

        from ikmo.motion_model.fileio import write_json
        from ikmo.tools.overlay import save_overlay
        from ikmo.tools.smpl_fit import image_to_pose

        # The fit and the renderer are many tiny tensor ops: intra-op threads only add spin-waits
        # (measured: rendering 0.04-0.08 s/image on 1 thread, 0.1-1.7 s on 2 busy cores).
        torch.set_num_threads(1)

        res = image_to_pose(image, time_s=time_s, model_complexity=complexity, with_images=overlay is not None)
        write_json(out, res.keyframe.model_dump(mode="json"))
        n = sum(res.keyframe.joint_mask)
        log.info("%s: %d/22 joints, fit rms %.0f mm, detect %.2f s, fit %.2f s → %s", image.name, n,
                 res.fit.error_m * 1000, res.seconds["detect"], res.seconds["fit"], out)
        for note in res.keyframe.notes:
            log.info("  %s", note)
        if overlay is not None:
            save_overlay(overlay, res.overlay())
            log.info("overlay → %s", overlay)

    @groups["bench"].command("pose")
    def bench_pose(
        corpus: Annotated[Path | None, typer.Option(help="corpus dir with new_joints/ and test.txt; default "
                                                    "data/corpus, else the HumanML3D fixture clip")] = None,
        n_poses: Annotated[int, typer.Option(help="poses drawn from the test split (x 5 views)")] = 200,
        out: Annotated[Path, typer.Option(help="JSON results")] = Path("runs/bench_pose.json"),
        complexity: Annotated[int, typer.Option(help="BlazePose model: 0 lite, 1 full, 2 heavy")] = 1,
        seed: Annotated[int, typer.Option()] = 0,
        save_images: Annotated[Path | None, typer.Option(help="write every rendering + overlay here")] = None,
    ) -> None:
        """Render poses under 5 views, read them back, report detection rate, MPJPE, PA-MPJPE, time."""
        import torch

        from ikmo.eval.bench_pose import format_table, run_bench

        torch.set_num_threads(1)  # see `pose`: tiny tensor ops, threads only add overhead

        report = run_bench(corpus=corpus, n_poses=n_poses, out=out, model_complexity=complexity, seed=seed,
                           save_images=save_images)
        typer.echo(format_table(report))
        log.info("results → %s", out)
