"""`ikmo eval agents` (the scripted agent evaluation: cases × providers × repeats, recorded, resumable)
and `ikmo llm serve` (a local model behind llama.cpp's OpenAI-compatible server on 127.0.0.1)."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Annotated

import typer

log = logging.getLogger(__name__)


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @groups["eval"].command("agents")
    def eval_agents(
        provider: Annotated[list[str] | None, typer.Option(
            help="repeatable: offline | smollm2 | gemma3 (started on 127.0.0.1; NAME@URL for a running server) | "
                 "openai-compatible:MODEL@URL | openai:MODEL | anthropic:MODEL | ollama:MODEL")] = None,
        cases: Annotated[Path | None, typer.Option(help="folder of case files [eval/cases/agents]")] = None,
        category: Annotated[list[str] | None, typer.Option(help="only these categories (repeatable)")] = None,
        case: Annotated[list[str] | None, typer.Option(help="only these case ids (repeatable)")] = None,
        list_cases: Annotated[bool, typer.Option("--list", help="list the cases and exit")] = False,
        repeats: Annotated[int, typer.Option(min=1, max=20, help="runs per case and provider (seed + repeat)")] = 1,
        jobs: Annotated[int, typer.Option(min=1, max=64, help="worker processes (each loads the model once)")] = 1,
        out: Annotated[Path, typer.Option(help="results.jsonl, cassettes/, report.md, summary.json, "
                                          "pass_rates.png; a rerun resumes")] = Path("runs/eval_agents"),
        replay: Annotated[Path | None, typer.Option(help="re-run from the recordings of this earlier --out "
                                                    "(no network; its providers)")] = None,
        weights: Annotated[Path | None, typer.Option(help="motion model folder; default the bundled weights")] = None,
        critique_rounds: Annotated[int | None, typer.Option(min=0, max=10, help="the critic's budget "
                                                            "[ikmo generate's default]")] = None,
        threads: Annotated[int, typer.Option(min=1, help="torch threads per worker")] = 1,
        exact_projection: Annotated[bool, typer.Option(
            help="stage 1 ends with the exact projection (ikmo generate's default); --no-exact-projection: "
                 "gradient steps only, the paper's form")] = True,
    ) -> None:
        """Run the agent case suite through the real graph per provider; print the comparison table."""
        from ikmo.eval.agents.cases import load_cases
        from ikmo.eval.agents.report import failures_text, markdown_table, summarise, write_reports
        from ikmo.eval.agents.runner import EvalConfig, parse_provider_arg, replay_providers, run_eval

        suite = load_cases(cases, category, case)
        if list_cases:
            for c in suite:
                extra = f" [{len(c.request.photos)} photo(s)]" if c.request.photos else ""
                extra += f" [+{len(c.request.turns)} turn(s)]" if c.request.turns else ""
                typer.echo(f"{c.id:<34} {c.category:<13} {c.request.text[:70]}{extra}")
            typer.echo(f"{len(suite)} case(s)")
            return
        if replay is not None:
            provs = replay_providers(replay)
            if provider:
                keep = set(provider)
                provs = [p for p in provs if p.label in keep]
            if out == Path("runs/eval_agents"):
                out = replay / "replay"
        else:
            provs = [parse_provider_arg(p) for p in (provider or ["offline"])]
        info = {"commit": _commit(), "cases_dir": str(cases) if cases else "eval/cases/agents",
                "exact_projection": exact_projection}
        cfg = EvalConfig(cases=suite, providers=provs, out=out, repeats=repeats, jobs=jobs, weights=weights,
                         threads=threads, critique_rounds=critique_rounds, exact_projection=exact_projection,
                         replay=replay, info=info)

        def progress(rec: dict) -> None:
            log.info("%s %-32s %s r%d %.1fs", "pass" if rec["passed"] else "FAIL", rec["case"], rec["provider"],
                     rec["repeat"], rec["latency_s"])

        records = run_eval(cfg, on_result=progress)
        labels = [p.label for p in provs]
        paths = write_reports(records, out, labels, info)
        typer.echo(markdown_table(summarise(records, labels)))
        fails = failures_text(records)
        if fails:
            typer.echo("failing runs:\n" + fails)
        log.info("written %s", ", ".join(str(p) for p in paths.values()))

    @groups["llm"].command("serve")
    def llm_serve(
        model: Annotated[str, typer.Option(help="smollm2 | gemma3")] = "smollm2",
        port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port on 127.0.0.1 (0: a free one)")] = 8080,
        threads: Annotated[int, typer.Option(min=1, help="llama.cpp threads")] = 1,
        n_ctx: Annotated[int, typer.Option(min=512, help="context length, tokens")] = 4096,
    ) -> None:
        """Serve a local model on 127.0.0.1 through llama.cpp's OpenAI-compatible server; use it with
        --provider openai-compatible --model NAME --base-url URL. Ctrl-C stops it."""
        from ikmo.agents.local_llm import LlamaServer

        server = LlamaServer(model, port=port, threads=threads, n_ctx=n_ctx).wait()
        log.info("%s on %s (e.g. ikmo generate --provider openai-compatible --model %s --base-url %s ...); "
                 "Ctrl-C stops", model, server.url, model, server.url)
        try:
            server.proc.wait()
        except KeyboardInterrupt:
            log.info("stopping")
        finally:
            server.close()
