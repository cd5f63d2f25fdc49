"""Scipy-free filters (motion_model.motion_metrics, the preview camera) against scipy, and the eval re-export."""

from __future__ import annotations

import numpy as np
import pytest

from ikmo.motion_model.motion_metrics import foot_skating_ratio, moving_average

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("window", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("T", [1, 2, 6, 31])
def test_moving_average_equals_scipy_uniform_filter(window: int, T: int) -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    x = np.random.default_rng(window * 100 + T).normal(size=(T, 2))
    ref = ndimage.uniform_filter1d(x, size=window, axis=0, mode="constant", origin=0)
    np.testing.assert_allclose(moving_average(x, window), ref, atol=1e-12)


def test_hand_value_and_eval_reexport() -> None:
    from ikmo.eval import metrics as M

    assert M.foot_skating_ratio is foot_skating_ratio
    np.testing.assert_allclose(moving_average(np.array([5.0, 0, 0, 0, 0]), 3), [5 / 3, 5 / 3, 0, 0, 0])


@pytest.mark.parametrize("sigma", [0.4, 1.0, 10.0])
@pytest.mark.parametrize("n", [1, 4, 120])
def test_preview_gaussian_equals_scipy(sigma: float, n: int) -> None:
    # The preview camera's smoothing, also written without scipy; same check, kept beside its twin.
    ndimage = pytest.importorskip("scipy.ndimage")
    from ikmo.tools.preview import _gaussian_nearest

    x = np.random.default_rng(n).normal(size=(n, 3)).cumsum(0)
    np.testing.assert_allclose(_gaussian_nearest(x, sigma), ndimage.gaussian_filter1d(x, sigma, axis=0, mode="nearest"),
                               atol=1e-10)
