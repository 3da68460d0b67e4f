import numpy as np
import pytest

from voxflow.errors import VoxflowError
from voxflow.preprocess.crop import bounding_box, crop_affine, foreground


def test_box_and_affine_keep_world_positions():
    data = np.zeros((20, 30, 40), np.float32)
    data[5:9, 10:21, 3:5] = 100
    box = bounding_box(foreground(data), margin=1)
    assert box == (slice(4, 10), slice(9, 22), slice(2, 6))
    aff = np.array([[0, -2.0, 0, 10], [1.5, 0, 0, -3], [0, 0, 3, 7], [0, 0, 0, 1]])
    new = crop_affine(aff, box)
    # voxel (0,0,0) of the crop is voxel (4,9,2) of the original, at the same world point
    assert np.allclose(new @ [0, 0, 0, 1], aff @ [4, 9, 2, 1])
    assert data[box].sum() == data.sum()


def test_empty_and_blank_refused():
    with pytest.raises(VoxflowError, match="mask is empty"):
        bounding_box(np.zeros((3, 3, 3), bool))
    with pytest.raises(VoxflowError, match="no finite voxels"):
        foreground(np.full((2, 2, 2), np.nan))


def test_centred_box_may_leave_the_image_and_pads():
    from voxflow.preprocess.crop import centred_box, crop_padded

    a = np.arange(24).reshape(2, 3, 4)
    box = centred_box([0, 1, 1], [2, 3, 4])
    assert [(s.start, s.stop) for s in box] == [(-1, 1), (0, 3), (-1, 3)]
    out = crop_padded(a, box, fill=-1)
    assert out.shape == (2, 3, 4) and out.dtype == a.dtype
    assert (out[0] == -1).all() and (out[1, :, 0] == -1).all()
    assert np.array_equal(out[1, :, 1:], a[0, :, :3])
    # the affine of the padded crop keeps world positions (negative start allowed)
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    assert np.allclose(crop_affine(affine, box)[:3, 3], [-2.0, 0.0, -3.0])
    assert (crop_padded(a, centred_box([10, 10, 10], [2, 2, 2]), 7) == 7).all()
