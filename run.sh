#!/usr/bin/env bash
# voxflow: set up on first use, then run.
#   bash run.sh demo [snakemake args...]   run the workflow on the embedded demo cohort
#   bash run.sh test [pytest args...]      run the test suite (unit, workflow DAG, lint, style)
#   bash run.sh setup [--check]            only create/refresh the virtual environment
#                                          (--check: exit 1 if it would install)
# Needs only python3 (>= 3.11) with pip/venv. Installs into .venv/ (override with VOXFLOW_VENV).
# torch: installed first, as VOXFLOW_TORCH (default torch==2.13.0) from the default index, or
# from VOXFLOW_TORCH_INDEX if set, e.g. https://download.pytorch.org/whl/cpu for a CPU-only
# build, or https://download.pytorch.org/whl/cu128 for a specific CUDA build. Everything
# else then comes from the lock requirements/py3.X.txt (exact versions, sha256-checked;
# regenerate with `python requirements/lock.py`), on Linux x86_64; elsewhere, or on a Python
# without a lock, from pyproject.toml's ranges (with a warning).
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VOXFLOW_VENV:-.venv}"
PY="${PYTHON:-python3}"
export MPLBACKEND=Agg PIP_DISABLE_PIP_VERSION_CHECK=1

# Sets PYVER, LOCK (the lock file for this venv's Python and machine, or empty) and WANT (the
# digest the set-up stamp holds once this checkout's pyproject.toml, run.sh and lock are in).
resolve_lock() {
    PYVER="$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    case "$PYVER" in 3.[0-9] | 3.10)
        echo "voxflow: needs Python >= 3.11 (Snakemake 9.27 does), $VENV has $PYVER;" \
            "run with PYTHON=python3.11 (or newer) after removing $VENV" >&2
        exit 1
        ;;
    esac
    LOCK="requirements/py$PYVER.txt"
    [ "$(uname -sm)" = "Linux x86_64" ] && [ -f "$LOCK" ] || LOCK=""
    WANT="$(cat pyproject.toml run.sh ${LOCK:+"$LOCK"} | sha256sum | cut -c1-16)"
}

# `setup --check`: exit 0 when the environment is current, 1 when setup would install.
setup() {
    local stamp="$VENV/.voxflow-setup"
    if [ "${1:-}" = "--check" ]; then
        [ -x "$VENV/bin/python" ] || exit 1
        resolve_lock
        [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$WANT" ]
        return
    fi
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    resolve_lock
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$WANT" ]; then
        return 0
    fi
    echo "voxflow: setting up $VENV (first run takes a few minutes)" >&2
    if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
        local spec="${VOXFLOW_TORCH:-torch==2.13.0}"
        if [ -n "${VOXFLOW_TORCH_INDEX:-}" ]; then
            "$VENV/bin/python" -m pip install -q "$spec" --index-url "$VOXFLOW_TORCH_INDEX"
        else
            "$VENV/bin/python" -m pip install -q "$spec"
        fi
    fi
    if [ -n "$LOCK" ]; then
        echo "voxflow: installing the locked versions of $LOCK" >&2
        "$VENV/bin/python" -m pip install -q --require-hashes --no-deps -r "$LOCK"
        "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
        "$VENV/bin/python" -m pip check >&2
    else
        echo "voxflow: WARNING no lock for Python $PYVER on $(uname -sm) (requirements/ has" \
            "Linux x86_64 locks for 3.11-3.13); installing pyproject.toml's version ranges" >&2
        "$VENV/bin/python" -m pip install -q -e ".[dev]"
    fi
    "$VENV/bin/python" -m voxflow.snakemake_argv install >&2
    "$VENV/bin/python" -c "import torch; print('voxflow: torch', torch.__version__, \
'cuda' if torch.cuda.is_available() else 'cpu')" >&2
    echo "$WANT" >"$stamp"
}

cmd="${1:-demo}"
shift || true
case "$cmd" in
setup) setup "$@" ;;
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
