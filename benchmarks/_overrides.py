"""``--set KEY=VALUE`` overrides of a config block, shared by the benchmark scripts."""

from __future__ import annotations

from typing import Any

import yaml


def apply_overrides(cfg: dict[str, Any], items: list[str]) -> dict[str, Any]:
    """Set each dotted ``KEY=VALUE`` (the value parsed as YAML) in ``cfg``, in place."""
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item}: expected KEY=VALUE")
        *parents, leaf = key.split(".")
        node = cfg
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = yaml.safe_load(value)
    return cfg
