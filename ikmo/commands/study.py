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
    # the copy's relative photo paths point from the original's folder; the photos shown are the
    # folder's own copies (manifest["photos"]), the true poses beside the originals are optional
    return load_study(folder / STUDY_COPY, source=manifest["source"], check_photos=False), manifest


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
                if sid:
                    log.info("stimulus %d/%d: %s", done, total, sid)

            manifest = build_study(study, out, on_progress=progress)
        typer.echo(f"{len(manifest['stimuli'])} stimuli in {out} (manifest {out / 'manifest.json'}); "
                   f"serve them: ikmo study serve {out} --port 8766")

    @groups["study"].command("serve")
    def serve(
        folder: Annotated[Path, typer.Argument(help="the built study folder")],
        port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: a free one)")] = 8766,
        host: Annotated[str, typer.Option(help="address to listen on; 0.0.0.0 lets other machines in")
                        ] = "127.0.0.1",
    ) -> None:
        """Serve the study to participants (personal links; the admin link is logged). Ctrl-C stops;
        every submitted answer is already on disk."""
        from ikmo.eval.study.responses import RESPONSES, Store
        from ikmo.study_server import make_app
        from ikmo.web import WebServer

        study, manifest = study_in(folder)
        store = Store(folder / RESPONSES)
        app = make_app(folder, study, manifest, store)
        server = WebServer(app, host=host, port=port)
        people = store.participants()
        log.info("study %s: %d participant link(s), %d answer(s) so far; admin page (links, progress, CSV): "
                 "%s/admin/%s", study.name, len(people), len(store.answers()), server.url, store.admin_token())
        log.info("serving on %s (Ctrl-C stops)", server.url)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            log.info("stopped; answers are in %s", folder / RESPONSES)
        finally:
            server.server_close()
            store.close()

    @groups["study"].command("simulate")
    def simulate(
        folder: Annotated[Path, typer.Argument(help="the built study folder")],
        raters: Annotated[int, typer.Option(min=1, max=1000, help="simulated participants to add")] = 10,
        seed: Annotated[int | None, typer.Option(min=0, help="the raters' seed [the study's]")] = None,
        inattentive: Annotated[float, typer.Option(min=0.0, max=1.0, help="share of raters answering at "
                                                   "random (the attention checks should catch them)")] = 0.1,
    ) -> None:
        """Simulated raters answer the study through its HTTP endpoints (a real server on 127.0.0.1),
        scoring each video by its measured fit with per-rater bias and noise. They are not people."""
        from tqdm import tqdm

        from ikmo.eval.agents.runner import Worker
        from ikmo.eval.study.design import plan
        from ikmo.eval.study.raters import StudyClient, make_raters, take_part
        from ikmo.eval.study.responses import RESPONSES, SIMULATED, Store
        from ikmo.eval.study.scoring import stimulus_fit
        from ikmo.motion_model.fileio import write_json
        from ikmo.study_server import make_app
        from ikmo.web import WebServer

        study, manifest = study_in(folder)
        worker = Worker()
        fits = {s["id"]: stimulus_fit(study, s, folder, worker) for s in manifest["stimuli"]}
        write_json(folder / "simulated_fits.json", {k: f.to_dict() for k, f in fits.items()})
        store = Store(folder / RESPONSES)
        server = WebServer(make_app(folder, study, manifest, store), "127.0.0.1", 0).start()
        try:
            import json
            import urllib.request

            admin = f"{server.url}/admin/{store.admin_token()}/participants"
            req = urllib.request.Request(admin, data=json.dumps({"n": raters, "label": SIMULATED}).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(req, timeout=30) as r:
                links = json.loads(r.read())["participants"]
            log.info("%d simulated rater(s) through %s", len(links), server.url)
            crowd = make_raters(len(links), study.seed if seed is None else seed, inattentive,
                                first=links[0]["number"])
            values = {k: f.fit for k, f in fits.items()}
            for link, rater in tqdm(list(zip(links, crowd, strict=True)), unit="rater", disable=None):
                take_part(StudyClient(server.url, link["link"]), rater, plan(study, link["number"]), values)
        finally:
            server.shutdown()
            server.server_close()
            store.close()
        typer.echo(f"{raters} simulated rater(s) answered; analyse: ikmo study analyze {folder}")

    @groups["study"].command("analyze")
    def analyze_cmd(
        folder: Annotated[Path, typer.Argument(help="the study folder (built, with answers)")],
        out: Annotated[Path | None, typer.Option(help="where the report goes [FOLDER/analysis]")] = None,
        who: Annotated[str, typer.Option("--raters", help="people | simulated | all [people when any "
                                         "person answered, else simulated]")] = "auto",
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
        from ikmo.eval.study.responses import SIMULATED
        from ikmo.motion_model.errors import UsageError

        if who not in ("auto", "people", "simulated", "all"):
            raise UsageError(f"--raters {who}: use people, simulated or all")
        answers = read_answers(db)
        if who == "auto":
            who = "people" if any(a["label"] != SIMULATED for a in answers) else "simulated"
        if who != "all":
            answers = [a for a in answers if (a["label"] == SIMULATED) == (who == "simulated")]
        result = analyze(answers, [c.name for c in study.conditions], len(plan(study, 0)), seed=study.seed,
                         items=[i.id for i in study.items])
        result["raters"] = who
        simulated = who != "people"
        title = f"Study {study.name}" + (" (simulated raters)" if simulated else "")
        paths = write_report(result, out or folder / "analysis", title, simulated)
        typer.echo(markdown(result, title, simulated).split("\n![")[0])
        log.info("written %s", ", ".join(str(p) for p in paths.values()))
