from pathlib import Path

import pytest
import yaml

from voxflow.config import problems, validate
from voxflow.errors import VoxflowError

SCHEMA = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"


def repo_config() -> dict:
    return yaml.safe_load((SCHEMA.parent / "config.yaml").read_text())


def test_repo_config_is_valid_and_gets_defaults():
    cfg = repo_config()
    validate(cfg, SCHEMA)
    assert cfg["ms"]["train"]["optimizer"] == "adam"  # a default from the schema


def test_typos_and_wrong_types_are_one_line_each_with_a_suggestion():
    cfg = repo_config()
    cfg["ms"]["pach_size"] = 16
    cfg["seeed"] = 1
    cfg["qq"]["model"]["stem_filters"] = "eight"
    with pytest.raises(VoxflowError) as err:
        validate(cfg, SCHEMA)
    lines = str(err.value).splitlines()
    assert lines[:3] == [
        "config: seeed: unknown key (did you mean 'seed'?)",
        "config: ms.pach_size: unknown key (did you mean 'patch_size'?)",
        "config: qq.model.stem_filters: 'eight' is not of type 'integer'",
    ]
    assert lines[3].startswith("Every key is documented in")


def test_unknown_key_without_a_near_name_lists_the_known_ones():
    schema = yaml.safe_load(SCHEMA.read_text())
    cfg = repo_config()
    cfg["brain_phantom"]["zzz"] = 1
    (line,) = problems(cfg, schema)
    assert line.startswith("config: brain_phantom.zzz: unknown key (known keys: ")
