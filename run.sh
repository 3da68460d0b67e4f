#!/usr/bin/env bash
# voxflow: set up on first use, then run.
#   bash run.sh demo [snakemake args...]   run the workflow on the embedded demo cohort
#   bash run.sh test [pytest args...]      run the test suite (unit, workflow DAG, lint, style)
#   bash run.sh setup                      only create/refresh the virtual environment
# Needs only python3 (>= 3.10) with pip/venv. Installs into .venv/ (override with VOXFLOW_VENV).
# torch: installed first, as VOXFLOW_TORCH (default torch==2.13.0) from the default index, or
# from VOXFLOW_TORCH_INDEX if set, e.g. https://download.pytorch.org/whl/cpu for a CPU-only
# build, or https://download.pytorch.org/whl/cu128 for a specific CUDA build. Everything
# else then keeps that torch (pyproject only asks torch>=2.2).
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VOXFLOW_VENV:-.venv}"
PY="${PYTHON:-python3}"
export MPLBACKEND=Agg PIP_DISABLE_PIP_VERSION_CHECK=1

setup() {
    local stamp="$VENV/.voxflow-setup" want
    want="$(cat pyproject.toml run.sh | sha256sum | cut -c1-16)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    echo "voxflow: setting up $VENV (first run takes a few minutes)" >&2
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
        local spec="${VOXFLOW_TORCH:-torch==2.13.0}"
        if [ -n "${VOXFLOW_TORCH_INDEX:-}" ]; then
            "$VENV/bin/python" -m pip install -q "$spec" --index-url "$VOXFLOW_TORCH_INDEX"
        else
            "$VENV/bin/python" -m pip install -q "$spec"
        fi
    fi
    "$VENV/bin/python" -m pip install -q -e ".[dev]"
    "$VENV/bin/python" -c "import torch; print('voxflow: torch', torch.__version__, \
'cuda' if torch.cuda.is_available() else 'cpu')" >&2
    echo "$want" >"$stamp"
}

cmd="${1:-demo}"
shift || true
case "$cmd" in
setup) setup ;;
demo)
    setup
    exec "$VENV/bin/snakemake" "$@"
    ;;
test)
    setup
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
*)
    echo "usage: bash run.sh {demo|test|setup} [args...]" >&2
    exit 2
    ;;
esac
