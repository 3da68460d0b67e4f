import numpy as np
import pytest

from voxflow.errors import VoxflowError
from voxflow.preprocess.normalize import zscore


def test_zscore_inside_mask():
    data = np.r_[np.zeros(50), np.arange(50.0)]
    mask = data > 0
    out = zscore(data, mask)
    assert out.dtype == np.float32
    assert out[mask].mean() == pytest.approx(0, abs=1e-6)
    assert out[mask].std() == pytest.approx(1, abs=1e-5)
    with pytest.raises(VoxflowError, match="constant"):
        zscore(np.ones(5))
