"""The text-motion evaluator: a small contrastive model whose embeddings FID, Diversity and
R-precision are computed on (Guo et al., CVPR 2022; TMR, Petrovich et al., ICCV 2023).

Motion side: a 2-layer transformer over normalised HumanML3D features (foot contacts dropped, as
Guo et al.'s evaluator does), masked mean pooling, a linear projection. Text side: the frozen
sentence embedding of `ikmo.motion_model.model.text_encoder` (MiniLM, 384-d) through a trainable MLP.
Both land on the unit sphere; training is symmetric InfoNCE with temperature τ, where in-batch
negatives whose caption is nearly the same sentence (cosine > `dup_threshold` of the frozen text
embeddings) are masked out, as TMR does, since "a person walks" twice is no negative pair.

It is trained on OUR corpus (see eval/weights/evaluator.md): its FID/R-precision figures are not
comparable to published HumanML3D numbers, which use Guo et al.'s evaluator trained on HumanML3D.

Weights: one safetensors file; the config, the text encoder's name, the feature Mean/Std (as
tensors) and the training metrics travel inside it, so loading needs nothing else.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ikmo.motion_model.errors import ConfigError, InputFileError, MotionDataError
from ikmo.motion_model.fileio import atomic_path
from ikmo.motion_model.model.networks import sinusoid
from ikmo.motion_model.model.text_encoder import CachedTextEncoder, build_text_encoder
from ikmo.motion_model.model.training import Clip
from ikmo.motion_model.representation.skeleton import HUMANML3D_22, MAX_FRAMES

from . import metrics

log = logging.getLogger(__name__)

N_CONTACT_FEATURES = 4  # the last 4 of the 263 features are binary foot contacts
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "evaluator.safetensors"


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvaluatorConfig(_Cfg):
    """Sizes of the evaluator; saved inside its checkpoint."""

    feature_dim: int = Field(default=HUMANML3D_22.feature_dim, ge=5)
    d_model: int = Field(default=128, ge=8)
    n_layers: int = Field(default=2, ge=1)
    n_heads: int = Field(default=4, ge=1)
    ff_dim: int = Field(default=256, ge=8)
    # 64-d: FID needs a covariance estimated from ~100 motions per method; 128-d would be rank-deficient
    latent_dim: int = Field(default=64, ge=2)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    max_len: int = Field(default=MAX_FRAMES, ge=2, description="longest feature sequence, rows")
    text_encoder: str = Field(default="minilm", description="minilm | hash:<dim>")
    text_dim: int = Field(default=384, ge=1)
    temperature: float = Field(default=0.1, gt=0)
    dup_threshold: float = Field(default=0.95, gt=0, le=1)


class EvaluatorTrainConfig(_Cfg):
    batch_size: int = Field(default=64, ge=2)
    lr: float = Field(default=3e-4, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    max_steps: int = Field(default=4000, ge=1)
    max_minutes: float | None = Field(default=None, gt=0)
    min_len: int = Field(default=20, ge=2, description="shortest random crop, feature rows")
    eval_every: int = Field(default=250, ge=1)
    seed: int = 0
    # 1 thread: on a shared 2-core machine a second thread mostly waits on the other jobs
    num_threads: int = Field(default=1, ge=1)


class TextMotionEvaluator(nn.Module):
    """Contrastive text-motion embedding model. See the module docstring."""

    mean: torch.Tensor  # buffer (F,): feature normalisation
    std: torch.Tensor  # buffer (F,)
    pos: torch.Tensor  # buffer (max_len, d_model): sinusoidal position embeddings

    def __init__(self, cfg: EvaluatorConfig, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        n_in = cfg.feature_dim - N_CONTACT_FEATURES
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(cfg.feature_dim))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(cfg.feature_dim))
        self.register_buffer("pos", sinusoid(torch.arange(cfg.max_len), d), persistent=False)
        self.input_proj = nn.Linear(n_in, d)
        self.layers = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, cfg.n_heads, cfg.ff_dim, cfg.dropout, activation="gelu",
                                       batch_first=True, norm_first=True),
            cfg.n_layers, enable_nested_tensor=False,
        )
        self.motion_out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, cfg.latent_dim))
        self.text_head = nn.Sequential(nn.Linear(cfg.text_dim, 2 * d), nn.GELU(), nn.Linear(2 * d, cfg.latent_dim))

    def encode_motion(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Unit-norm motion embeddings (B, latent). features: (B, L, F) raw HumanML3D features;
        lengths: (B,) long, valid rows of each (1 ≤ length ≤ L ≤ max_len)."""
        _, n_rows, n_feat = features.shape
        if n_feat != self.cfg.feature_dim:
            raise MotionDataError(f"evaluator expects {self.cfg.feature_dim} features per row, got {n_feat}")
        if n_rows > self.cfg.max_len:
            raise MotionDataError(f"evaluator takes at most {self.cfg.max_len} rows, got {n_rows}; crop the motion")
        x = ((features - self.mean) / self.std)[..., : n_feat - N_CONTACT_FEATURES]
        valid = torch.arange(n_rows, device=features.device)[None] < lengths.to(features.device)[:, None]
        h = self.input_proj(x) + self.pos[:n_rows]
        h = self.layers(h, src_key_padding_mask=~valid)
        w = valid.float()[..., None]
        pooled = (h * w).sum(1) / w.sum(1).clamp(min=1.0)
        return F.normalize(self.motion_out(pooled), dim=-1)

    def encode_text(self, text_emb: torch.Tensor) -> torch.Tensor:
        """Unit-norm text embeddings (B, latent) from frozen sentence embeddings (B, text_dim)."""
        return F.normalize(self.text_head(text_emb), dim=-1)


