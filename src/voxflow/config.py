"""Config validation with one line per problem: the key's dotted path, the reason, a suggestion.

Snakemake's ``validate`` fills in the schema's defaults, but on an error prints the whole config
(~300 lines) around one jsonschema message. :func:`validate` keeps its defaults and replaces the
error with lines such as ``config: ms.pach_size: unknown key (did you mean 'patch_size'?)``.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from voxflow.errors import VoxflowError


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:  # "#/definitions/x"
        node: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def problems(config: Mapping[str, Any], schema: Mapping[str, Any]) -> Iterator[str]:
    """One line per schema violation of ``config``."""
    from jsonschema import Draft7Validator

    for err in sorted(Draft7Validator(schema).iter_errors(config), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in err.absolute_path)
        if err.validator == "additionalProperties":
            allowed = sorted(_resolve(err.schema, schema).get("properties", {}))
            for key in sorted(set(err.instance) - set(allowed)):
                near = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                hint = f"did you mean '{near[0]}'?" if near else f"known keys: {', '.join(allowed)}"
                yield f"config: {where + '.' if where else ''}{key}: unknown key ({hint})"
        else:
            yield f"config: {where or '(top level)'}: {err.message}"


def validate(config: dict, schema_path: str | Path) -> None:
    """Validate ``config`` against the YAML schema at ``schema_path`` and fill in its defaults
    (as ``snakemake.utils.validate``); a ``VoxflowError`` with one line per problem otherwise."""
    import yaml
    from snakemake.utils import validate as snakemake_validate

    schema = yaml.safe_load(Path(schema_path).read_text())
    found = list(problems(config, schema))
    if found:
        raise VoxflowError(
            "\n".join([*found, f"Every key is documented in {schema_path}; fix the config file."])
        )
    quiet = logging.getLogger("snakemake.logging")  # its JSON-schema draft notice is noise
    level, quiet.level = quiet.level, logging.ERROR
    try:
        snakemake_validate(config, str(schema_path))  # fills in the defaults
    finally:
        quiet.setLevel(level)
