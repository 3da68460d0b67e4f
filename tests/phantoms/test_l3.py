import csv
import json

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from voxflow.errors import VoxflowError
from voxflow.io.dicom import PHI_TAGS, dicom_to_nifti
from voxflow.io.dicom_write import identity
from voxflow.phantoms.l3 import (
    TISSUE,
    L3PhantomConfig,
    label_rows,
    make_patient,
    write_labels,
    write_patient,
)

SEED = 5
CFG = L3PhantomConfig(matrix=64, pixel_mm=7.0)
# every patient transitional (half six-lumbar, half 13th rib), every patient with a scout
CFG_T = L3PhantomConfig(matrix=48, pixel_mm=8.0, transitional_fraction=1.0, scout_fraction=1.0)


def first_with(variant: str, cfg: L3PhantomConfig) -> dict:
    for i in range(40):
        p = make_patient(f"t{i:02d}", SEED, cfg, labels=True)
        if p["params"]["variant"] == variant:
            return p
    raise AssertionError(f"no {variant} patient in 40 tries")


@pytest.fixture(scope="module")
def normal():
    for i in range(20):
        p = make_patient(f"p{i:03d}", SEED, CFG, labels=True)
        if p["params"]["variant"] == "normal":
            return p
    raise AssertionError("no normal patient")


@pytest.fixture(scope="module")
def six():
    return first_with("six_lumbar", CFG_T)


@pytest.fixture(scope="module")
def rib13():
    return first_with("rib13", CFG_T)


def slices_in(p: dict, name: str) -> np.ndarray:
    """k of the slices whose centre lies inside vertebra ``name``."""
    par = p["params"]
    z = par["z_first_mm"] + par["slice_mm"] * np.arange(par["n_slices"])
    lo, hi = par["levels"][name]
    return np.flatnonzero((z >= lo) & (z <= hi))


def body_runs(p: dict) -> list[np.ndarray]:
    """Runs of slices showing cancellous vertebral bone, from the lowest one above the sacrum
    upward (read off the tissue map, not the stored levels)."""
    lab = p["labels"]
    has = (lab == TISSUE["cancellous"]).any(axis=(0, 1))
    sacrum = np.flatnonzero((lab == TISSUE["sacrum"]).any(axis=(0, 1)))
    start = sacrum.max() + 1 if len(sacrum) else 0
    runs, cur = [], []
    for k in range(start, len(has)):
        if has[k]:
            cur.append(k)
        elif cur:
            runs.append(np.array(cur))
            cur = []
    if cur:
        runs.append(np.array(cur))
    return runs


def test_same_seed_same_patient_and_patients_differ(normal):
    again = make_patient(normal["params"]["patient"], SEED, CFG)
    np.testing.assert_array_equal(again["ct"], normal["ct"])
    np.testing.assert_array_equal(again["affine"], normal["affine"])
    assert again["params"] == normal["params"]
    other = make_patient("zz-other", SEED, CFG)
    assert other["params"]["levels"] != normal["params"]["levels"]
    assert other["ct"].shape != normal["ct"].shape or not np.array_equal(other["ct"], normal["ct"])
    reseeded = make_patient(normal["params"]["patient"], SEED + 1, CFG)
    assert reseeded["params"]["levels"] != normal["params"]["levels"]


def test_grid_and_affine(normal):
    ct, aff, par = normal["ct"], normal["affine"], normal["params"]
    assert ct.dtype == np.int16 and ct.shape == (64, 64, par["n_slices"])
    assert aff[0, 0] == -7.0 and aff[1, 1] == -7.0 and aff[2, 2] == pytest.approx(par["slice_mm"])
    assert CFG.slice_min_mm <= par["slice_mm"] <= CFG.slice_max_mm
    # coverage: from about T10's upper endplate down into the sacrum
    z_top = par["z_first_mm"] + par["slice_mm"] * (par["n_slices"] - 1)
    assert abs(z_top - par["levels"]["T10"][1]) <= 35
    assert z_top > par["levels"]["T11"][1]
    assert par["z_first_mm"] < par["levels"]["S1"][1] - 40
    json.dumps(par)  # JSON-able


def test_hu_of_tissues_follow_the_table(normal):
    ct, lab = normal["ct"], normal["labels"]
    assert np.median(ct[lab == TISSUE["air"]]) == pytest.approx(-1000, abs=30)
    ranges = {  # §D1, eroded regions, median of noisy voxels
        "cancellous": (100, 300),
        "fat": (-120, -50),
        "muscle": (10, 60),
        "psoas": (10, 60),
        "kidney": (15, 45),
        "liver": (42, 68),
        "disc": (50, 110),
    }
    st = np.zeros((3, 3, 1), bool)
    st[:, 1, 0] = st[1, :, 0] = True
    for name, (lo, hi) in ranges.items():
        core = ndimage.binary_erosion(lab == TISSUE[name], st)
        assert core.sum() > 5, name
        assert lo <= np.median(ct[core]) <= hi, (name, np.median(ct[core]))
    # the cortical rim, endplates and posterior elements are brighter than cancellous bone
    cortical = np.percentile(ct[lab == TISSUE["cortical"]], 90)
    assert cortical > np.median(ct[lab == TISSUE["cancellous"]]) + 100


