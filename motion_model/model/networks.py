"""Networks: the MDM-style denoiser, the control encoders and the Motion ControlNet.

Shapes used throughout: B motions, L feature rows (L = T - 1 for T pose frames), F = 263 features,
d = model width. The denoiser predicts the clean normalised features x0 from x_t.

The ControlNet (stage 2 of IKMo) is a trainable copy of the base transformer. The fused output of
the control encoders is added to the copy's motion-token embeddings; after each copied layer a
zero-initialised linear layer turns the copy's hidden state into a residual that is added after
the matching frozen base layer. Because those output layers start at zero, a freshly built
ControlNet leaves the base output exactly unchanged. (Unlike the original ControlNet we do not also
zero the input injection: with zero output layers that is not needed for the guarantee, and two
zero layers in series would delay learning, which matters on a CPU budget.)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ikmo.motion_model.control.control_batch import ControlBatch
from ikmo.motion_model.model_config import ControlConfig, DenoiserConfig, ModelConfig

TRAJ_FRAME_DIM = 6  # xyz + xyz mask
POSE_FRAME_DIM_PER_JOINT = 4  # xyz + mask
ROOT_TARGET_DIM = 11  # 4 root channels + their 4 masks + world step dx, dz + its mask
ROOT_CHANNELS = 4  # HumanML3D's root yaw velocity, body-frame velocity x/z, root height
STEP_SCALE = 20.0  # world step per row (m) × fps: metres per second, order 1 like the other inputs


def sinusoid(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding. positions: (N,) float or int; returns (N, dim) float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    args = positions.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def _zero_linear(d_in: int, d_out: int) -> nn.Linear:
    lin = nn.Linear(d_in, d_out)
    nn.init.zeros_(lin.weight)
    nn.init.zeros_(lin.bias)
    return lin


def padding_mask(valid: torch.Tensor) -> torch.Tensor:
    """Key padding mask for the token sequence [cond, rows...]: (B, L+1) bool, True = ignore.

    valid: (B, L) bool, True for real feature rows.
    """
    cond = torch.ones_like(valid[:, :1])
    return ~torch.cat([cond, valid], dim=1)


class MotionTransformer(nn.Module):
    """Encoder-only transformer over [condition token, feature rows].

    The condition token is timestep embedding + projected text embedding (zeroed where the text is
    dropped, which is the null condition of classifier-free guidance).
    """

    pos: torch.Tensor  # buffer (max_len + 1, d_model): sinusoidal position embeddings

    def __init__(self, cfg: DenoiserConfig, with_head: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.input_proj = nn.Linear(cfg.feature_dim, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.text_proj = nn.Linear(cfg.text_dim, d)
        self.register_buffer("pos", sinusoid(torch.arange(cfg.max_len + 1), d), persistent=False)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d, cfg.n_heads, cfg.ff_dim, cfg.dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(cfg.n_layers)
        )
        self.out_norm = nn.LayerNorm(d) if with_head else None
        self.out_proj = nn.Linear(d, cfg.feature_dim) if with_head else None

    def embed(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, text_keep: torch.Tensor,
              extra: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings (B, L+1, d). x: (B, L, F); t: (B,) long; text: (B, text_dim);
        text_keep: (B,) bool; extra: optional (B, L, d) added to the motion tokens."""
        n_rows = x.shape[1]
        if n_rows > self.cfg.max_len:
            raise ValueError(f"sequence of {n_rows} rows is longer than the model's max_len {self.cfg.max_len}")
        cond = self.time_mlp(sinusoid(t, self.cfg.d_model)) + self.text_proj(text) * text_keep[:, None].float()
        hx = self.input_proj(x)
        if extra is not None:
            hx = hx + extra
        return torch.cat([cond[:, None], hx], dim=1) + self.pos[: n_rows + 1]

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, text_keep: torch.Tensor,
                valid: torch.Tensor, residuals: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Predict x0. x: (B, L, F) noisy normalised features; valid: (B, L) bool; residuals: per
        layer (B, L+1, d) added after that layer (ControlNet). Returns (B, L, F)."""
        assert self.out_proj is not None and self.out_norm is not None, "headless copy has no output"
        h = self.embed(x, t, text, text_keep)
        kpm = padding_mask(valid)
        for i, layer in enumerate(self.layers):
            h = layer(h, src_key_padding_mask=kpm)
            if residuals is not None and i < len(residuals):
                h = h + residuals[i]
        return self.out_proj(self.out_norm(h[:, 1:]))


def control_inputs(cb: ControlBatch, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row encoder inputs. Row i of the feature sequence spans pose frames i and i+1, so each row
    sees both frames' constraints (this keeps the last pose frame's constraint visible).

    Returns traj_in (B, L, 12) and pose_in (B, L, 2 * 22 * 4), masked values zeroed, masks as 0/1.
    """
    T = n_rows + 1
    if cb.n_frames < T:
        raise ValueError(f"control batch has {cb.n_frames} frames, need {T} for {n_rows} feature rows")
    tm = cb.traj_mask[:, :T].float()
    traj = torch.cat([cb.traj[:, :T] * tm, tm], dim=-1)  # (B, T, 6)
    pm = cb.pose_mask[:, :T].float()[..., None]
    pose = torch.cat([cb.pose[:, :T] * pm, pm], dim=-1).flatten(2)  # (B, T, 88)
    return (torch.cat([traj[:, :-1], traj[:, 1:]], dim=-1), torch.cat([pose[:, :-1], pose[:, 1:]], dim=-1))


