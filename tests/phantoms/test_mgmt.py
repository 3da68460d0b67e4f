import math

import numpy as np
import pandas as pd
import pydicom
import pytest

from voxflow.errors import VoxflowError
from voxflow.io.dicom import dicom_to_nifti
from voxflow.io.layouts.mgmt import read_labels, read_patients
from voxflow.phantoms.brain import load_template
from voxflow.phantoms.mgmt import (
    SERIES,
    MGMTPhantomConfig,
    ceiling_auc,
    cohort_ids,
    make_patient,
    planted,
    write_cohort,
    write_patient,
)

SEED = 3
# coarse and small so that a patient takes well under a second
CFG = MGMTPhantomConfig(voxel_mm=3.0, pixel_min_mm=3.0, pixel_max_mm=3.5, slice_min_mm=4.0)


@pytest.fixture(scope="module")
def template():
    return load_template(CFG.voxel_mm)


@pytest.fixture(scope="module")
def patient(template):
    return make_patient("00042", SEED, CFG, template)


def test_ceiling_is_the_bayes_auc_of_the_planted_score():
    assert ceiling_auc(0.0) == 0.5
    assert ceiling_auc(3.0) == pytest.approx(0.9831, abs=1e-4)
    # Monte Carlo: AUC of s ~ N(effect * y, 1) is Phi(effect / sqrt 2)
    from sklearn.metrics import roc_auc_score

    cfg = MGMTPhantomConfig(effect=1.0)
    rows = [planted(f"{i:05d}", SEED, cfg) for i in range(3000)]
    y = np.array([r["MGMT_value"] for r in rows])
    s = np.array([r["score"] for r in rows])
    f = np.array([r["necrotic_fraction"] for r in rows])
    assert 0.45 < y.mean() < 0.55
    assert roc_auc_score(y, s) == pytest.approx(ceiling_auc(1.0), abs=0.02)
    # the necrotic fraction is a monotone function of the score: same ranking, same AUC
    assert roc_auc_score(y, f) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert CFG.necrotic_min < f.min() and f.max() < CFG.necrotic_max


def test_effect_zero_carries_no_signal():
    cfg = MGMTPhantomConfig(effect=0.0)
    rows = [planted(f"{i:05d}", SEED, cfg) for i in range(2000)]
    f = pd.DataFrame(rows).groupby("MGMT_value")["necrotic_fraction"].mean()
    assert abs(f[0] - f[1]) < 0.02


def test_ids_are_5_digit_and_include_the_degenerate_cases():
    ids = cohort_ids(30, SEED, CFG)
    assert len(ids) == len(set(ids)) == 30 and ids == sorted(ids)
    assert all(len(i) == 5 and i.isdigit() for i in ids)
    assert {"00109", "00123"} <= set(ids)
    with pytest.raises(VoxflowError, match="too few"):
        cohort_ids(3, SEED, CFG)


def test_config_rejects_unknown_keys_and_bad_ranges():
    with pytest.raises(VoxflowError, match="unknown key"):
        MGMTPhantomConfig.from_dict({"efect": 1})
    with pytest.raises(VoxflowError, match="necrotic"):
        MGMTPhantomConfig(necrotic_min=0.9, necrotic_max=0.5)
    cfg = MGMTPhantomConfig.from_dict({"patients": 9, "effect": 0, "degenerate": [109]})
    assert cfg.effect == 0.0 and cfg.degenerate == ("00109",)


def test_tumour_compartments_show_on_each_series(patient):
    for name in SERIES:
        s = patient["series"][name]
        assert s["data"].ndim == 3 and np.isfinite(s["data"]).all()
        assert s["plane"] in ("axial", "sagittal", "coronal")
        assert sorted(s["numbers"]) == sorted(set(s["numbers"]))  # distinct Image-<n>
    t = patient["truth"]
    assert t["BraTS21ID"] == "00042" and t["MGMT_value"] in (0, 1)
    assert CFG.radius_min_mm <= t["radius_mm"] <= CFG.radius_max_mm


def test_written_series_convert_back_exactly_whatever_the_numbering(patient, tmp_path):
    """Mixed planes, gapped/reversed/shuffled Image-<n>: the DICOM stage orders by position."""
    write_patient(patient, tmp_path, SEED)
    for name in SERIES:
        s = patient["series"][name]
        folder = tmp_path / "train" / "00042" / name
        files = sorted(folder.glob("Image-*.dcm"))
        assert {int(f.stem.split("-")[1]) for f in files} == set(s["numbers"])
        ds = pydicom.dcmread(files[0], stop_before_pixels=True)
        assert ds.InstanceNumber == int(files[0].stem.split("-")[1])
        conv = dicom_to_nifti(folder, tmp_path / f"{name}.nii.gz")
        assert conv.info["plane"] == s["plane"]
        np.testing.assert_array_equal(conv.data, np.clip(np.round(s["data"]), 0, 65535))
        np.testing.assert_allclose(conv.affine, s["affine"], atol=1e-3)


def test_numbering_quirks_all_occur(template):
    orders, gapped = set(), False
    for i in range(6):
        p = make_patient(f"{i:05d}", SEED, CFG, template)
        for s in p["series"].values():
            orders.add(s["order"])
            n = sorted(s["numbers"])
            gapped |= n[-1] - n[0] + 1 > len(n)
    assert orders == {"ordered", "reversed", "shuffled"} and gapped


def test_cohort_layout_labels_and_degenerate_cases(template, tmp_path):
    cfg = MGMTPhantomConfig(**{**CFG.__dict__, "blank_fraction": 1.0})
    truths = write_cohort(tmp_path, tmp_path / "planted.tsv", 6, SEED, cfg, template, workers=2)
    assert len(truths) == 6
    text = (tmp_path / "train_labels.csv").read_text().splitlines()
    assert text[0] == "BraTS21ID,MGMT_value"
    assert any(len(line.split(",")[0]) < 5 for line in text[1:])  # unpadded ids, as Kaggle
    labels = read_labels(tmp_path)
    assert labels == {t["BraTS21ID"]: t["MGMT_value"] for t in truths}
    assert set(read_patients(tmp_path)) == set(labels)
    planted_tsv = pd.read_csv(tmp_path / "planted.tsv", sep="\t", dtype={"BraTS21ID": str})
    assert list(planted_tsv.BraTS21ID) == sorted(labels)
    # 00109: a single FLAIR image; 00123: a blank T1wCE; the DICOM stage names them
    assert len(list((tmp_path / "train/00109/FLAIR").glob("*.dcm"))) == 1
    with pytest.raises(VoxflowError, match=r"00109/FLAIR.*single slice"):
        dicom_to_nifti(tmp_path / "train/00109/FLAIR", tmp_path / "x.nii.gz")
    conv = dicom_to_nifti(tmp_path / "train/00123/T1wCE", tmp_path / "y.nii.gz")
    assert conv.data.max() == 0
    # blank slices at the stack ends of every series (blank_fraction 1)
    conv = dicom_to_nifti(tmp_path / "train/00109/T2w", tmp_path / "z.nii.gz")
    assert conv.data[..., -1].max() == 0 and conv.data.max() > 0
    assert not math.isnan(planted_tsv.score.iloc[0])
