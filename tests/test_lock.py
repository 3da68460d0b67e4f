"""The install locks (requirements/py3.X.txt) match pyproject.toml and the running environment."""

import importlib.util
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("lock", REPO / "requirements" / "lock.py")
lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lock)


@pytest.mark.parametrize("python", lock.PYTHONS)
def test_lock_is_current_for_pyproject(python):
    path = lock.lock_path(python)
    assert path.exists(), f"{path.name} missing: run python requirements/lock.py"
    assert lock.recorded_digest(path) == lock.dependency_digest(), (
        f"pyproject.toml's dependencies changed since {path.name} was generated: "
        "run python requirements/lock.py and commit the locks"
    )


def test_digest_follows_dependencies_not_other_settings(tmp_path):
    text = (REPO / "pyproject.toml").read_text()
    base = tmp_path / "pyproject.toml"
    base.write_text(text)
    digest = lock.dependency_digest(base)
    base.write_text(text.replace("line-length = 100", "line-length = 99"))
    assert lock.dependency_digest(base) == digest
    base.write_text(text.replace('"numpy>=1.26"', '"numpy>=1.27"'))
    assert lock.dependency_digest(base) != digest


@pytest.mark.parametrize("python", lock.PYTHONS)
def test_every_package_is_pinned_with_hashes(python):
    text = lock.lock_path(python).read_text()
    blocks = [(n, b) for n, b in lock.package_blocks(text) if not b.startswith("#")]
    assert len(blocks) > 50
    for name, block in blocks:
        assert name and re.match(r"[A-Za-z0-9_.-]+==\S+ \\", block), block[:80]
        assert "--hash=sha256:" in block, f"no hash: {block[:60]}"
    locked = lock.locked_versions(lock.lock_path(python))
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    wanted = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["dev"]
    for req in [*wanted, *data["build-system"]["requires"]]:
        name = lock.canonical(re.match(r"[A-Za-z0-9_.-]+", req).group(0))
        if name == "torch":
            assert name not in locked  # run.sh installs the build for the machine
            continue
        assert name in locked, f"{req} is not in {lock.lock_path(python).name}"
    assert not any(n.startswith("nvidia-") or n == "triton" for n in locked)


def test_drop_unlocked_removes_torch_and_cuda_blocks():
    text = (
        "numpy==2.0 \\\n    --hash=sha256:aa\n"
        "nvidia-cudnn-cu12==9.1 \\\n    --hash=sha256:bb\n"
        "torch==2.13.0 \\\n    --hash=sha256:cc\n"
        "triton==3.0 \\\n    --hash=sha256:dd\n"
        "tzdata==2026.1 \\\n    --hash=sha256:ee\n"
    )
    assert lock.drop_unlocked(text) == (
        "numpy==2.0 \\\n    --hash=sha256:aa\ntzdata==2026.1 \\\n    --hash=sha256:ee\n"
    )


def test_this_environment_was_installed_from_the_lock():
    python = "{}.{}".format(*sys.version_info[:2])
    if python not in lock.PYTHONS or not (Path(sys.prefix) / ".voxflow-setup").exists():
        pytest.skip("not an environment run.sh installed from a lock")
    wrong = {
        name: (version, metadata.version(name))
        for name, version in lock.locked_versions(lock.lock_path(python)).items()
        if metadata.version(name) != version
    }
    assert not wrong, f"installed versions differ from the lock (locked, installed): {wrong}"
