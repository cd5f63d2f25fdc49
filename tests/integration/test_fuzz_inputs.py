"""A bounded fuzz pass (hypothesis) over the two documents a user hands IKMo: the body of
POST /v1/generate, against a real server on 127.0.0.1 (the real graph, the tiny model), and the spec
JSON of `ikmo sample --spec`, read by the same function the command uses. Neither may answer a 5xx
or raise anything but the one-line user errors. Each pass is bounded in time (`FUZZ_SECONDS`) as
well as in examples, and derandomized so CI sees the same cases every run."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import make_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ikmo.server import MotionService, make_server

pytestmark = pytest.mark.integration

FUZZ_SECONDS = 25.0  # per pass; two passes: under a minute in CI
_FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None,
                 suppress_health_check=list(HealthCheck))

_numbers = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False, allow_infinity=False),
                     st.sampled_from([0, -1, 1e308, 9.8, 9.81, 2**32, 2**64]))
_scalars = st.one_of(st.none(), st.booleans(), _numbers, st.text(max_size=30))
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                           max_size=4), max_leaves=12)
_texts = st.one_of(st.text(max_size=60), st.sampled_from(["walk forward 2 meters", "run 100 meters in 1 second",
                                                          "strike this pose at 1 s", "", " "]))
_keyframe = st.fixed_dictionaries({}, optional={"image_base64": st.one_of(st.text(max_size=20), st.just("aGVsbG8=")),
                                                "path": st.sampled_from(["/nowhere.png", "/dev/null", "/", "x.png"]),
                                                "time_s": _numbers, "extra": _scalars})
_body = st.one_of(
    st.fixed_dictionaries({"text": _texts}, optional={"seed": _numbers, "duration_s": _numbers,
                                                      "keyframes": st.lists(_keyframe, max_size=3) | _scalars}),
    _json)


class _Budget:
    """Stop drawing new examples after `seconds` (hypothesis bounds examples, not time)."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.runs = 0

    def spent(self) -> bool:
        self.runs += 1
        return time.monotonic() > self.end


@pytest.fixture(scope="module")
def api(model, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    service = MotionService(make_context(model, critique_rounds=0, preview=False),
                            tmp_path_factory.mktemp("fuzz_serve"))
    server = make_server(service, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fuzz_generate_body_never_5xx(api: str) -> None:
    budget = _Budget(FUZZ_SECONDS)
    seen: dict[int, int] = {}

    @_FUZZ
    @given(body=_body)
    def one(body: Any) -> None:
        if budget.spent():
            return
        r = httpx.post(f"{api}/v1/generate", content=json.dumps(body), timeout=120,
                       headers={"Content-Type": "application/json"})
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert r.status_code in (200, 400, 422), f"{r.status_code} for {body!r}: {r.text[:500]}"
        assert "error" in r.json() or r.status_code == 200

    one()
    assert sum(seen.values()) >= 20, seen  # the budget let a real number of requests through
    assert seen.get(400, 0) > 0


def _spec_strategy() -> st.SearchStrategy[Any]:
    desc = st.fixed_dictionaries({"text": _texts, "duration_s": _numbers},
                                 optional={"segments": st.lists(st.fixed_dictionaries(
                                     {"action": _texts, "start_s": _numbers, "end_s": _numbers}), max_size=2)})
    kf = st.fixed_dictionaries({"time_s": _numbers, "joints": st.lists(st.lists(_numbers, min_size=3, max_size=3),
                                                                        min_size=0, max_size=22)})
    traj = st.fixed_dictionaries({"positions": st.lists(st.lists(_numbers, min_size=3, max_size=3), max_size=5),
                                  "mask": st.lists(st.booleans(), max_size=5)})
    opts = st.fixed_dictionaries({}, optional={"seed": _numbers, "guidance_scale": _numbers,
                                               "optimization_steps": _numbers, "use_controlnet": _scalars})
    return st.one_of(st.fixed_dictionaries({"description": desc, "n_frames": _numbers},
                                           optional={"keyframes": st.lists(kf, max_size=2), "trajectory": traj,
                                                     "fps": _numbers, "options": opts}), _json)


def test_fuzz_spec_json_is_read_or_refused_in_one_line(tmp_path: Path) -> None:
    """Every spec file either reads and passes `check()`, or fails with the user errors `ikmo sample`
    prints in one line (never another exception)."""
    from ikmo.commands.model import read_spec
    from ikmo.motion_model.errors import ConstraintError, InputFileError

    budget = _Budget(FUZZ_SECONDS)
    outcomes = {"ok": 0, "refused": 0}
    path = tmp_path / "spec.json"

    @_FUZZ
    @given(spec=_spec_strategy())
    def one(spec: Any) -> None:
        if budget.spent():
            return
        path.write_text(json.dumps(spec))
        try:
            read_spec(path).check()
        except (ConstraintError, InputFileError) as e:
            assert "\n" not in str(e), str(e)
            outcomes["refused"] += 1
        else:
            outcomes["ok"] += 1

    one()
    assert sum(outcomes.values()) >= 50, outcomes

