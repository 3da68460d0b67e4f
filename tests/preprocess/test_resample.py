import numpy as np
import pytest

from voxflow.errors import VoxflowError
from voxflow.io.images import Volume
from voxflow.preprocess.resample import resample, resampled_grid


def _ramp(shape=(20, 24, 16), spacing=(1.0, 1.0, 2.0)):
    """A linear ramp in world x (mm) on an oblique-free grid with an offset origin."""
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-10.0, 5.0, 3.0]
    idx = np.indices(shape).reshape(3, -1)
    world = affine[:3, :3] @ idx + affine[:3, 3:4]
    return Volume(world[0].reshape(shape).astype(np.float32), affine)


def test_grid_keeps_centre_and_exact_spacing():
    vol = _ramp()
    shape, affine, _, _ = resampled_grid(vol.shape, vol.affine, (2.0, 3.0, 2.0))
    assert shape == (10, 8, 16)
    assert np.allclose(np.linalg.norm(affine[:3, :3], axis=0), [2.0, 3.0, 2.0])
    centre_old = vol.affine @ np.r_[(np.array(vol.shape) - 1) / 2, 1]
    centre_new = affine @ np.r_[(np.array(shape) - 1) / 2, 1]
    assert np.allclose(centre_old, centre_new)
    with pytest.raises(VoxflowError, match="3 positive values"):
        resampled_grid(vol.shape, vol.affine, (1.0, 0.0, 1.0))


def test_linear_resampling_preserves_a_world_ramp():
    vol = _ramp()
    out = resample(vol, 2.0)
    assert out.spacing == pytest.approx((2.0, 2.0, 2.0))
    idx = np.indices(out.shape).reshape(3, -1)
    world_x = (out.affine[:3, :3] @ idx + out.affine[:3, 3:4])[0].reshape(out.shape)
    inner = (slice(1, -1),) * 3  # edges clamp (mode nearest)
    assert np.allclose(out.data[inner], world_x[inner], atol=1e-4)
    assert resample(vol, (1.0, 1.0, 2.0)) is vol  # already there: unchanged


def test_label_resampling_stays_binary_and_keeps_volume():
    shape = (48, 48, 48)
    affine = np.eye(4)
    c = np.indices(shape) - 23.3
    ball = ((c**2).sum(0) <= 15**2).astype(np.uint8)
    out = resample(Volume(ball, affine), 2.0, label=True)
    assert out.data.dtype == np.uint8 and set(np.unique(out.data)) == {0, 1}
    assert int(out.data.sum()) * 8 == pytest.approx(
        int(ball.sum()), rel=0.05
    )  # mm^3 kept (to the 2 mm lattice)
