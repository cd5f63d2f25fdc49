"""The edge checks: keyframe arguments, thread names, loopback hosts, one-line validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ikmo.agents.inputs import check_thread_id, parse_keyframe_arg
from ikmo.agents.state import MotionRequest
from ikmo.motion_model.errors import InputFileError, UsageError, validation_message
from ikmo.server import is_loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "127.255.0.9", "localhost", "::1"])
def test_loopback_addresses_are_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "nosuchhost.invalid", ""])
def test_other_hosts_are_not(host: str) -> None:
    assert not is_loopback(host)


def test_keyframe_argument_names_the_time_or_the_file(tmp_path: Path) -> None:
    photo = tmp_path / "me@home.png"
    photo.write_bytes(b"x")
    assert parse_keyframe_arg(str(photo)).time_s is None  # an '@' in an existing name is part of it
    assert parse_keyframe_arg(f"{photo}@2.5s").time_s == 2.5
    assert parse_keyframe_arg(f"{photo}@1e2").time_s == 100.0  # after the end: the agents' to judge (a question)
    for bad in ("-1", "nan", "inf", "-inf"):
        with pytest.raises(UsageError, match=f"the time {bad} is not a number of seconds >= 0"):
            parse_keyframe_arg(f"{photo}@{bad}")
    with pytest.raises(InputFileError, match="is a folder"):
        parse_keyframe_arg(str(tmp_path))
    with pytest.raises(InputFileError, match="not a regular file"):
        parse_keyframe_arg("/dev/zero@1")


@pytest.mark.parametrize("tid", ["../../x", "/abs/path", "a/b", "..", "", "x" * 65, "a b"])
def test_a_thread_id_is_a_name_not_a_path(tid: str) -> None:
    with pytest.raises(UsageError, match="a thread id is a name"):
        check_thread_id(tid)


def test_validation_message_is_one_line_with_field_value_and_range() -> None:
    with pytest.raises(ValidationError) as e:
        MotionRequest(text="walk\nnow", duration_s=1000.0, seed=2**64, out_dir="o")
    msg = validation_message(e.value, {"duration_s": "--duration"}, allowed={"duration_s": "0 < seconds <= 120"})
    assert "\n" not in msg
    assert "--duration = 1000.0: input should be less than or equal to 120 (allowed: 0 < seconds <= 120)" in msg
    assert "seed = 18446744073709551616: input should be less than or equal to 4294967295" in msg
