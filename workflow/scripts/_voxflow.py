"""Make the voxflow library importable from a rule script.

Rule scripts run either in the environment where voxflow is pip-installed (``bash run.sh``) or in
a per-rule conda env (``--sdm conda``) that carries only third-party packages; there the library
is taken from this checkout's ``src/``. Snakemake puts this folder on ``sys.path``.
"""

import sys
from importlib.util import find_spec
from pathlib import Path

if find_spec("voxflow") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
