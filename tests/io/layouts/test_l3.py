import numpy as np
import pytest

from voxflow.errors import VoxflowError
from voxflow.io.layouts.l3 import (
    feet_to_head_order,
    l3_from_mask,
    l3_from_row,
    read_labels,
    read_patients,
)

HEADER = "patient,l3_first,l3_last,index_order\n"


def write_csv(path, *rows):
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


def affine(dz):
    a = np.eye(4)
    a[2, 2] = dz
    return a


def test_reads_patient_folders(tmp_path):
    for p in ("p002", "p001"):
        (tmp_path / p).mkdir()
    (tmp_path / "l3_labels.csv").write_text(HEADER)
    assert read_patients(tmp_path) == ["p001", "p002"]
    with pytest.raises(VoxflowError, match="no patient folders"):
        read_patients(tmp_path / "p001")


def test_row_in_either_index_order_marks_the_same_slices():
    n = 10
    for dz in (3.0, -3.0):  # slices stored feet->head or head->feet in the volume
        a = affine(dz)
        order = feet_to_head_order(a, n)
        assert np.all(np.diff(a[2, 2] * order + a[2, 3]) > 0)
        csv_rows = {
            "feet_to_head": (4, 6),
            "head_to_feet": (n - 1 - 6, n - 1 - 4),
        }
        marked = []
        for index_order, (first, last) in csv_rows.items():
            from voxflow.io.layouts.l3 import L3Label

            label = L3Label("p1", first, last, index_order, 2, "x.csv")
            marked.append(l3_from_row(label, a, n))
        np.testing.assert_array_equal(marked[0], marked[1])
        heights = a[2, 2] * np.arange(n) + a[2, 3]
        # feet_to_head 4..6: the 5th-7th lowest slices
        np.testing.assert_array_equal(np.sort(heights[marked[0]]), np.sort(heights)[4:7])


@pytest.mark.parametrize(
    "row, message",
    [
        ("p9,3,5,feet_to_head", "3: unknown patient 'p9'"),
        ("p1,5,3,feet_to_head", "3: l3_last 3 < l3_first 5"),
        ("p1,-1,3,feet_to_head", "l3_first -1 is negative"),
        ("p1,a,3,feet_to_head", "must be integers"),
        ("p1,3,5,sideways", "index_order 'sideways'"),
        ("p0,3,5,feet_to_head", "patient 'p0' listed twice"),
    ],
)
def test_a_wrong_row_is_one_error_naming_the_row(tmp_path, row, message):
    path = write_csv(tmp_path / "l3_labels.csv", "p0,1,2,feet_to_head", row)
    with pytest.raises(VoxflowError, match=message) as err:
        read_labels(path, ["p0", "p1"])
    assert str(path) in str(err.value)


def test_index_beyond_the_series_names_the_row(tmp_path):
    path = write_csv(tmp_path / "l3_labels.csv", "p0,8,12,head_to_feet")
    label = read_labels(path, ["p0"])["p0"]
    with pytest.raises(
        VoxflowError, match=r"l3_labels.csv:2: l3_last 12 is out of range.*10 slices"
    ):
        l3_from_row(label, affine(2.0), 10)


def test_a_patient_without_a_row_is_an_error(tmp_path):
    path = write_csv(tmp_path / "l3_labels.csv", "p0,1,2,feet_to_head")
    with pytest.raises(VoxflowError, match=r"no row for patient\(s\) \['p1'\]"):
        read_labels(path, ["p0", "p1"])


def test_mask_gives_the_slices_holding_the_l3_value(tmp_path):
    mask = np.zeros((4, 4, 8), np.uint8)
    mask[1:3, 1:3, 2:5] = 29
    mask[1:3, 1:3, 5:7] = 30
    np.testing.assert_array_equal(np.flatnonzero(l3_from_mask(mask, 29, "m.nii")), [2, 3, 4])
    with pytest.raises(VoxflowError, match="no voxel labelled 28"):
        l3_from_mask(mask, 28, "m.nii")
