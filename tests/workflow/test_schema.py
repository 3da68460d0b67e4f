"""config/schema.yaml: valid draft-07, strict everywhere, and consistent with the library."""

from dataclasses import asdict
from pathlib import Path

import jsonschema
import pytest
import yaml

from voxflow.phantoms.brain import BrainPhantomConfig
from voxflow.train.loop import TrainConfig

REPO = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())


def _objects(node, path="$"):
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield path, node
        for k, v in node.items():
            yield from _objects(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _objects(v, f"{path}[{i}]")


def test_schema_is_draft7_and_every_object_is_closed():
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    for path, obj in _objects(SCHEMA):
        if path.startswith("$.definitions.study"):
            continue  # closed where it is used (allOf + additionalProperties: false)
        if "propertyNames" in obj:  # a typed name -> value map (e.g. dicom.inputs)
            assert isinstance(obj["additionalProperties"], dict), path
            continue
        assert obj.get("additionalProperties") is False, path


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_configs_validate(name):
    cfg = yaml.safe_load((REPO / "config" / name).read_text())
    if name == "paper.yaml":  # an override file: merged onto the demo config
        base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
        cfg = {**base, **cfg}
    jsonschema.Draft7Validator(SCHEMA).validate(cfg)


def test_library_defaults_match_schema_defaults():
    train = SCHEMA["definitions"]["train"]["properties"]
    lib = asdict(TrainConfig())
    for key, spec in train.items():
        assert spec["default"] == lib[key], key
    brain = SCHEMA["properties"]["brain_phantom"]["properties"]
    for key, value in asdict(BrainPhantomConfig()).items():
        assert brain[key]["default"] == value, key


def test_study_block_rejects_typo():
    v = jsonschema.Draft7Validator(SCHEMA)
    errors = list(v.iter_errors({"ms": {"chanels": ["flair"]}}))
    assert any("chanels" in e.message for e in errors)
    assert not list(v.iter_errors({"ms": {"channels": ["flair"], "train": {"epochs": 3}}}))
    assert list(v.iter_errors({"ms": {"train": {"epochz": 3}}}))


def test_train_override_has_the_train_keys_without_defaults():
    train = SCHEMA["definitions"]["train"]["properties"]
    override = SCHEMA["definitions"]["train_override"]["properties"]
    assert set(override) == set(train)
    assert not any("default" in spec for spec in override.values())


def test_register_and_gwr_phantom_keys_are_the_library_configs():
    from voxflow.phantoms.gwr import GWRPhantomConfig
    from voxflow.register import RegistrationConfig

    props = SCHEMA["properties"]
    assert set(props["register"]["properties"]) == set(asdict(RegistrationConfig()))
    phantom = set(props["gwr"]["properties"]["phantom"]["properties"])
    assert phantom == set(asdict(GWRPhantomConfig())) | {"patients"}
