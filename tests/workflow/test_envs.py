"""Every rule's conda env exists, parses, pins versions, and carries what its script imports.

Imports are followed through the voxflow library (every import statement in a reached module,
also those inside functions, and ``find_spec("pkg")`` lookups of data-only packages), so a rule
script that reaches torch needs pytorch in its env.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version
from workflow_copy import rule_bodies

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
SCRIPTS = REPO / "workflow" / "scripts"
# import name -> conda-forge package name, where they differ
CONDA_NAME = {
    "torch": "pytorch",
    "SimpleITK": "simpleitk",
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "matplotlib": "matplotlib-base",
    "skimage": "scikit-image",
    "PIL": "pillow",
}


def _directive(block: str, name: str) -> str | None:
    m = re.search(rf"^\s+{name}:\s*\n\s+\"([^\"]+)\"", block, re.M)
    return m.group(1) if m else None


def rules() -> list[tuple[str, Path, str | None, str | None]]:
    """(rule, smk file, conda path, script path) for every rule with a body."""
    return [
        (name, smk, _directive(body, "conda"), _directive(body, "script"))
        for name, smk, body in rule_bodies(REPO)
    ]


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] == "voxflow":
        base = SRC.joinpath(*parts)
        for cand in (base.with_suffix(".py"), base / "__init__.py"):
            if cand.is_file():
                return cand
    elif len(parts) == 1 and (SCRIPTS / f"{name}.py").is_file():
        return SCRIPTS / f"{name}.py"
    return None


def third_party_imports(script: Path) -> set[str]:
    """Top-level third-party packages imported by ``script`` and the voxflow code it reaches."""
    seen: set[Path] = set()
    found: set[str] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif (  # find_spec("pkg"): a package used for its data files, not imported;
                # lazy_import("pkg"): imported at first use (voxflow.lazy)
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", None))
                in ("find_spec", "lazy_import")
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names = [str(node.args[0].value)]
            for name in names:
                local = _module_file(name)
                if local:
                    todo.append(local)
                    # importing voxflow.x.y also runs the package __init__ files
                    parts = name.split(".")
                    for i in range(1, len(parts)):
                        init = _module_file(".".join(parts[:i]))
                        if init:
                            todo.append(init)
                    continue
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("voxflow", "__future__"):
                    found.add(top)
    return found


def env_packages(env: dict) -> dict[str, str]:
    """name -> pinned version spec of a conda env file (conda and pip sections)."""
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for pip_dep in dep.get("pip", []):
                req = Requirement(pip_dep)
                pins[req.name.lower()] = str(req.specifier)
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(==?|>=|<=)?\s*([^\s]*)", dep)
        assert m, f"cannot parse dependency {dep!r}"
        pins[m.group(1).lower()] = (m.group(2) or "") + m.group(3)
    return pins


ALL_RULES = rules()


def test_rules_found():
    assert {"brain_phantom", "brain_phantom_qc"} <= {r[0] for r in ALL_RULES}


@pytest.mark.parametrize(
    ("rule", "smk", "conda", "script"), ALL_RULES, ids=[r[0] for r in ALL_RULES]
)
def test_rule_env_is_complete(rule, smk, conda, script):
    if rule == "all":
        return
    assert conda, f"rule {rule} in {smk.name} has no conda: directive"
    env_file = (smk.parent / conda).resolve()
    assert env_file.is_file(), f"rule {rule}: {conda} does not exist"
    env = yaml.safe_load(env_file.read_text())
    assert "conda-forge" in env["channels"]
    pins = env_packages(env)
    unpinned = [n for n, v in pins.items() if not re.match(r"^(==?)\d", v)]
    assert not unpinned, f"{env_file.name}: pin exact versions for {unpinned}"
    assert "python" in pins
    if script:
        needed = {CONDA_NAME.get(m, m).lower() for m in third_party_imports(smk.parent / script)}
        missing = sorted(needed - set(pins))
        assert not missing, f"rule {rule}: {env_file.name} lacks {missing} imported by {script}"


def test_env_pins_satisfy_pyproject():
    """The versions the envs pin must be ones voxflow declares it supports."""
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = {}
    for d in deps:
        r = Requirement(d)
        reqs[CONDA_NAME.get(r.name, r.name).lower()] = r.specifier
    for env_file in sorted((REPO / "envs").glob("*.yaml")):
        for name, pin in env_packages(yaml.safe_load(env_file.read_text())).items():
            if name in reqs:
                version = Version(pin.lstrip("="))
                assert reqs[name].contains(version), f"{env_file.name}: {name}{pin} vs {reqs[name]}"


def test_import_scan_follows_library_and_lazy_imports(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import _voxflow\nfrom voxflow.train.loop import Trainer\n")
    found = third_party_imports(script)
    assert {"torch", "numpy", "pandas", "matplotlib"} <= found  # matplotlib: lazy, via plots
    assert "os" not in found and "voxflow" not in found
