import pytest

from voxflow.errors import VoxflowError
from voxflow.io.layouts.mgmt import SERIES, normalise_id, read_labels, read_patients


def cohort(root, ids, csv_rows=None, skip=()):
    for pid in ids:
        for s in SERIES:
            if (pid, s) not in skip:
                (root / "train" / pid / s).mkdir(parents=True)
    rows = csv_rows if csv_rows is not None else [f"{int(p)},{int(p) % 2}" for p in ids]
    (root / "train_labels.csv").write_text("BraTS21ID,MGMT_value\n" + "\n".join(rows) + "\n")
    return root


def test_ids_padded_or_not_are_the_same_patient(tmp_path):
    assert normalise_id("109", "x") == normalise_id("00109", "x") == "00109"
    with pytest.raises(VoxflowError, match="not a number"):
        normalise_id("10a", "x")
    root = cohort(tmp_path, ["00002", "00109"], ["2,0", "00109,1"])
    assert read_patients(root) == {"00002": 0, "00109": 1}


def test_excluded_ids_are_not_checked(tmp_path):
    # 00123's T1wCE folder is missing, but it is excluded (given unpadded)
    root = cohort(tmp_path, ["00002", "00123", "00004"], skip={("00123", "T1wCE")})
    assert list(read_patients(root, exclude=["123"])) == ["00002", "00004"]


def test_missing_series_folder_names_patient_and_series(tmp_path):
    root = cohort(tmp_path, ["00002", "00005"], skip={("00005", "T2w")})
    with pytest.raises(VoxflowError, match=r"00005.*patient 00005: series folder 'T2w' missing"):
        read_patients(root)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["2,0", "2,1"], r"train_labels.csv:3: BraTS21ID 00002 listed twice"),
        (["2,0", "5,yes"], r"train_labels.csv:3: MGMT_value 'yes' for 00005 is not 0 or 1"),
        (["2,0", "x5,1"], r"train_labels.csv:3: BraTS21ID 'x5' is not a number"),
        (["2,0"], r"train/00005: patient 00005 has no row"),
        (["2,0", "5,1", "7,0"], r"BraTS21ID 00007 has no folder"),
    ],
)
def test_label_table_errors_name_the_row(tmp_path, rows, message):
    root = cohort(tmp_path, ["00002", "00005"], rows)
    with pytest.raises(VoxflowError, match=message):
        read_patients(root)


def test_missing_table_or_column(tmp_path):
    with pytest.raises(VoxflowError, match="label table not found"):
        read_labels(tmp_path)
    (tmp_path / "train_labels.csv").write_text("id,MGMT_value\n1,0\n")
    with pytest.raises(VoxflowError, match=r"missing column\(s\) \['BraTS21ID'\]"):
        read_labels(tmp_path)
    with pytest.raises(VoxflowError, match="cohort folder not found"):
        read_patients(tmp_path)
