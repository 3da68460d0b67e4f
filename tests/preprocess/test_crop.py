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
