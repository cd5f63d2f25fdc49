"""`ikmo study build | serve | analyze | simulate`: the paper's user study, replayable
(`eval/study/`; the web app in `ikmo/web/`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

log = logging.getLogger(__name__)


def study_in(folder: Path) -> tuple[Any, dict[str, Any]]:
    """The study and manifest of a built study folder (InputFileError saying to build it first)."""
    from ikmo.eval.study.build import STUDY_COPY, load_manifest
    from ikmo.eval.study.definition import load_study

    manifest = load_manifest(folder)
    study = load_study(folder / STUDY_COPY)
    # the copy's relative photo paths pointed at the original's folder: read them from there
    study.source = manifest["source"]
    return study, manifest


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @groups["study"].command("build")
    def build(
        study_file: Annotated[Path, typer.Argument(help="the study file (YAML; see eval/studies/paper_replay.yaml)")],
        out: Annotated[Path, typer.Option(help="the study folder: stimuli/, manifest.json; a rerun resumes")],
    ) -> None:
        """Make every item x condition stimulus (seeded) and its video; write the manifest."""
        from tqdm import tqdm

        from ikmo.eval.study.build import build_study
        from ikmo.eval.study.definition import load_study

        study = load_study(study_file)
        with tqdm(total=None, unit="stimulus", desc="study", disable=None) as bar:
            def progress(done: int, total: int, sid: str) -> None:
                bar.total = total
                bar.n = done
                bar.set_postfix_str(sid)
                bar.refresh()
                log.info("stimulus %d/%d: %s", done, total, sid)

            manifest = build_study(study, out, on_progress=progress)
        typer.echo(f"{len(manifest['stimuli'])} stimuli in {out} (manifest {out / 'manifest.json'}); "
                   f"serve them: ikmo study serve {out} --port 8766")

    @groups["study"].command("analyze")
    def analyze_cmd(
        folder: Annotated[Path, typer.Argument(help="the study folder (built, with answers)")],
        out: Annotated[Path | None, typer.Option(help="where the report goes [FOLDER/analysis]")] = None,
    ) -> None:
        """Statistics, figures and reports of the answers so far (exclusions by the attention checks)."""
        from ikmo.eval.study.analysis import analyze
        from ikmo.eval.study.design import plan
        from ikmo.eval.study.report import markdown, write_report
        from ikmo.eval.study.responses import RESPONSES, read_answers
        from ikmo.motion_model.errors import InputFileError

        study, _ = study_in(folder)
        db = folder / RESPONSES
        if not db.is_file():
            raise InputFileError(f"{folder}: no {RESPONSES} yet; serve the study (ikmo study serve {folder}) or "
                                 f"simulate it (ikmo study simulate {folder} --raters 10)")
        answers = read_answers(db)
        result = analyze(answers, [c.name for c in study.conditions], len(plan(study, 0)), seed=study.seed,
                         items=[i.id for i in study.items])
        simulated = (folder / "simulated.json").is_file()
        title = f"Study {study.name}" + (" (simulated raters)" if simulated else "")
        paths = write_report(result, out or folder / "analysis", title, simulated)
        typer.echo(markdown(result, title, simulated).split("\n![")[0])
        log.info("written %s", ", ".join(str(p) for p in paths.values()))
