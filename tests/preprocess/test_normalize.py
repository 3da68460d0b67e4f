import numpy as np
import pytest

from voxflow.errors import VoxflowError
from voxflow.preprocess.normalize import peak_normalise, white_matter_peak, zscore


def test_zscore_inside_mask():
    data = np.r_[np.zeros(50), np.arange(50.0)]
    mask = data > 0
    out = zscore(data, mask)
    assert out.dtype == np.float32
    assert out[mask].mean() == pytest.approx(0, abs=1e-6)
    assert out[mask].std() == pytest.approx(1, abs=1e-5)
    with pytest.raises(VoxflowError, match="constant"):
        zscore(np.ones(5))


def test_white_matter_peak_is_the_mode_whatever_the_csf_share():
    g = np.random.default_rng(0)
    for csf_share in (0.05, 0.3):
        n = 100_000
        n_csf, n_gm = int(csf_share * n), int(0.3 * n)
        wm = g.normal(800, 30, n - n_csf - n_gm)
        data = np.r_[g.normal(200, 40, n_csf), g.normal(950, 40, n_gm), wm]
        peak = white_matter_peak(data, np.ones(data.shape, bool))
        assert peak == pytest.approx(800, rel=0.03)
        out = peak_normalise(data, np.ones(data.shape, bool))
        assert out.dtype == np.float32
        assert np.median(out[-len(wm) :]) == pytest.approx(0, abs=0.3)  # WM at 0
        lesion = peak_normalise(np.r_[data, 1.4 * peak], np.r_[np.ones(n, bool), False])[-1]
        assert float(lesion) == pytest.approx(10 * (1.4 - 1), abs=0.3)  # 1.4 x WM -> 4
    # a mask that caught much background noise (a third of its voxels) still finds WM
    noisy = np.r_[np.abs(g.normal(0, 60, 60_000)), data]
    assert white_matter_peak(noisy, np.ones(noisy.shape, bool)) == pytest.approx(800, rel=0.03)
    with pytest.raises(VoxflowError, match="white-matter peak"):
        white_matter_peak(np.ones(500), np.ones(500, bool))
    with pytest.raises(VoxflowError, match="fewer than 100"):
        white_matter_peak(np.ones(50), np.ones(50, bool))
