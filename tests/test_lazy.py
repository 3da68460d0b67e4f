"""voxflow.lazy, and the promise it serves: Snakemake's DAG build imports no heavy package."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from voxflow.lazy import lazy_import

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("nibabel", "scipy.ndimage", "scipy.special", "pydicom", "SimpleITK", "torch", "monai")


def test_lazy_module_runs_at_first_attribute_access(tmp_path, monkeypatch):
    (tmp_path / "vf_probe_mod.py").write_text("import builtins\nbuiltins.VF_PROBE = 1\nX = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "vf_probe_mod", raising=False)
    import builtins

    monkeypatch.delattr(builtins, "VF_PROBE", raising=False)
    mod = lazy_import("vf_probe_mod")
    assert not hasattr(builtins, "VF_PROBE")  # not executed yet
    assert mod.X == 2 and builtins.VF_PROBE == 1
    assert lazy_import("vf_probe_mod") is sys.modules["vf_probe_mod"]


def test_missing_module_says_what_to_do():
    with pytest.raises(ModuleNotFoundError, match="run.sh setup"):
        lazy_import("vf_no_such_module_anywhere")


def test_dag_build_imports_no_heavy_package():
    """Every voxflow module the Snakefile imports, imported as Snakemake does, leaves the heavy
    packages unloaded (a lazy module is in sys.modules but not executed)."""
    text = "\n".join(p.read_text() for p in (REPO / "workflow/rules").glob("*.smk"))
    modules = sorted(set(re.findall(r"^\s*from (voxflow[\w.]*) import", text, re.M)))
    assert len(modules) >= 8, modules
    code = (
        "import sys, importlib\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"loaded = [h for h in {HEAVY!r} if h in sys.modules\n"
        "          and not type(sys.modules[h]).__name__ == '_LazyModule']\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"eagerly imported at DAG build: {out.stdout}"
