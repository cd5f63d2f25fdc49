"""Gaussian diffusion over normalised motion features: cosine schedule, DDPM training loss,
DDIM sampling with classifier-free guidance, stage-1 motion optimization and progress callbacks.

The network predicts x0 (MDM). DDIM update from a predicted x0 at step t to the previous step s:
    eps  = (x_t - sqrt(ab_t) x0) / sqrt(1 - ab_t)
    x_s  = sqrt(ab_s) x0 + sqrt(1 - ab_s - sigma²) eps + sigma z
where ab is the cumulative product of alphas and sigma = eta · DDIM's stochastic scale.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch

from ikmo.motion_model.control.control_batch import ControlBatch
from ikmo.motion_model.model.networks import ROOT_CHANNELS, IKMoNet, root_targets
from ikmo.motion_model.model_config import DiffusionConfig
from ikmo.motion_model.representation.features import feature_layout

log = logging.getLogger(__name__)

OnStep = Callable[[int, int], None]
# Stage-1 hook: (x0 normalised (B, L, F), step index, total steps) → corrected x0.
X0Hook = Callable[[torch.Tensor, int, int], torch.Tensor]


def cosine_alphas_cumprod(n_steps: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal cosine schedule: (n_steps,) float64 cumulative alphas, clipped betas ≤ 0.999."""
    x = torch.linspace(0, n_steps, n_steps + 1, dtype=torch.float64)
    f = torch.cos(((x / n_steps) + s) / (1 + s) * math.pi / 2) ** 2
    ab = f / f[0]
    betas = (1 - ab[1:] / ab[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0)


class GaussianDiffusion:
    """Schedule + training loss + DDIM sampler. Stateless apart from the schedule tensors."""

    def __init__(self, cfg: DiffusionConfig) -> None:
        self.cfg = cfg
        self.alphas_cumprod = cosine_alphas_cumprod(cfg.train_steps)

    def _ab(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.alphas_cumprod.to(like.device)[t].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Noised x_t (B, L, F) from clean x0 at integer steps t (B,)."""
        ab = self._ab(t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def training_loss(
        self,
        net: torch.nn.Module,
        x0: torch.Tensor,
        valid: torch.Tensor,
        text: torch.Tensor,
        text_keep: torch.Tensor,
        generator: torch.Generator,
        control: ControlBatch | None = None,
        extra_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        xt_hook: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        rollout_prob: float = 0.0,
        rollout_steps: int = 1,
    ) -> torch.Tensor:
        """Masked x0-prediction MSE (a scalar). x0: (B, L, F) normalised; valid: (B, L) bool.

        `net` is an `IKMoNet` or a DDP wrapper of one; random draws come from `generator`.
        `extra_loss` maps the predicted x0 (B, L, F) and the steps t (B,) to a scalar added to the MSE
        (the constraint, root and geometric losses); `xt_hook` may alter the noised input while the target stays x0.
        `rollout_prob`: the share of motions whose x_t comes from the sampler instead (`rollout_xt`), in a
        chain of 1..`rollout_steps` steps (drawn per batch: one chain length keeps the passes batched).
        """
        B = x0.shape[0]
        t = torch.randint(0, self.cfg.train_steps, (B,), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        x_t = self.q_sample(x0, t, noise) * valid[..., None]
        if rollout_prob > 0:
            pick = (torch.rand(B, generator=generator) < rollout_prob).to(x0.device)
            if bool(pick.any()):
                k = int(torch.randint(1, rollout_steps + 1, (1,), generator=generator))
                rolled = self.rollout_xt(net, x0, t, noise, valid, text, text_keep, control, n_steps=k)
                x_t = torch.where(pick[:, None, None], rolled, x_t)
        if xt_hook is not None:  # (x_t, sqrt(ᾱ_t) (B, 1, 1)) → a corrupted x_t, e.g. `training.swap_roots`
            x_t = xt_hook(x_t, self._ab(t, x0).sqrt()) * valid[..., None]
        pred = net(x_t, t, text, text_keep, valid, control)
        err = ((pred - x0) ** 2).mean(-1) * valid
        loss = err.sum() / valid.sum().clamp(min=1)
        return loss + extra_loss(pred, t) if extra_loss is not None else loss

    def rollout_stride(self) -> int:
        """Distance between two steps of the default sampler's evenly spaced grid (111 for 10 of 1,000)."""
        return max(1, round((self.cfg.train_steps - 1) / max(1, self.cfg.sample_steps - 1)))

    @torch.no_grad()
    def rollout_xt(self, net: torch.nn.Module, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                   valid: torch.Tensor, text: torch.Tensor, text_keep: torch.Tensor,
                   control: ControlBatch | None, n_steps: int = 1) -> torch.Tensor:
        """x_t (B, L, F) as the sampler makes it: `n_steps` deterministic DDIM steps down a grid of the
        sampler's stride to t, each from the network's own prediction, starting from noised ground truth
        (the same `noise`) at s = min(t + n_steps·stride, train_steps − 1). Grid points above the top
        collapse onto it (no step); where all do, x_t is plain noised ground truth.

        Why: the network is trained on q(x_t | x0) but sampled on its own earlier predictions. Measured on
        16 travelling test windows (ControlNet alone, docs/eval.md): started from noised ground truth at
        t = 888 the 10-step chain ends 1.05× the true path length, started from pure noise 1.49×, and
        nearly all of the excess appears at the first step, 999 → 888, whose x_888 is 0.17 × a
        prediction made from no signal at all (a blurred mean motion) plus noise. Trained on one step,
        the excess moved to the next step (888 → 777): hence chains of several.
        """
        top = self.cfg.train_steps - 1
        stride = self.rollout_stride()
        grid = [(t + j * stride).clamp(max=top) for j in range(n_steps, -1, -1)]  # s_k, ..., s_0 = t
        x = self.q_sample(x0, grid[0], noise) * valid[..., None]
        modes = [(m, m.training) for m in net.modules()]  # per module: a frozen base stays in eval mode
        net.eval()  # as at sampling: no dropout in the predictions the steps are made from
        try:
            for s, nxt in zip(grid[:-1], grid[1:], strict=True):
                moves = s != nxt
                if not bool(moves.any()):
                    continue
                x0_hat = net(x, s, text, text_keep, valid, control) * valid[..., None]
                ab_s, ab_n = self._ab(s, x0), self._ab(nxt, x0)
                eps = (x - ab_s.sqrt() * x0_hat) / (1 - ab_s).sqrt()
                stepped = ab_n.sqrt() * x0_hat + (1 - ab_n).sqrt() * eps
                x = torch.where(moves[:, None, None], stepped, x) * valid[..., None]
        finally:
            for m, mode in modes:
                m.training = mode
        return x

    def guided_at(self, t: int) -> bool:
        """Whether classifier-free guidance acts at noise level t (the config's guidance interval)."""
        hi = self.cfg.guidance_max_t
        return self.cfg.guidance_min_t <= t and (hi is None or t <= hi)

    def timesteps(self, n: int) -> list[int]:
        """DDIM's n integer steps, descending from the noisiest (train_steps - 1) to 0, evenly or, with
        `step_spacing` "quadratic", at (train_steps − 1)·(1 − (i/(n−1))²), denser at high noise."""
        n = max(1, min(n, self.cfg.train_steps))
        u = torch.linspace(0, 1, n, dtype=torch.float64)
        if self.cfg.step_spacing == "quadratic":
            u = u**2
        ts = ((self.cfg.train_steps - 1) * (1 - u)).round().long().tolist()
        return list(dict.fromkeys(ts))  # drop duplicates, keep order

    @torch.no_grad()
    def ddim_sample(
        self,
        net: IKMoNet,
        shape: tuple[int, int, int],
        valid: torch.Tensor,
        text: torch.Tensor,
        generator: torch.Generator,
        *,
        steps: int,
        guidance_scale: float,
        control: ControlBatch | None = None,
        x0_hook: X0Hook | None = None,
        on_step: OnStep | None = None,
        text_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sample normalised features (B, L, F); rows where `valid` is False are zero.

        text: (B, D) one condition per motion, or (B, K, D) K timed texts per motion with
        `text_weights` (B, K, L) saying how much each feature row follows each text (rows sum to 1):
        the network runs once per text and the conditional predictions are blended per row, so
        "walk, then wave" can walk first and wave after instead of averaging the two.
        Classifier-free guidance batches the conditional and unconditional passes together:
        x0 = x0_uncond + s·(Σ_k w_k·x0_cond_k − x0_uncond); the control branch sees every pass (the
        constraints hold whether or not the text is dropped). s = 1 skips the unconditional pass.
        `x0_hook` (stage 1) may correct each predicted x0 before the DDIM update.
        """
        device = valid.device
        B = shape[0]
        texts = text[:, None] if text.dim() == 2 else text  # (B, K, D)
        K = texts.shape[1]
        x = torch.randn(shape, generator=generator).to(device) * valid[..., None]
        ts = self.timesteps(steps)
        use_cfg = guidance_scale != 1.0
        n = K + int(use_cfg)  # passes per motion: K conditional, then one unconditional
        keep = torch.ones(n * B, dtype=torch.bool, device=device)
        if use_cfg:
            keep[K * B:] = False
        # Pass-major layout: rows k·B..(k+1)·B hold text k of every motion (the null pass reuses
        # text 0, whose projection the dropped condition zeroes).
        text_n = torch.cat([texts[:, k] for k in range(K)] + ([texts[:, 0]] if use_cfg else []))
        valid_n = valid.repeat(n, 1)
        control_n = control.repeat(n) if control is not None and n > 1 else control
        scale: float | torch.Tensor = guidance_scale
        if use_cfg and control is not None:
            scale = self._guidance_scales(net, control, shape, guidance_scale)
        control_k = control.repeat(K) if control is not None and K > 1 else control
        x0 = x
        for i, t_int in enumerate(ts):
            # Outside the guidance interval the unconditional pass is skipped, not just ignored.
            guided = use_cfg and self.guided_at(t_int)
            m = n if guided else K
            t = torch.full((m * B,), t_int, dtype=torch.long, device=device)
            out = net(x.repeat(m, 1, 1), t, text_n[:m * B], keep[:m * B], valid_n[:m * B],
                      control_n if guided else control_k)
            cond = out[:B] if K == 1 else self._blend(out[:K * B], text_weights, B, K)
            x0 = out[K * B:] + scale * (cond - out[K * B:]) if guided else cond
            if x0_hook is not None:
                with torch.enable_grad():
                    x0 = x0_hook(x0, i, len(ts)).detach()
            x0 = x0 * valid[..., None]
            if i + 1 < len(ts):
                x = self._ddim_step(x, x0, t_int, ts[i + 1], generator)
            if on_step is not None:
                on_step(i + 1, len(ts))
        return x0

    def _guidance_scales(self, net: IKMoNet, control: ControlBatch, shape: tuple[int, int, int],
                         guidance_scale: float) -> float | torch.Tensor:
        """Per-element CFG scales (B, L, F): `constrained_guidance_scale` on the root channels that the
        ControlNet's root targets fix, `guidance_scale` elsewhere; a float when nothing is fixed.

        Why: both CFG passes see the constraints, so on a fixed channel (cond − uncond) is only the text's
        pull away from the path; at s = 2.5 that pull, amplified, took a root-target ControlNet's
        pelvis from 0.8 m (s = 1) to 3.4 m off its path (8 test windows ≥ 150 frames with their heading,
        ControlNet alone, one checkpoint). The joints' local velocities carry the root's motion too,
        so rows whose velocity is fixed keep those at the constrained scale as well: 1.6 m.
        """
        if net.control is None or net.control.cfg.traj_features != "root":
            return guidance_scale
        masks = root_targets(control, shape[1], net.mean, net.std)[..., ROOT_CHANNELS: 2 * ROOT_CHANNELS]
        if not bool(masks.any()):
            return guidance_scale
        scales = torch.full(shape, guidance_scale, device=masks.device)
        fixed = self.cfg.constrained_guidance_scale
        scales[..., :ROOT_CHANNELS] = torch.where(masks > 0, fixed, guidance_scale)
        # The joints' velocities carry the root's too: where the path and heading fix it, amplifying
        # them pulls the next steps' root off the path as well (measured below).
        lv = feature_layout().local_vel
        scales[..., lv] = torch.where(masks[..., 1:2] > 0, fixed, guidance_scale)
        return scales

    @staticmethod
    def _blend(out: torch.Tensor, weights: torch.Tensor | None, B: int, K: int) -> torch.Tensor:
        """Per-row blend of K conditional predictions (K·B, L, F), pass-major, by weights (B, K, L)."""
        if weights is None:
            raise ValueError("several texts per motion need text_weights (B, K, L)")
        per_text = out.view(K, B, *out.shape[1:])
        return (per_text * weights.permute(1, 0, 2)[..., None].to(out.dtype)).sum(0)

    def _ddim_step(self, x: torch.Tensor, x0: torch.Tensor, t: int, s: int, generator: torch.Generator) -> torch.Tensor:
        ab_t = float(self.alphas_cumprod[t])
        ab_s = float(self.alphas_cumprod[s])
        eps = (x - math.sqrt(ab_t) * x0) / math.sqrt(1 - ab_t)
        sigma = self.cfg.eta * math.sqrt((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s))
        out = math.sqrt(ab_s) * x0 + math.sqrt(max(1 - ab_s - sigma**2, 0.0)) * eps
        if sigma > 0:
            out = out + sigma * torch.randn(x.shape, generator=generator).to(x.device)
        return out
