"""The bounds every edge checks (CLI flags, HTTP fields, spec files, settings). No imports, so the
command line can name them in its options without loading numpy or pydantic."""

from __future__ import annotations

MAX_SEED = 2**32 - 1  # seeds are 0 ... 2^32 - 1 everywhere
MAX_GUIDANCE_SCALE = 100.0  # classifier-free guidance; the model's default is a few units
MAX_OPTIMIZATION_STEPS = 1000  # stage-1 gradient steps per selected DDIM step (default 1): beyond, minutes of work
MAX_FPS = 1000.0  # frames per second of a motion file (the model samples at 20)
MAX_DIFFUSION_STEPS = 1000  # DDIM steps of one sample: the training schedule's length (default 10)
MAX_COORDINATE_M = 10_000.0  # |x|, |y|, |z| of a joint in a motion file: 10 km from the origin
MAX_DURATION_S = 120.0  # seconds of one motion (generated in overlapping model windows; 9.8 s each): 2 min
