"""Batched constraint tensors: a list of per-motion `ControlSignals` padded to one length.

Every tensor carries an explicit mask; padding frames and absent constraints are False in the
masks (never inferred from zeros). Frames are pose frames (T of them), not feature rows (T-1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ikmo.motion_model.constraints import N_JOINTS, ControlSignals


@dataclass
class ControlBatch:
    """Constraints of B motions padded to T_max pose frames.

    traj: (B, T, 3) float32 world pelvis positions, metres.
    traj_mask: (B, T, 3) bool.
    pose: (B, T, 22, 3) float32 root-relative joints, canonical facing, metres.
    pose_mask: (B, T, 22) bool.
    pose_weight: (B, T, 22) float32 confidence, zero where unmasked.
    heading: (B, T) float32 facing yaw, radians from +Z towards +X (unwrapped).
    heading_mask: (B, T) bool.
    """

    traj: torch.Tensor
    traj_mask: torch.Tensor
    pose: torch.Tensor
    pose_mask: torch.Tensor
    pose_weight: torch.Tensor
    heading: torch.Tensor
    heading_mask: torch.Tensor

    @property
    def n_frames(self) -> int:
        return int(self.traj.shape[1])

    def any(self) -> bool:
        return bool(self.traj_mask.any() or self.pose_mask.any() or self.heading_mask.any())

    def to(self, device: torch.device) -> ControlBatch:
        return ControlBatch(*(t.to(device) for t in self.tensors()))

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.traj, self.traj_mask, self.pose, self.pose_mask, self.pose_weight, self.heading,
                self.heading_mask)

    def select(self, b: int, n_frames: int) -> ControlBatch:
        """Motion `b` alone, cut to its first `n_frames` frames (a batch of one)."""
        return ControlBatch(*(t[b:b + 1, :n_frames] for t in self.tensors()))

    def repeat(self, n: int) -> ControlBatch:
        """Stack the batch `n` times along B (for the conditional/unconditional passes of CFG)."""
        return ControlBatch(*(t.repeat(n, *([1] * (t.dim() - 1))) for t in self.tensors()))

    @classmethod
    def empty(cls, batch: int, n_frames: int, device: torch.device | None = None) -> ControlBatch:
        return cls(
            torch.zeros(batch, n_frames, 3, device=device),
            torch.zeros(batch, n_frames, 3, dtype=torch.bool, device=device),
            torch.zeros(batch, n_frames, N_JOINTS, 3, device=device),
            torch.zeros(batch, n_frames, N_JOINTS, dtype=torch.bool, device=device),
            torch.zeros(batch, n_frames, N_JOINTS, device=device),
            torch.zeros(batch, n_frames, device=device),
            torch.zeros(batch, n_frames, dtype=torch.bool, device=device),
        )

    @classmethod
    def from_signals(
        cls, signals: list[ControlSignals | None], n_frames: int, device: torch.device | None = None
    ) -> ControlBatch:
        """Pad per-motion signals (None = unconstrained) to `n_frames` pose frames."""
        out = cls.empty(len(signals), n_frames, device)
        for b, s in enumerate(signals):
            if s is None:
                continue
            T = s.n_frames
            if n_frames < T:
                raise ValueError(f"control signal {b} has {T} frames, more than the batch's {n_frames}")
            for dst, src in zip(out.tensors(), _signal_tensors(s), strict=True):
                dst[b, :T] = src.to(dst.device, dst.dtype)
        return out


def _signal_tensors(s: ControlSignals) -> tuple[torch.Tensor, ...]:
    return (s.traj, s.traj_mask, s.pose, s.pose_mask, s.pose_weight, s.heading, s.heading_mask)
