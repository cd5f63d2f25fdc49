"""Training picks its device explicitly: the GPU when one is at hand, else the CPU (never a global)."""

from __future__ import annotations

import pytest
import torch

from ikmo.motion_model.model.training import resolve_device

pytestmark = pytest.mark.unit


def test_auto_follows_what_torch_sees(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")  # torchrun's rank-local GPU
    assert resolve_device("auto") == torch.device("cuda", 1)


def test_explicit_names_are_taken_as_given() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda:2") == torch.device("cuda", 2)
