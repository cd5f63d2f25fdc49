"""MDM's velocity and foot-contact losses (motion_model/model/training.py `geometric_losses`): zero
velocity error on the truth, a known value for a known wobble, padding and unplanted feet ignored,
and a base run that trains with them and logs each term."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ikmo.motion_model.data.synthetic import synthetic_walk
from ikmo.motion_model.model.training import geometric_losses
from ikmo.motion_model.representation.features import feature_layout, joints_to_features
from ikmo.motion_model.representation.skeleton import FPS, HUMANML3D_22

pytestmark = pytest.mark.unit


def _walk(n: int = 60, speed: float = 1.2, turn: float = 0.5) -> torch.Tensor:
    """Raw features (n - 1, 263) float64 of a synthetic turning walk."""
    return torch.from_numpy(np.asarray(joints_to_features(synthetic_walk(n, speed, turn)), dtype=np.float64))


def test_the_truth_has_no_velocity_error_and_only_its_own_planted_foot_speed() -> None:
    feats = _walk()[None]
    valid = torch.ones(1, feats.shape[1], dtype=torch.bool)
    l_vel, l_foot = geometric_losses(feats, feats, valid)
    assert float(l_vel) == 0.0
    # A contact label allows < 0.002 m² of displacement per frame, i.e. a speed² < 0.002 · FPS² m²/s².
    assert 0.0 <= float(l_foot) < 0.002 * FPS**2


def test_a_one_frame_wobble_costs_what_its_velocity_error_says() -> None:
    truth = _walk(turn=0.0)[None]  # a straight walk: the body frame does not turn between frames
    valid = torch.ones(1, truth.shape[1], dtype=torch.bool)
    lay = feature_layout()
    a = 0.005  # ± 5 mm on every non-root joint's body-frame x, alternating frame to frame
    wobble = truth.clone()
    sign = torch.tensor([(-1.0) ** i for i in range(truth.shape[1])], dtype=truth.dtype)
    wobble[0, :, lay.ric.start:lay.ric.stop:3] += a * sign[:, None]
    l_vel, _ = geometric_losses(wobble, truth, valid)
    # Each velocity of the 21 wobbling joints is off by 2a per frame (to within the body frame's
    # sub-milliradian yaw changes from the swinging limbs, hence rel 1e-3).
    expected = (2 * a * FPS) ** 2 * (HUMANML3D_22.n_joints - 1) / HUMANML3D_22.n_joints
    assert float(l_vel) == pytest.approx(expected, rel=1e-3)


def test_padding_rows_and_feet_in_the_air_do_not_count() -> None:
    truth = _walk()
    short = 30
    batch = torch.zeros(2, truth.shape[0], truth.shape[1], dtype=truth.dtype)
    batch[0] = truth
    batch[1, :short] = truth[:short]
    valid = torch.zeros(2, truth.shape[0], dtype=torch.bool)
    valid[0] = True
    valid[1, :short] = True
    pred = batch.clone()
    pred[1, short:] = torch.randn(truth.shape[0] - short, truth.shape[1], dtype=truth.dtype) * 5  # garbage padding
    l_vel, l_foot = geometric_losses(pred, batch, valid)
    assert float(l_vel) == 0.0
    ref_vel, ref_foot = geometric_losses(batch, batch, valid)
    assert float(l_foot) == pytest.approx(float(ref_foot), rel=1e-12)

    lay = feature_layout()
    airborne = batch.clone()
    airborne[..., lay.contacts] = 0.0  # the truth never plants a foot: nothing can be skating
    sliding = airborne.clone()
    sliding[..., lay.root_lin_vel] *= 3.0  # the whole body glides three times as fast
    _, l_foot_air = geometric_losses(sliding, airborne, valid)
    assert float(l_foot_air) == 0.0
    _, l_foot_planted = geometric_losses(sliding, batch, valid)
    assert float(l_foot_planted) > 4 * float(ref_foot)  # with the feet planted the glide is charged


def test_the_foot_term_counts_only_the_motions_it_is_given() -> None:
    truth = _walk()
    batch = truth[None].repeat(2, 1, 1)
    valid = torch.ones(2, truth.shape[0], dtype=torch.bool)
    lay = feature_layout()
    sliding = batch.clone()
    sliding[1, :, lay.root_lin_vel] *= 3.0  # only the second motion's planted feet glide
    _, both = geometric_losses(sliding, batch, valid)
    _, first = geometric_losses(sliding, batch, valid, foot_rows=torch.tensor([True, False]))
    _, second = geometric_losses(sliding, batch, valid, foot_rows=torch.tensor([False, True]))
    _, truth_foot = geometric_losses(batch[:1], batch[:1], valid[:1])
    assert float(first) == pytest.approx(float(truth_foot), rel=1e-12)
    assert float(second) > float(both) > float(first)
    _, none = geometric_losses(sliding, batch, valid, foot_rows=torch.tensor([False, False]))
    assert float(none) == 0.0
