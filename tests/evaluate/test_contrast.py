import numpy as np
import pytest
from shared_data import OPEN_MS, needs

from voxflow.errors import VoxflowError
from voxflow.evaluate.contrast import measure_contrast


def blocks(g: np.random.Generator, planted: dict[str, dict[str, float]]):
    """Three tissue slabs (CSF, GM, WM) and a lesion inside WM, per channel, with 2 % noise."""
    shape = (30, 30, 30)
    tissue = np.zeros(shape, int)
    tissue[:, :, 10:20], tissue[:, :, 20:] = 1, 2  # csf | gm | wm
    lesion = np.zeros(shape, bool)
    lesion[10:16, 10:16, 23:28] = True
    images = {}
    for ch, rel in planted.items():
        base = np.choose(tissue, [rel["csf"], rel["gm"], 1.0]) * 1000.0
        base[lesion] = rel["lesion"] * 1000.0
        images[ch] = base * (1 + 0.02 * g.standard_normal(shape))
    return images, lesion


def test_measures_planted_ratios():
    planted = {
        "mprage": {"csf": 0.3, "gm": 0.65, "lesion": 0.75},
        "t2": {"csf": 3.0, "gm": 1.5, "lesion": 2.2},
    }
    images, lesion = blocks(np.random.default_rng(0), planted)
    table = measure_contrast(images, lesion, brain=np.ones(lesion.shape, bool))
    for ch, rel in planted.items():
        for k, v in rel.items():
            assert table[ch][k] == pytest.approx(v, rel=0.03), (ch, k)
        assert table[ch]["wm"] == 1.0
        assert table[ch]["lesion_p10"] < table[ch]["lesion"] < table[ch]["lesion_p90"]


def test_refuses_empty_lesion_mask():
    images, lesion = blocks(
        np.random.default_rng(0), {"mprage": {"csf": 0.3, "gm": 0.6, "lesion": 0.8}}
    )
    with pytest.raises(VoxflowError, match="lesion mask is empty"):
        measure_contrast(images, np.zeros_like(lesion), brain=np.ones(lesion.shape, bool))


@needs(OPEN_MS)
def test_patient26_contrast_is_that_of_ms_lesions():
    """The real calibration target: FLAIR/T2 lesions brighter than WM, MPRAGE darker; GM darker
    than WM on MPRAGE, brighter on T2 (the README's table)."""
    from voxflow.io.images import read_image
    from voxflow.io.layouts.ms import read_cohort

    (case,) = read_cohort("open_ms_data", OPEN_MS)
    order = ("mprage", "flair", "t2")
    images = {ch: read_image(case.channels[ch]).data for ch in order}
    table = measure_contrast(images, read_image(case.mask).data > 0)
    assert table["flair"]["lesion"] > 1.2 and table["t2"]["lesion"] > 1.3
    assert table["mprage"]["lesion"] < 0.9
    assert table["mprage"]["gm"] < 0.8 and table["t2"]["gm"] > 1.2
