import numpy as np
import pytest

from voxflow.errors import VoxflowError
from voxflow.io.images import Volume
from voxflow.preprocess.resample import resample, resample_to_grid, resampled_grid


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


def test_multi_label_resampling_keeps_every_value_in_place():
    data = np.zeros((20, 20, 10), np.uint8)
    data[2:8, 2:8, 2:6], data[10:18, 4:12, 3:8], data[4:6, 14:18, 1:3] = 1, 3, 4
    vol = Volume(data, np.diag([1.0, 1.0, 2.0, 1.0]))
    out = resample(vol, [2.0, 2.0, 2.0], label="multi")
    assert out.shape == (10, 10, 10) and set(np.unique(out.data)) == {0, 1, 3, 4}
    assert out.data.dtype == np.uint8
    for v in (1, 3, 4):  # volumes kept within a voxel layer
        assert abs((out.data == v).sum() * 8 - (data == v).sum() * 2) <= 0.6 * (data == v).sum() * 2


def test_resample_to_grid_puts_values_at_the_same_world_points():
    g = np.random.default_rng(0)
    data = g.random((10, 12, 8)).astype(np.float32)
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = [5, -4, 10]
    # a grid at 1 mm, flipped in x, offset by whole source voxels
    target = np.diag([-1.0, 1.0, 3.0, 1.0])
    target[:3, 3] = [5 + 2 * 6, -4 + 2 * 2, 10 + 3]
    out = resample_to_grid(data, affine, (9, 5, 4), target, order=1, cval=-1)
    assert out[0, 0, 0] == pytest.approx(data[6, 2, 1])
    assert out[2, 4, 3] == pytest.approx(data[5, 4, 4])  # x: 17 - 2 = 15 mm -> i = 5; y: 8 mm -> 4
    assert out[8, 0, 0] == pytest.approx((data[2, 2, 1] + data[2, 2, 1]) / 2)
    away = np.eye(4)
    away[:3, 3] = 500.0  # a grid far outside the source: all cval
    far = resample_to_grid(data, affine, (2, 2, 2), away, cval=-1)
    assert (far == -1).all()


def test_resize_volume_keeps_axes_and_averages_when_shrinking():
    from voxflow.preprocess.resample import resize_volume

    ramp = np.broadcast_to(np.arange(40, dtype=np.float32)[:, None, None], (40, 20, 10))
    out = resize_volume(ramp, (8, 8, 8))
    assert out.shape == (8, 8, 8)
    # a linear ramp stays linear (interior), sampled at the new voxel centres
    centres = (np.arange(8) + 0.5) * 5 - 0.5
    np.testing.assert_allclose(out[1:-1, 4, 4], centres[1:-1], atol=0.05)
    checker = (np.indices((32, 32, 32)).sum(0) % 2).astype(np.float32)
    assert resize_volume(checker, (8, 8, 8)).std() < 0.05  # anti-aliased, not a moire
    with pytest.raises(VoxflowError):
        resize_volume(ramp[0], (8, 8, 8))


def test_antialias_averages_detail_finer_than_the_new_voxel():
    """Alternating 1 mm planes resampled to 3 mm: plain interpolation picks planes (values
    near 0 or 1), the anti-aliased one sees their partial-volume mean (0.5)."""
    data = np.zeros((30, 12, 12), np.float32)
    data[::2] = 1.0
    vol = Volume(data, np.eye(4))
    plain = resample(vol, 3.0).data[1:-1]
    smooth = resample(vol, 3.0, antialias=True).data[1:-1]
    assert np.abs(plain - 0.5).mean() > 0.3
    assert np.abs(smooth - 0.5).max() < 0.1
    mask = resample(Volume(data, np.eye(4)), 3.0, label=True, antialias=True)
    assert set(np.unique(mask.data)) <= {0, 1}  # labels are never pre-filtered
