import pandas as pd
import pytest

from voxflow.errors import VoxflowError
from voxflow.io.tables import read_tsv, write_tsv


def test_roundtrip(tmp_path):
    df = pd.DataFrame({"model": ["unet", "resunet"], "dsc": [0.5, 0.123456789]})
    write_tsv(df, tmp_path / "t.tsv")
    assert (tmp_path / "t.tsv").read_text().splitlines()[0] == "model\tdsc"
    back = read_tsv(tmp_path / "t.tsv", required=["model", "dsc"])
    assert back["dsc"].tolist() == [0.5, 0.123457]


def test_missing_column_named(tmp_path):
    write_tsv(pd.DataFrame({"a": [1]}), tmp_path / "t.tsv")
    with pytest.raises(VoxflowError, match=r"t\.tsv: missing column\(s\) \['b'\]"):
        read_tsv(tmp_path / "t.tsv", required=["b"])
    with pytest.raises(VoxflowError, match="table not found"):
        read_tsv(tmp_path / "nope.tsv")
