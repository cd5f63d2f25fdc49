"""Checks shared by the commands' options (light: no numpy, no torch)."""

from __future__ import annotations

import math

import typer


def finite(value: float | None) -> float | None:
    """A typer callback: refuse NaN and infinity, which click's ranges let through (a usage error)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value
