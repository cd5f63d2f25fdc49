"""The one `ikmo` command. Subcommands live in `ikmo/commands/<room>.py`, each exposing
`register(app, groups)`; heavy imports happen inside the commands so `ikmo --help` stays fast."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from ikmo.motion_model.errors import IKMoError
from ikmo.tools.logging_setup import setup_logging

log = logging.getLogger("ikmo")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

app = typer.Typer(name="ikmo", help="IKMo: words and photos in, 3D human motion out.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
groups: dict[str, typer.Typer] = {
    "data": typer.Typer(help="Build and inspect motion corpora.", no_args_is_help=True),
    "train": typer.Typer(help="Train the motion model (resumable).", no_args_is_help=True),
    "bench": typer.Typer(help="Benchmarks: print a table, write JSON.", no_args_is_help=True),
    "eval": typer.Typer(help="Scripted evaluations of the agents (cases x providers).", no_args_is_help=True),
    "llm": typer.Typer(help="Local LLMs behind llama.cpp's OpenAI-compatible server.", no_args_is_help=True),
    "study": typer.Typer(help="The paper's user study: build stimuli, serve them, simulate raters, analyse.",
                         no_args_is_help=True),
}

# Each room's commands; a module listed here must exist (no silent skipping of a broken import).
COMMAND_MODULES: list[str] = ["ikmo.commands.data", "ikmo.commands.bench_model", "ikmo.commands.export",
                              "ikmo.commands.model", "ikmo.commands.agents", "ikmo.commands.pose",
                              "ikmo.commands.eval_agents", "ikmo.commands.study"]


@app.callback()
def _root(
    log_level: Annotated[str | None, typer.Option(
        help="DEBUG, INFO, WARNING, ERROR (env IKMO_LOG_LEVEL, `log_level` in the config file) [default: INFO]",
        envvar="IKMO_LOG_LEVEL")] = None,
    config: Annotated[Path | None, typer.Option(
        help="YAML file of settings (see README 'Configuration'); flags and IKMO_* env beat it", envvar="IKMO_CONFIG")]
    = None,
) -> None:
    """The root options reach every command's settings through the environment (`ikmo.config.resolve`
    reads IKMO_CONFIG and IKMO_LOG_LEVEL), so the configuration is resolved in one place, once."""
    import os

    if log_level is not None:
        if log_level.upper() not in LOG_LEVELS:
            raise typer.BadParameter(f"{log_level!r} is not a log level; choose one of {', '.join(LOG_LEVELS)}",
                                     param_hint="'--log-level'")
        os.environ["IKMO_LOG_LEVEL"] = log_level
    setup_logging(log_level)
    if config is not None:
        from ikmo.config import CONFIG_ENV, read_config_file

        read_config_file(config)  # a missing or broken file is an error for every command, before any work
        os.environ[CONFIG_ENV] = str(config)


def _build() -> typer.Typer:
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(app, groups)
    for name, group in groups.items():
        if group.registered_commands or group.registered_groups:
            app.add_typer(group, name=name)
    return app


def _usage_error(e: Exception) -> int:
    """Show a command-line usage error the way typer does (usage line, hint, one `Error:` line) and
    return its exit code: 2 for every usage error, whichever click raised it."""
    show = getattr(e, "show", None)
    if callable(show):
        show()
    else:  # pragma: no cover - every click exception has show()
        sys.stderr.write(f"Error: {e}\n")
    code = getattr(e, "exit_code", 2)
    return code if isinstance(code, int) and code not in (0, 1) else 2


def main() -> None:
    """Entry point: run the CLI; turn user-caused errors into a one-line message and exit code 2.

    Usage errors come from typer's own vendored click (`typer.TyperException`, not a subclass of
    `click.ClickException`) or, from commands built on plain click, from click itself: both print
    typer's usage message. An `OSError` that reaches here (a file vanished, a disk filled up while
    writing) is the machine's answer to a path the user chose: one line, not a traceback.
    """
    import click

    cli = _build()
    try:
        cli(standalone_mode=False)
    except IKMoError as e:
        log.error("%s", e)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, click.Abort, KeyboardInterrupt):
        sys.exit(130)
    except (typer.TyperException, click.ClickException) as e:
        sys.exit(_usage_error(e))
    except OSError as e:
        log.debug("OS error", exc_info=True)
        where = f" ({e.filename})" if e.filename else ""
        log.error("%s%s; check that the path exists, is writable and that the disk has space", e.strerror or e,
                  where)
        sys.exit(2)


if __name__ == "__main__":
    main()
