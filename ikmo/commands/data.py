"""`ikmo data build` and `ikmo data info`: thin wrappers over ikmo.motion_model.data.corpus."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer

log = logging.getLogger(__name__)

_ARCHIVE_SUFFIXES = (".tar.xz", ".tar.gz", ".tgz", ".tar.bz2", ".tar")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    data = groups["data"]

    @data.command("build")
    def build(
        raw: Annotated[list[Path], typer.Option(help="raw folder(s) and/or .tar.xz archives (repeatable); "
                                                "a folder of archives is unpacked too")],
        out: Annotated[Path, typer.Option(help="corpus folder to write")] = Path("data/corpus"),
        unpack_dir: Annotated[Path, typer.Option(help="where archives are unpacked (git-ignored)")] = Path("data/raw"),
        workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 2,
        limit: Annotated[int | None, typer.Option(min=1, help="at most N clips per source (quick builds)")] = None,
    ) -> None:
        """Build a HumanML3D-layout corpus from BVH motion capture (Bandai Namco, CMU, ReActIdle, own BVH)."""
        from tqdm import tqdm

        from ikmo.motion_model.data.corpus import build_corpus, discover_sources, unpack_archives
        from ikmo.motion_model.errors import InputFileError
        from ikmo.motion_model.fileio import ensure_output_dir

        if out.exists() and not out.is_dir():
            raise InputFileError(f"--out {out} is a file; give a folder for the corpus")
        ensure_output_dir(out.parent, label=f"the folder of --out {out}")  # the corpus is built beside, then renamed
        t0 = time.perf_counter()
        archives, folders = [], []
        for r in raw:
            if not r.exists():
                raise InputFileError(f"--raw {r} does not exist")
            if r.is_file() and r.name.endswith(_ARCHIVE_SUFFIXES):
                archives.append(r)
            elif r.is_dir():
                inner = sorted(p for p in r.iterdir() if p.name.endswith(_ARCHIVE_SUFFIXES))
                archives.extend(inner)
                if not inner:
                    folders.append(r)
            else:
                raise InputFileError(f"--raw {r} is neither a folder nor a .tar.xz archive")
        folders += unpack_archives(archives, unpack_dir)
        jobs = []
        for f in folders:
            jobs.extend(discover_sources(f))
        if limit:
            per: dict[str, int] = {}
            kept = []
            for j in jobs:
                per[j.source] = per.get(j.source, 0) + 1
                if per[j.source] <= limit:
                    kept.append(j)
            jobs = kept
        if not jobs:
            raise InputFileError(f"no BVH clips found under {[str(f) for f in folders]}")
        log.info("building %s from %d clips with %d worker(s)", out, len(jobs), workers)
        bar = tqdm(total=len(jobs), unit="clip", desc="corpus")
        rejected = 0

        def on_clip(r) -> None:
            nonlocal rejected
            rejected += bool(r.error)
            bar.update(1)
            bar.set_postfix(rejected=rejected)

        try:
            card = build_corpus(jobs, out, workers=workers, on_clip=on_clip)
        finally:
            bar.close()
        log.info("done in %.1f s (processing %.1f s): %d clips, %d items, %.2f h source, %d rejected -> %s",
                 time.perf_counter() - t0, card["build_seconds"], card["clips"], card["items"],
                 card["hours_source"], len(card["rejected"]), out)
        from ikmo.motion_model.data.corpus import rig_table

        typer.echo("\n".join(rig_table(card["rig_summary"])))

    @data.command("inspect")
    def inspect(
        path: Annotated[Path, typer.Argument(help="a BVH file")],
        png: Annotated[Path | None, typer.Option(help="picture of the rest pose and one frame "
                                                 "(default: FILE.rig.png beside the file)")] = None,
        frame: Annotated[int | None, typer.Option(min=0, help="frame to draw (default: the middle one)")] = None,
        rig: Annotated[str | None, typer.Option(help="explicit rig map: bandai, cmu_daz, cmu_asf, reactidle")] = None,
        unit: Annotated[str | None, typer.Option(help="m, cm, mm, inch, cmu_asf (default: guessed)")] = None,
    ) -> None:
        """Show how a BVH rig maps onto the 22 SMPL joints (named, guessed or interpolated), its unit and
        frame rate, and draw the rest pose and one frame to a PNG."""
        from ikmo.motion_model.data.rigs import inspect_bvh
        from ikmo.tools.rig_sheet import write_rig_sheet

        report = inspect_bvh(str(path), frame=frame, rig=rig, unit=unit)
        r = report.rig
        lines = [f"{path}: {r.family or 'unknown'} naming, map {r.name!r}, unit {report.unit}, "
                 f"{report.fps:g} fps, {report.frames} frames, {len(report.names)} joints and End Sites",
                 f"{'SMPL joint':<15} {'how':<13} source"]
        lines += [f"{t:<15} {how:<13} {src}" for t, src, how in report.rows]
        if r.guessed:
            lines.append(f"guessed from the skeleton (names did not tell): {', '.join(r.guessed)}")
        typer.echo("\n".join(lines))
        out = png or path.with_suffix(".rig.png")
        write_rig_sheet(out, report)
        log.info("wrote %s", out)

    @data.command("info")
    def info(path: Annotated[Path, typer.Argument(help="corpus folder")]) -> None:
        """Print a corpus's dataset card."""
        from ikmo.motion_model.data.corpus import card_markdown, read_card

        typer.echo(card_markdown(read_card(path)))