def _wrap(angle: torch.Tensor) -> torch.Tensor:
    return torch.atan2(torch.sin(angle), torch.cos(angle))


def root_targets(cb: ControlBatch, n_rows: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """The root feature channels the constraints imply, per row: (B, L, ROOT_TARGET_DIM).

    Why: the root channels of a row are velocities in the body frame, so an absolute pelvis path
    says what they must be only through the integrated yaw of every earlier row, a global
    computation the ControlNet learns slowly (measured: 6,400 CPU steps left it no better than no
    control). Given the path and the heading, the channels are a per-row closed form, the inverse
    of `features._root_yaw`: yaw θ = −heading ψ; row i's yaw velocity is (θ_{i+1} − θ_i)/2, its
    velocity R_y(θ_{i+1})·(p_{i+1} − p_i) on xz, its height p_i.y. Each value is normalised by
    the features' mean/std (`mean`, `std`: (F,) or (≥4,)) and comes with its mask; where the heading
    is unknown only the world-frame step (dx, dz) is given.
    """
    T = n_rows + 1
    p, pm = cb.traj[:, :T], cb.traj_mask[:, :T]
    theta, hm = -cb.heading[:, :T], cb.heading_mask[:, :T]
    rot = _wrap(theta[:, 1:] - theta[:, :-1]) / 2
    rot_m = hm[:, 1:] & hm[:, :-1]
    step = p[:, 1:] - p[:, :-1]
    step_m = pm[:, 1:, 0] & pm[:, :-1, 0] & pm[:, 1:, 2] & pm[:, :-1, 2]
    c, s = torch.cos(theta[:, 1:]), torch.sin(theta[:, 1:])
    vx = c * step[..., 0] + s * step[..., 2]
    vz = -s * step[..., 0] + c * step[..., 2]
    vel_m = step_m & hm[:, 1:]
    vals = torch.stack([rot, vx, vz, p[:, :-1, 1]], dim=-1)
    masks = torch.stack([rot_m, vel_m, vel_m, pm[:, :-1, 1]], dim=-1).float()
    vals = (vals - mean[:ROOT_CHANNELS]) / std[:ROOT_CHANNELS] * masks
    sm = step_m.float()[..., None]
    return torch.cat([vals, masks, step[..., 0::2] * STEP_SCALE * sm, sm], dim=-1)


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                         nn.Linear(hidden, d_out))


def traj_input_dim(cfg: ControlConfig) -> int:
    """Width of the per-row trajectory input: both frames' xyz + masks, plus the root targets."""
    return 2 * TRAJ_FRAME_DIM + (ROOT_TARGET_DIM if cfg.traj_features == "root" else 0)