def infonce_loss(text_z: torch.Tensor, motion_z: torch.Tensor, temperature: float,
                 text_raw: torch.Tensor | None = None, dup_threshold: float = 0.95) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of matched pairs; text_z, motion_z: (B, D) unit-norm.

    text_raw: (B, E) unit-norm frozen text embeddings; off-diagonal pairs more similar than
    `dup_threshold` are removed from the negatives.
    """
    logits = text_z @ motion_z.T / temperature
    if text_raw is not None:
        dup = (text_raw @ text_raw.T) > dup_threshold
        dup.fill_diagonal_(False)
        logits = logits.masked_fill(dup, float("-inf"))
    target = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


# --------------------------------------------------------------------------- batching


def pad_features(feats: Sequence[np.ndarray | torch.Tensor], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (L_i, F) feature arrays into (B, L_max, F) float32 zero-padded + lengths (B,) long.
    Sequences longer than `max_len` are cut to their first `max_len` rows."""
    if not feats:
        raise MotionDataError("no motions to encode")
    ts = [torch.as_tensor(np.asarray(f), dtype=torch.float32)[:max_len] for f in feats]
    for i, t in enumerate(ts):
        if t.ndim != 2 or t.shape[0] < 1:
            raise MotionDataError(f"motion {i}: features must be (L>=1, F), got {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            raise MotionDataError(f"motion {i}: features contain NaN or infinity")
    lengths = torch.tensor([t.shape[0] for t in ts])
    out = torch.zeros(len(ts), int(lengths.max()), ts[0].shape[1])
    for i, t in enumerate(ts):
        out[i, : t.shape[0]] = t
    return out, lengths


class Evaluator:
    """A loaded evaluator with its text encoder: what benchmarks use."""

    def __init__(self, model: TextMotionEvaluator, text_encoder: CachedTextEncoder, device: torch.device,
                 info: dict[str, object] | None = None) -> None:
        self.model, self.text_encoder, self.device = model.eval(), text_encoder, device
        self.info = info or {}

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """(N, latent) float32 unit-norm text embeddings."""
        out = [self.model.encode_text(self.text_encoder.encode(list(texts[i:i + batch_size])).to(self.device))
               for i in range(0, len(texts), batch_size)]
        return torch.cat(out).cpu().numpy()

    @torch.no_grad()
    def embed_motions(self, feats: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """(N, latent) float32 unit-norm motion embeddings of raw feature arrays (L_i, F)."""
        out = []
        for i in range(0, len(feats), batch_size):
            x, lengths = pad_features(feats[i:i + batch_size], self.model.cfg.max_len)
            out.append(self.model.encode_motion(x.to(self.device), lengths.to(self.device)))
        return torch.cat(out).cpu().numpy()


# --------------------------------------------------------------------------- checkpoints


def save_evaluator(path: Path, model: TextMotionEvaluator, info: dict[str, object]) -> Path:
    """Write the weights + config + info atomically as safetensors."""
    from safetensors.torch import save_file

    meta = {"config": model.cfg.model_dump_json(), "info": json.dumps(info, default=str)}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return Path(path)


def load_evaluator(path: Path | None = None, device: torch.device | None = None) -> Evaluator:
    """Load an evaluator checkpoint (default: the bundled eval/weights/evaluator.safetensors)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    device = device or torch.device("cpu")
    if not path.is_file():
        raise InputFileError(f"evaluator weights {path} not found; train them with `ikmo train evaluator` "
                             "or pass --evaluator PATH")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        cfg = EvaluatorConfig.model_validate_json(meta["config"])
        state = load_file(str(path))
    except (KeyError, ValueError, OSError) as e:
        raise InputFileError(f"{path} is not an evaluator checkpoint ({e}); retrain with `ikmo train evaluator`") from e
    model = TextMotionEvaluator(cfg, state["mean"], state["std"])
    model.load_state_dict(state)
    model.to(device)
    text_encoder = build_text_encoder(cfg.text_encoder)
    if text_encoder.dim != cfg.text_dim:
        raise ConfigError(f"{path}: text encoder {cfg.text_encoder} gives {text_encoder.dim}-d, "
                          f"the model wants {cfg.text_dim}")
    return Evaluator(model, text_encoder, device, json.loads(meta.get("info", "{}")))


# --------------------------------------------------------------------------- training


def _crop(feat: np.ndarray, rng: np.random.Generator, min_len: int, max_len: int) -> np.ndarray:
    n_rows = feat.shape[0]
    if n_rows <= min_len:
        return feat
    # at least half the clip: a caption describes the whole clip, a short crop may miss its action
    hi = min(n_rows, max_len)
    n = int(rng.integers(min(max(min_len, n_rows // 2), hi), hi + 1))
    s = int(rng.integers(0, n_rows - n + 1))
    return feat[s:s + n]


def retrieval_metrics(ev: Evaluator, items: Sequence[Clip], seed: int = 0) -> dict[str, float]:
    """R-precision (top 1-3, pools of 32) and matching score of an evaluator on items (first caption,
    whole clips cut to max_len)."""
    t = ev.embed_texts([it.captions[0] for it in items])
    m = ev.embed_motions([it.features for it in items])
    s = metrics.r_precision(t, m, top_k=3, pool_size=32, seed=seed)
    return {"r_precision_top1": s.r_precision[0], "r_precision_top2": s.r_precision[1],
            "r_precision_top3": s.r_precision[2], "matching_score": s.matching_score}


def train_evaluator(
    train: Sequence[Clip],
    val: Sequence[Clip],
    mean: np.ndarray,
    std: np.ndarray,
    out: Path,
    cfg: EvaluatorConfig | None = None,
    tcfg: EvaluatorTrainConfig | None = None,
    device: torch.device | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, object]:
    """Train the evaluator on `train`, report retrieval on `val`, save the best-val checkpoint to `out`.

    mean, std: (F,) feature statistics of the corpus (std > 0). Returns the info saved with the weights.
    """
    cfg, tcfg = cfg or EvaluatorConfig(), tcfg or EvaluatorTrainConfig()
    device = device or torch.device("cpu")
    if len(train) < 2:
        raise MotionDataError(f"the evaluator needs at least 2 training clips, got {len(train)}")
    torch.set_num_threads(tcfg.num_threads)
    torch.manual_seed(tcfg.seed)
    rng = np.random.default_rng(tcfg.seed)
    text_encoder = build_text_encoder(cfg.text_encoder)
    if text_encoder.dim != cfg.text_dim:
        cfg = cfg.model_copy(update={"text_dim": text_encoder.dim})
    std = np.where(np.asarray(std) < 1e-6, 1.0, std)  # constant features (padding joints) stay finite
    model = TextMotionEvaluator(cfg, torch.as_tensor(mean), torch.as_tensor(std)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    # linear warm-up over 200 steps, then cosine decay to 0 at max_steps
    n_max = tcfg.max_steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(s, n_max) / n_max)))
    # Frozen sentence embeddings of every caption, computed once.
    captions = sorted({c for it in train for c in it.captions})
    t0 = time.perf_counter()
    cap_emb = dict(zip(captions, text_encoder.encode(captions), strict=True))
    log.info("embedded %d captions with %s in %.1fs", len(captions), cfg.text_encoder, time.perf_counter() - t0)

    ev = Evaluator(model, text_encoder, device)
    best: dict[str, float] = {}
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = []
    bs = min(tcfg.batch_size, len(train))
    start, step, loss_ema = time.perf_counter(), 0, float("nan")
    while step < tcfg.max_steps:
        if tcfg.max_minutes is not None and time.perf_counter() - start > 60 * tcfg.max_minutes:
            log.info("time budget of %.1f min reached at step %d", tcfg.max_minutes, step)
            break
        model.train()
        idx = rng.choice(len(train), size=bs, replace=False)
        items = [train[i] for i in idx]
        x, lengths = pad_features([_crop(it.features, rng, tcfg.min_len, cfg.max_len) for it in items], cfg.max_len)
        raw = torch.stack([cap_emb[it.captions[int(rng.integers(len(it.captions)))]] for it in items]).to(device)
        loss = infonce_loss(model.encode_text(raw), model.encode_motion(x.to(device), lengths.to(device)),
                            cfg.temperature, raw, cfg.dup_threshold)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        lv = float(loss.detach())
        loss_ema = lv if math.isnan(loss_ema) else 0.98 * loss_ema + 0.02 * lv
        if on_step is not None:
            on_step(step, lv)
        if step % tcfg.eval_every == 0 or step == tcfg.max_steps:
            model.eval()
            m = retrieval_metrics(ev, val) if len(val) >= 2 else {}
            m.update(step=step, loss=loss_ema)
            history.append(m)
            log.info("step %d loss %.3f val %s", step, loss_ema, {k: round(v, 3) for k, v in m.items()})
            key = m.get("r_precision_top3", -step)
            if not best or key >= best.get("r_precision_top3", -math.inf):
                best = m
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is None:  # stopped by the clock before the first evaluation
        model.eval()
        best = retrieval_metrics(ev, val) if len(val) >= 2 else {}
        best.update(step=step, loss=loss_ema)
    else:
        model.load_state_dict(best_state)
    info: dict[str, object] = {
        "train_clips": len(train), "val_clips": len(val), "steps": step, "best": best,
        "history": history, "train_config": tcfg.model_dump(),
        "minutes": round((time.perf_counter() - start) / 60, 2),
    }
    save_evaluator(out, model, info)
    log.info("saved evaluator to %s (best val %s)", out, best)
    return info
