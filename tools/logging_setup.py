"""Logging is configured once, here, by the application shell; library code only logs."""

from __future__ import annotations

import logging
import os


def setup_logging(level: str | int | None = None) -> None:
    """Configure the root logger once; `IKMO_LOG_LEVEL` or `level` sets the threshold."""
    lvl = level if level is not None else os.environ.get("IKMO_LOG_LEVEL", "INFO")
    if isinstance(lvl, str):
        lvl = getattr(logging, lvl.upper(), logging.INFO)
    logging.basicConfig(
        level=lvl,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    # Third-party chatter that drowns our messages at INFO.
    for noisy in ("httpx", "httpcore", "urllib3", "absl", "matplotlib", "PIL", "vcr"):
        logging.getLogger(noisy).setLevel(max(lvl, logging.WARNING))
