"""Commands of the evaluation room: `ikmo bench control|speed|long`, `ikmo train evaluator`.

Thin: parse options, call `ikmo.eval`, print the table, write JSON. Heavy imports stay inside.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from ikmo.motion_model.limits import MAX_SEED

log = logging.getLogger(__name__)

DEFAULT_CORPUS = Path("data/corpus")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    bench, train = groups["bench"], groups["train"]

    @bench.command("control")
    def bench_control(
        corpus: Annotated[Path, typer.Option(help="HumanML3D-layout corpus (cases: its test split)")] = DEFAULT_CORPUS,
        weights: Annotated[Path | None, typer.Option(help="motion model directory (default: bundled)")] = None,
        joint_weights: Annotated[Path | None, typer.Option(
            help="joint-encoder ablation checkpoint directory (default with the bundled weights: "
                 "eval/weights/joint_encoder, trained on the same budget)")] = None,
        baseline_weights: Annotated[Path | None, typer.Option(
            help="other weights to run side by side: a row baseline_M for each of ikmo, no_footlock and "
                 "no_optimization in --methods, e.g. the bundled ones when judging a new checkpoint")] = None,
        evaluator: Annotated[Path | None, typer.Option(help="evaluator .safetensors (default: bundled)")] = None,
        n_cases: Annotated[int, typer.Option(min=2, help="number of cases")] = 64,
        methods: Annotated[str, typer.Option(help="comma-separated methods")] = (
            "real,ikmo,no_footlock,no_projection,no_optimization,no_controlnet,joint_encoder,"
            "joint_no_optimization,joint_no_projection,unconditioned"),
        split: Annotated[str, typer.Option(help="corpus split the cases come from")] = "test",
        seed: Annotated[int, typer.Option()] = 0,
        batch_size: Annotated[int, typer.Option(min=1)] = 16,
        steps: Annotated[int | None, typer.Option(help="DDIM steps (default: the checkpoint's)")] = None,
        guidance_scale: Annotated[float | None, typer.Option(help="CFG scale (default: the checkpoint's)")] = None,
        control_height: Annotated[bool, typer.Option(help="constrain pelvis height too, not only xz")] = False,
        case_heading: Annotated[bool, typer.Option(
            help="the test cases' paths carry the clip's own facing, as the trajectory agent's do")] = True,
        threads: Annotated[int, typer.Option(min=1)] = 2,
        stage1: Annotated[list[str] | None, typer.Option(
            "--stage1", help="stage-1 setting FIELD=VALUE for every model of the run (repeatable), e.g. "
                             "w_foot=0 to measure without the foot term")] = None,
        quick: Annotated[bool, typer.Option(help="tiny run: 8 cases, 4 steps")] = False,
        requests: Annotated[bool, typer.Option(
            help="also the second table: the same figures on the agent suite's requests")] = True,
        requests_dir: Annotated[Path, typer.Option(
            help="offline agent evaluation the request specs come from (run there first when empty; "
                 "resumable)")] = Path("runs/bench_control_requests"),
        requests_cases: Annotated[Path | None, typer.Option(
            help="folder of agent case files for the request table (default: the bundled suite)")] = None,
        out: Annotated[Path, typer.Option(help="JSON result (the request table: NAME_requests.json)")] = Path(
            "runs/bench_control.json"),
    ) -> None:
        """Controlled generation on real test clips: FID, R-precision, Diversity, foot skating,
        Traj/Loc/Avg err, keyframe MPJPE, text similarity, facing, jerk, penetration, floating for IKMo
        and its ablations on the same cases; then the same on the agent suite's requests."""
        import torch

        from ikmo.eval.bench_control import BenchConfig, build_runs, format_table, run_control_benchmark
        from ikmo.eval.cases import sample_cases
        from ikmo.eval.evaluator import load_evaluator
        from ikmo.motion_model.model.training import load_corpus
        from ikmo.motion_model.sampling import load_model

        torch.set_num_threads(threads)
        if stage1:
            from ikmo.motion_model.model_config import OptimizationConfig

            OptimizationConfig().with_settings(stage1)  # a bad setting fails before anything loads
        if quick:
            n_cases, steps = min(n_cases, 8), steps or 4
        cfg = BenchConfig(n_cases=n_cases, seed=seed, batch_size=batch_size, steps=steps,
                          guidance_scale=guidance_scale, diversity_pairs=50 if quick else 300)
        clips = load_corpus(corpus, split).clips
        cases = sample_cases(clips, n_cases, seed=seed, control_height=control_height, heading=case_heading)
        if not case_heading:
            cfg.notes.append("--no-case-heading: the test paths are bare positions (no facing)")
        names = [m.strip() for m in methods.split(",") if m.strip()]
        if baseline_weights is not None:
            from ikmo.eval.bench_control import BASELINE_METHODS

            # each of full IKMo, no_footlock and the ControlNet alone asked for gets its baseline row
            names += [b for b in BASELINE_METHODS if b not in names and b.removeprefix("baseline_") in names]
        model = load_model(weights) if set(names) - {"real"} else None
        if joint_weights is None and weights is None:
            from ikmo.eval.bench_control import BUNDLED_JOINT_WEIGHTS

            if (BUNDLED_JOINT_WEIGHTS / "model.safetensors").is_file():
                joint_weights = BUNDLED_JOINT_WEIGHTS
        joint = load_model(joint_weights) if joint_weights is not None else None
        ev = load_evaluator(evaluator)
        ev.info["path"] = str(evaluator or "bundled")
        baseline = load_model(baseline_weights) if baseline_weights is not None else None
        # Said under both tables: every model of the run samples with this stage 1.
        stage1_notes = [f"stage 1 set with --stage1: {', '.join(stage1)}"] if stage1 else []
        if stage1:
            for m in (model, joint, baseline):
                if m is not None:
                    m.optimization = m.optimization.with_settings(stage1)
        cfg.notes.extend(stage1_notes)
        runs = build_runs(model, names, joint, cfg.notes, baseline)
        if quick:
            cfg.notes.append("--quick: 8 cases, 4 steps; figures are a smoke test, not a measurement")
        progress = lambda m, b, n: log.info("%s: batch %d/%d", m, b, n)  # noqa: E731
        result = run_control_benchmark(runs, cases, ev, cfg, out, on_progress=progress)
        typer.echo("Test clips:")
        typer.echo(format_table(result["results"]))
        for note in cfg.notes:
            typer.echo(f"note: {note}")
        if requests and model is not None:
            from dataclasses import replace

            from ikmo.eval.bench_requests import by_group, format_by_group, suite_request_cases

            rcfg = replace(cfg, user_rig=True, notes=list(stage1_notes))
            rcases = suite_request_cases(requests_dir, requests_cases, weights=weights, notes=rcfg.notes)
            if quick:
                rcases = rcases[:8]
            rout = out.with_name(f"{out.stem}_requests.json")
            rruns = [r for r in runs if r.model is not None]
            rresult = run_control_benchmark(rruns, rcases, ev, rcfg, rout, on_progress=progress,
                                            reference=[c.features for c in cases if c.features is not None],
                                            benchmark="control_requests")
            typer.echo(f"\nThe agent suite's requests ({len(rcases)} motions as `ikmo generate` writes them; "
                       "FID against the test clips above):")
            typer.echo(format_table(rresult["results"]))
            typer.echo("\nBy suite category (mean distance from the planned path · share skating ≤ real · share ≤ the "
                       "real clips of its kind):")
            typer.echo(format_by_group(by_group(rresult), [r["method"] for r in rresult["results"]]))
            for note in rcfg.notes:
                typer.echo(f"note: {note}")
        typer.echo("FID/R-precision/Diversity: evaluator trained on our corpus, not comparable to published "
                   f"HumanML3D numbers. JSON: {out}" + (f", {out.with_name(out.stem + '_requests.json')}"
                                                        if requests and model is not None else ""))

    @bench.command("compare")
    def bench_compare(
        corpus: Annotated[Path, typer.Option(help="HumanML3D-layout corpus (cases: its test split)")] = DEFAULT_CORPUS,
        weights: Annotated[Path | None, typer.Option(help="checkpoint A (default: bundled, decoupled)")] = None,
        other_weights: Annotated[Path | None, typer.Option(
            help="checkpoint B (default: eval/weights/joint_encoder, the joint-encoder ablation)")] = None,
        names: Annotated[str, typer.Option(help="names of A and B in the table, comma-separated")] = (
            "decoupled,joint"),
        seeds: Annotated[str, typer.Option(help="seeds of cases, comma-separated (one case set each)")] = "0,1,2",
        n_cases: Annotated[int, typer.Option(min=2, help="cases per seed")] = 128,
        evaluator: Annotated[Path | None, typer.Option(help="evaluator .safetensors (default: bundled)")] = None,
        batch_size: Annotated[int, typer.Option(min=1)] = 16,
        steps: Annotated[int | None, typer.Option(help="DDIM steps (default: the checkpoint's)")] = None,
        case_heading: Annotated[bool, typer.Option(
            help="the test cases' paths carry the clip's own facing, as the trajectory agent's do")] = True,
        threads: Annotated[int, typer.Option(min=1)] = 2,
        out: Annotated[Path, typer.Option(help="JSON result")] = Path("runs/bench_compare.json"),
    ) -> None:
        """Two checkpoints (decoupled vs joint encoders by default), ControlNet alone and full IKMo, on
        several seeds of test cases, with 95 % confidence intervals of each figure and of the difference."""
        import torch

        from ikmo.eval.bench_compare import format_compare, run_compare
        from ikmo.eval.bench_control import BUNDLED_JOINT_WEIGHTS, BenchConfig
        from ikmo.eval.evaluator import load_evaluator
        from ikmo.motion_model.errors import ConfigError
        from ikmo.motion_model.fileio import write_json
        from ikmo.motion_model.model.training import load_corpus
        from ikmo.motion_model.sampling import load_model

        pair = tuple(n.strip() for n in names.split(","))
        if len(pair) != 2 or not all(pair) or pair[0] == pair[1]:
            raise ConfigError(f"--names {names!r}: give two different names, e.g. decoupled,joint")
        try:
            seed_list = [int(v) for v in seeds.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--seeds {seeds!r}: give integers, comma-separated, e.g. 0,1,2") from None
        if not seed_list:
            raise ConfigError("--seeds is empty: give at least one seed, e.g. 0,1,2")
        torch.set_num_threads(threads)
        model_a = load_model(weights)
        model_b = load_model(other_weights or BUNDLED_JOINT_WEIGHTS)
        for label, m in (("--weights", model_a), ("--other-weights", model_b)):
            if not m.has_controlnet:
                raise ConfigError(f"{label}: the checkpoint has no ControlNet to compare (train the control stage)")
        ev = load_evaluator(evaluator)
        ev.info["path"] = str(evaluator or "bundled")
        cfg = BenchConfig(n_cases=n_cases, batch_size=batch_size, steps=steps)
        progress = lambda m, b, n: log.info("%s: batch %d/%d", m, b, n)  # noqa: E731
        result = run_compare(model_a, model_b, load_corpus(corpus, "test").clips, ev, cfg, seed_list,
                             (pair[0], pair[1]), case_heading, on_progress=progress)
        result["weights"] = [str(weights or "bundled"), str(other_weights or BUNDLED_JOINT_WEIGHTS)]
        write_json(out, result)
        typer.echo(f"{pair[0]} ({result['weights'][0]}) vs {pair[1]} ({result['weights'][1]}), {n_cases} cases "
                   f"on each of seeds {seed_list}; 95 % intervals:")
        typer.echo(format_compare(result["summary"], pair))
        if not result["same_base"]:
            typer.echo("note: the two checkpoints have different base denoisers, so the differences above are "
                       "the bases' as well as the ControlNets' (`ikmo train graft` puts one ControlNet on the "
                       "other's base)")
        typer.echo(f"JSON: {out}")

    @bench.command("speed")
    def bench_speed(
        weights: Annotated[Path | None, typer.Option(help="motion model directory (default: bundled)")] = None,
        repeats: Annotated[int, typer.Option(min=1)] = 5,
        n_frames: Annotated[int, typer.Option(min=2)] = 196,
        n_keyframes: Annotated[int, typer.Option(min=0)] = 2,
        threads: Annotated[int, typer.Option(min=1)] = 2,
        full_baseline: Annotated[bool, typer.Option(help="run OmniControl's schedule for real (minutes)")] = False,
        memory: Annotated[bool, typer.Option(help="measure peak RSS in subprocesses")] = True,
        out: Annotated[Path, typer.Option(help="JSON result")] = Path("runs/bench_speed.json"),
    ) -> None:
        """Median seconds per controlled 196-frame motion vs OmniControl's 1000-step schedule."""
        from ikmo.eval.bench_speed import SpeedConfig, format_speed, run_speed_benchmark
        from ikmo.motion_model.fileio import write_json
        from ikmo.motion_model.sampling import load_model

        cfg = SpeedConfig(n_frames=n_frames, n_keyframes=n_keyframes, repeats=repeats, num_threads=threads,
                          full_baseline=full_baseline, measure_memory=memory)
        r = run_speed_benchmark(load_model(weights), cfg, weights)
        write_json(out, r.to_dict())
        typer.echo(format_speed(r))
        typer.echo(f"JSON: {out}")

    @bench.command("long")
    def bench_long(
        weights: Annotated[Path | None, typer.Option(help="motion model directory (default: bundled)")] = None,
        evaluator: Annotated[Path | None, typer.Option(help="evaluator .safetensors (default: bundled)")] = None,
        durations: Annotated[str, typer.Option(help="comma-separated seconds; the first is the baseline")] = "10,30,60",
        repeats: Annotated[int, typer.Option(min=1, help="runs per length (times: medians)")] = 3,
        seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 0,
        threads: Annotated[int, typer.Option(min=1)] = 2,
        preview: Annotated[bool, typer.Option(help="write (and time) preview.mp4 too")] = True,
        memory: Annotated[bool, typer.Option(help="measure peak memory in a fresh process per length")] = True,
        out: Annotated[Path, typer.Option(help="JSON result; the motions go into its folder")] = Path(
            "runs/bench_long.json"),
    ) -> None:
        """Motions of 10, 30 and 60 s in overlapping windows: seconds, peak memory, seam velocity jump,
        foot skating and text–motion similarity per window, with ratios to the first length."""
        from ikmo.eval.bench_long import LongConfig, format_long, run_long_benchmark
        from ikmo.eval.evaluator import load_evaluator
        from ikmo.motion_model.constraints import MAX_DURATION_S
        from ikmo.motion_model.errors import UsageError
        from ikmo.motion_model.fileio import write_json
        from ikmo.motion_model.sampling import load_model

        try:
            secs = tuple(float(d) for d in durations.split(",") if d.strip())
        except ValueError:
            raise UsageError(f"--durations {durations!r}: give seconds separated by commas, e.g. 10,30,60") from None
        if not secs or any(not 0 < d <= MAX_DURATION_S for d in secs):
            raise UsageError(f"--durations {durations!r}: each must be 0 < seconds <= {MAX_DURATION_S:g}")
        cfg = LongConfig(durations_s=secs, repeats=repeats, seed=seed, num_threads=threads, preview=preview,
                         measure_memory=memory)
        result = run_long_benchmark(load_model(weights), load_evaluator(evaluator), cfg, out.with_suffix(""), weights)
        write_json(out, result)
        typer.echo(format_long(result))
        typer.echo(f"JSON: {out}; motions in {out.with_suffix('')}/")

    @train.command("evaluator")
    def train_evaluator_cmd(
        corpus: Annotated[Path, typer.Option(help="HumanML3D-layout corpus")] = DEFAULT_CORPUS,
        out: Annotated[Path, typer.Option(help="weights file")] = Path("eval/weights/evaluator.safetensors"),
        max_steps: Annotated[int, typer.Option(min=1)] = 4000,
        max_minutes: Annotated[float | None, typer.Option(help="wall-clock budget")] = None,
        batch_size: Annotated[int, typer.Option(min=2)] = 64,
        text_encoder: Annotated[str, typer.Option(help="minilm | hash:<dim>")] = "minilm",
        seed: Annotated[int, typer.Option()] = 0,
        threads: Annotated[int, typer.Option(min=1)] = 1,
    ) -> None:
        """Train the contrastive text-motion evaluator used by `bench control`."""
        from ikmo.eval.evaluator import EvaluatorConfig, EvaluatorTrainConfig, train_evaluator
        from ikmo.motion_model.model.training import load_corpus

        tr = load_corpus(corpus, "train")
        val = load_corpus(corpus, "val").clips
        info = train_evaluator(tr.clips, val, tr.mean, tr.std, out, EvaluatorConfig(text_encoder=text_encoder),
                               EvaluatorTrainConfig(max_steps=max_steps, max_minutes=max_minutes,
                                                    batch_size=batch_size, seed=seed, num_threads=threads))
        typer.echo(f"evaluator: {out}; best val {info['best']}; {info['steps']} steps in {info['minutes']} min")