def far_bone(p: dict, k: np.ndarray, mm: float = 75.0) -> int:
    """Bone voxels (> 300 HU) more than ``mm`` from the spine axis in slices ``k``."""
    par, aff = p["params"], p["affine"]
    n = p["ct"].shape[0]
    x = aff[0, 3] + aff[0, 0] * np.arange(n)
    y = aff[1, 3] + aff[1, 1] * np.arange(n)
    bx = par["body"]["centre_xy_mm"][0]
    r = np.hypot(x[:, None] - bx, y[None, :] - par["body"]["spine_y_mm_at_l3"])
    return int(((p["ct"][:, :, k] > 300) & (r > mm)[:, :, None]).sum())


def has_rib(p: dict, k: np.ndarray) -> bool:
    return bool((p["labels"][:, :, k] == TISSUE["rib"]).any())


def test_ribs_down_to_t12_only(normal):
    par = normal["params"]
    assert par["ribs_on"][-1] == "T12" and par["rib_free"][0] == "L1"
    t12, l1, l2 = (slices_in(normal, n) for n in ("T12", "L1", "L2"))
    assert has_rib(normal, t12) and far_bone(normal, t12) > 0
    assert not has_rib(normal, l1) and not has_rib(normal, l2)
    assert far_bone(normal, l2) == 0
    # ribs are bone in the image
    ribs = normal["labels"] == TISSUE["rib"]
    assert np.median(normal["ct"][ribs]) > 150


def test_rib13_has_a_rib_on_l1(rib13):
    par = rib13["params"]
    assert par["ribs_on"][-1] == "L1" and "L1" not in par["rib_free"]
    l1, l2 = slices_in(rib13, "L1"), slices_in(rib13, "L2")
    assert has_rib(rib13, l1) and not has_rib(rib13, l2)


def test_l3_slices_lie_inside_the_l3_body(normal, six, rib13):
    for p in (normal, six, rib13):
        par = p["params"]
        z = par["z_first_mm"] + par["slice_mm"] * np.arange(par["n_slices"])
        lo, hi = par["levels"]["L3"]
        k = np.arange(par["l3_first"], par["l3_last"] + 1)
        assert len(k) >= 2
        assert np.all((z[k] >= lo) & (z[k] <= hi))
        if k[0] > 0:
            assert z[k[0] - 1] < lo
        if k[-1] < par["n_slices"] - 1:
            assert z[k[-1] + 1] > hi
        n_exp = (hi - lo) / par["slice_mm"]
        assert np.floor(n_exp) <= len(k) <= np.floor(n_exp) + 1
        assert hi - lo == pytest.approx(par["l3_height_mm"], abs=1e-2)
        assert 27 * 0.9 - 1e-6 <= hi - lo <= 27 * 1.1 + 1e-6
        # in the image: cancellous bone at the L3 slices, the third body above the sacrum
        runs = body_runs(p)
        l3_run = runs[2]
        assert set(l3_run) <= set(k) and len(k) - len(l3_run) <= 2, par["variant"]


def rib_free_above_sacrum(p: dict) -> int:
    """Vertebral bodies above the sacrum, counted from the image, before the first with ribs."""
    count = 0
    for run in body_runs(p):
        if has_rib(p, run):
            break
        count += 1
    return count


def test_transitional_variants_and_the_counting_rule(normal, six, rib13):
    assert rib_free_above_sacrum(normal) == 5
    assert rib_free_above_sacrum(six) == 6
    assert rib_free_above_sacrum(rib13) == 4
    par = six["params"]
    assert par["rib_free"] == ["T12", "L1", "L2", "L3", "L4", "L5"]
    assert "T12" not in par["ribs_on"] and not has_rib(six, slices_in(six, "T12"))
    # L3 is two bodies above the lowest mobile vertebra (L5, directly on the sacrum)
    for p in (normal, six, rib13):
        lv = p["params"]["levels"]
        mobile = sorted((v for k, v in lv.items() if k != "S1"), key=lambda v: v[0])
        assert mobile[0] == lv["L5"] and mobile[0][0] > lv["S1"][1]
        assert mobile[2] == lv["L3"]
    # kidneys, psoas and crest follow the counted levels
    for p in (normal, six, rib13):
        q = p["params"]
        lv = q["levels"]
        assert lv["L5"][0] - 15 <= q["iliac_crest_z_mm"] <= lv["L4"][0] + 12
        assert lv["L2"][0] <= q["psoas_top_z_mm"] <= lv["L1"][1]
        right, left = q["kidneys_z_mm"]["right"], q["kidneys_z_mm"]["left"]
        assert left[1] > right[1]  # the left kidney sits higher
        assert 75 < right[1] - right[0] < 140