class TrajectoryEncoder(nn.Module):
    """Per-row pelvis xyz + mask (B, L, 12), with `root_targets` appended (B, L, 23) → (B, L, hidden)."""

    def __init__(self, hidden: int, d_in: int = 2 * TRAJ_FRAME_DIM) -> None:
        super().__init__()
        self.net = _mlp(d_in, hidden, hidden)

    def forward(self, traj_in: torch.Tensor) -> torch.Tensor:
        return self.net(traj_in)


class PoseEncoder(nn.Module):
    """Per-row root-relative 22×3 keyframe pose + per-joint mask (B, L, 176) → (B, L, hidden)."""

    def __init__(self, hidden: int, n_joints: int) -> None:
        super().__init__()
        self.net = _mlp(2 * n_joints * POSE_FRAME_DIM_PER_JOINT, hidden, hidden)

    def forward(self, pose_in: torch.Tensor) -> torch.Tensor:
        return self.net(pose_in)


class DecoupledControlEncoder(nn.Module):
    """IKMo: trajectory and pose encoded in parallel, then fused by a linear layer → (B, L, d)."""

    def __init__(self, cfg: ControlConfig, n_joints: int, d_model: int) -> None:
        super().__init__()
        self.traj = TrajectoryEncoder(cfg.hidden, traj_input_dim(cfg))
        self.pose = PoseEncoder(cfg.hidden, n_joints)
        self.fuse = nn.Linear(2 * cfg.hidden, d_model)

    def forward(self, traj_in: torch.Tensor, pose_in: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.traj(traj_in), self.pose(pose_in)], dim=-1))


class JointControlEncoder(nn.Module):
    """Ablation (OmniControl style): one encoder over the concatenated hint → (B, L, d).

    Its hidden width is 1.5× so that its parameter count matches the decoupled pair's. Its input is
    [trajectory, pose]; the root targets, when configured, come last (see `widen_control_inputs`).
    """

    def __init__(self, cfg: ControlConfig, n_joints: int, d_model: int) -> None:
        super().__init__()
        hidden = cfg.hidden * 3 // 2
        self.net = _mlp(traj_input_dim(cfg) + 2 * n_joints * POSE_FRAME_DIM_PER_JOINT, hidden, d_model)

    def forward(self, traj_in: torch.Tensor, pose_in: torch.Tensor) -> torch.Tensor:
        n_xyz = 2 * TRAJ_FRAME_DIM
        return self.net(torch.cat([traj_in[..., :n_xyz], pose_in, traj_in[..., n_xyz:]], dim=-1))


