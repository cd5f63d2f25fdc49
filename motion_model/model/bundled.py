"""Where the bundled motion model lives, resolvable without importing torch.

The agents' process of `ikmo generate` checks the weights folder before it starts the tool process
(`ikmo.tools.worker`), so a wrong `--weights` still fails at once, with nothing written.
"""

from __future__ import annotations

from pathlib import Path

from ikmo.motion_model.errors import ConfigError

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights"


def weights_dir(weights: str | Path | None = None) -> Path:
    """The model folder to load: `weights`, or the bundled one when None.

    Raises ConfigError when the folder holds no `model.safetensors`.
    """
    wdir = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    if not (wdir / "model.safetensors").is_file():
        hint = "the bundled weights are missing from this install" if weights is None else "check the path"
        raise ConfigError(f"no model weights at {wdir} ({hint}); train with `ikmo train base` or pass --weights")
    return wdir