def test_transverse_processes_longest_at_l3(normal):
    tp = normal["params"]["transverse_process_mm"]
    assert max(tp, key=tp.get) == "L3"


def test_label_rows_convert_the_index_order():
    def row(name, first, last, n, order):
        return {
            "patient": name,
            "l3_first": first,
            "l3_last": last,
            "n_slices": n,
            "index_order": order,
        }

    params = [row("b", 40, 45, 100, "head_to_feet"), row("a", 10, 14, 60, "feet_to_head")]
    rows = label_rows(params)
    assert [r["patient"] for r in rows] == ["a", "b"]
    assert rows[0] == {"patient": "a", "l3_first": 10, "l3_last": 14, "index_order": "feet_to_head"}
    assert rows[1]["l3_first"] == 54 and rows[1]["l3_last"] == 59
    # round trip: back to feet->head
    b = rows[1]
    assert (99 - b["l3_last"], 99 - b["l3_first"]) == (40, 45)
    with pytest.raises(VoxflowError, match="index_order"):
        label_rows([{**params[0], "index_order": "sideways"}])


def test_index_order_is_drawn_per_patient():
    orders = {make_patient(f"o{i}", SEED, L3PhantomConfig(matrix=32, pixel_mm=12.0))["params"][
        "index_order"] for i in range(8)}  # fmt: skip
    assert orders == {"feet_to_head", "head_to_feet"}


def test_write_labels(tmp_path, normal):
    rows = label_rows([normal["params"]])
    write_labels(rows, tmp_path / "l3_labels.csv")
    with open(tmp_path / "l3_labels.csv") as fh:
        got = list(csv.DictReader(fh))
    assert list(got[0]) == ["patient", "l3_first", "l3_last", "index_order"]
    assert got[0]["patient"] == normal["params"]["patient"]
    assert int(got[0]["l3_first"]) == rows[0]["l3_first"]


def test_dicom_round_trip_picks_the_axial_series_over_the_scout(tmp_path, six):
    par = six["params"]
    assert par["scout"]
    folder = tmp_path / "raw" / par["patient"]
    folder.mkdir(parents=True)
    (folder / "IM9999.dcm").write_bytes(b"stale")  # from an earlier run: removed
    write_patient(six, tmp_path / "raw", tmp_path / "truth", seed=SEED)
    ims, scs = sorted(folder.glob("IM*.dcm")), sorted(folder.glob("SC*.dcm"))
    assert len(ims) == par["n_slices"] and [p.name for p in scs] == ["SC0001.dcm"]
    ax, sc = pydicom.dcmread(ims[0]), pydicom.dcmread(scs[0])
    assert sc.SeriesInstanceUID != ax.SeriesInstanceUID and sc.SeriesNumber != ax.SeriesNumber
    assert sc.StudyInstanceUID == ax.StudyInstanceUID
    assert sc.SOPInstanceUID not in {pydicom.dcmread(p).SOPInstanceUID for p in ims[:3]}
    assert sc.SeriesDescription == "SCOUT" and ax.SeriesDescription == "ABDOMEN/PELVIS"
    assert ax.Modality == "CT" and sc.Rows == par["n_slices"]
    for ds in (ax, sc):
        # the made-up hospital identifiers, not the folder ID, and no PHI tag beyond them
        ids = identity(par["patient"], SEED)
        assert {k: str(ds.get(k)) for k in ids} == ids
        assert par["patient"] not in (ds.PatientID, str(ds.PatientName))
        assert not [t for t in PHI_TAGS if t not in ids and t in ds]
    for plane in ("axial", None):
        conv = dicom_to_nifti(folder, tmp_path / "ct.nii.gz", plane=plane)
        assert conv.data.shape == six["ct"].shape
        assert np.abs(conv.data.astype(int) - six["ct"]).max() <= 1
        np.testing.assert_allclose(conv.affine, six["affine"], atol=1e-3)
    truth = json.loads((tmp_path / "truth" / par["patient"] / "params.json").read_text())
    assert truth == par


def test_from_dict():
    cfg = L3PhantomConfig.from_dict({"matrix": 64, "pixel_mm": 7, "patients": 10})
    assert cfg.matrix == 64 and isinstance(cfg.matrix, int) and cfg.pixel_mm == 7.0
    with pytest.raises(VoxflowError, match=r"slice_mmm.*allowed.*slice_max_mm"):
        L3PhantomConfig.from_dict({"slice_mmm": 3})
    with pytest.raises(VoxflowError, match="field of view"):
        L3PhantomConfig(matrix=64, pixel_mm=3.5)
