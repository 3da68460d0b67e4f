"""Heavy packages imported on first use.

Snakemake imports parts of voxflow while it builds the DAG (cohort readers, splits, phantom
cohort IDs), on every run, dry run and no-op rerun. Those modules need nibabel or
``scipy.ndimage`` only inside functions the DAG build never calls; importing them eagerly cost
each Snakemake start about a second (nibabel alone pulls in pydicom). A lazy module is a real
module whose code runs at its first attribute access (``importlib.util.LazyLoader``).
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_import(name: str) -> ModuleType:
    """``name`` as a module that is executed at its first attribute access."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}; run `bash run.sh setup`", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