class MotionControlNet(nn.Module):
    """Trainable copy of the base transformer emitting per-layer residuals through zero-init layers."""

    def __init__(self, base: MotionTransformer, cfg: ControlConfig) -> None:
        super().__init__()
        dcfg = base.cfg
        self.cfg = cfg
        n = cfg.n_layers or dcfg.n_layers
        if n > dcfg.n_layers:
            raise ValueError(f"ControlNet depth {n} exceeds the base's {dcfg.n_layers} layers")
        self.copy = MotionTransformer(dcfg.model_copy(update={"n_layers": n}), with_head=False)
        base_state = {k: v for k, v in base.state_dict().items() if not k.startswith(("out_norm", "out_proj"))}
        self.copy.load_state_dict(base_state, strict=False)
        enc = DecoupledControlEncoder if cfg.mode == "decoupled" else JointControlEncoder
        self.encoder = enc(cfg, dcfg.n_joints, dcfg.d_model)
        self.zero_out = nn.ModuleList(_zero_linear(dcfg.d_model, dcfg.d_model) for _ in range(n))
        # Why a direct head: the residuals steer the frozen base through its layers and its output
        # LayerNorm, so copying a root target onto the prediction must be learnt through all of them;
        # a linear read-out of the ControlNet's residual stream (where the targets enter) is direct.
        self.out_head = _zero_linear(dcfg.d_model, dcfg.feature_dim) if cfg.output_head else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, text_keep: torch.Tensor,
                valid: torch.Tensor, control: ControlBatch, mean: torch.Tensor | None = None,
                std: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Per-layer residuals, each (B, L+1, d), then with `cfg.output_head` one (B, L, F) residual
        on the prediction. mean/std: (F,) feature statistics, needed when `cfg.traj_features` is "root"."""
        traj_in, pose_in = control_inputs(control, x.shape[1])
        if self.cfg.traj_features == "root":
            if mean is None or std is None:
                raise ValueError("root trajectory features need the feature mean and std")
            traj_in = torch.cat([traj_in, root_targets(control, x.shape[1], mean, std)], dim=-1)
        h = self.copy.embed(x, t, text, text_keep, extra=self.encoder(traj_in, pose_in))
        kpm = padding_mask(valid)
        out = []
        for layer, zero in zip(self.copy.layers, self.zero_out, strict=True):
            h = layer(h, src_key_padding_mask=kpm)
            out.append(zero(h))
        if self.out_head is not None:
            out.append(self.out_head(h[:, 1:]))  # (B, L, F): added to the prediction itself
        return out


class IKMoNet(nn.Module):
    """Base denoiser + optional ControlNet + the feature normalisation (Mean/Std buffers, (F,))."""

    mean: torch.Tensor  # buffer (F,)
    std: torch.Tensor  # buffer (F,)

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.base = MotionTransformer(cfg.denoiser)
        self.control = MotionControlNet(self.base, cfg.control) if cfg.control is not None else None
        F = cfg.denoiser.feature_dim
        self.register_buffer("mean", torch.zeros(F))
        self.register_buffer("std", torch.ones(F))

    def add_control(self, cfg: ControlConfig) -> None:
        """Attach a fresh ControlNet copied from the current base weights (start of control training)."""
        self.control = MotionControlNet(self.base, cfg).to(self.mean.device)
        self.cfg = self.cfg.model_copy(update={"control": cfg})

    def widen_control_inputs(self, cfg: ControlConfig) -> None:
        """Give the ControlNet what `cfg` adds (the root targets, the output head), keeping what it
        has learnt.

        The new input columns of the encoder's first layer and a new output head start at zero, so
        the widened network computes exactly what it did before and training starts from the
        trained ControlNet.
        """
        if self.control is None:
            raise ValueError("no ControlNet to widen")
        old = self.control
        if old.cfg.model_copy(update={"traj_features": cfg.traj_features, "output_head": cfg.output_head}) != cfg:
            raise ValueError(f"only traj_features and output_head may change when widening: {old.cfg} → {cfg}")
        if (old.cfg.traj_features == "root" and cfg.traj_features == "xyz") or (old.cfg.output_head
                                                                               and not cfg.output_head):
            raise ValueError(f"widening cannot take inputs or heads away: {old.cfg} → {cfg}")
        new = MotionControlNet(self.base, cfg).to(self.mean.device)
        new_state = new.state_dict()
        for name, value in old.state_dict().items():
            target = new_state[name]
            if target.shape == value.shape:
                target.copy_(value)
            else:  # the first layer of an encoder: old columns first, new ones zero
                target.zero_()
                target[:, : value.shape[1]].copy_(value)
        new.load_state_dict(new_state)
        self.control = new
        self.cfg = self.cfg.model_copy(update={"control": cfg})

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, text_keep: torch.Tensor,
                valid: torch.Tensor, control: ControlBatch | None = None, control_scale: float = 1.0) -> torch.Tensor:
        """Predicted clean normalised features (B, L, F); see `MotionTransformer.forward`."""
        residuals = None
        head = None
        if self.control is not None and control is not None and control_scale != 0.0:
            residuals = self.control(x, t, text, text_keep, valid, control, self.mean, self.std)
            if control_scale != 1.0:
                residuals = [r * control_scale for r in residuals]
            if self.control.out_head is not None:
                head = residuals.pop()
        pred = self.base(x, t, text, text_keep, valid, residuals)
        return pred + head if head is not None else pred
