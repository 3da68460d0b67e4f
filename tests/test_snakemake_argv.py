"""The snakemake target-order hook: targets typed after --resources/--config become targets."""

import subprocess
import sys
from pathlib import Path

import pytest

from voxflow.snakemake_argv import PTH_LINE, move_targets, pth_path


@pytest.mark.parametrize(
    ("typed", "expected", "moved"),
    [
        (
            "--cores 8 --resources gpu=1 results/ms/dsc.tsv",
            "results/ms/dsc.tsv --cores 8 --resources gpu=1",
            ["results/ms/dsc.tsv"],
        ),
        (
            "--res gpu=1 mem_mb=9 a.tsv b.tsv -n",
            "a.tsv b.tsv --res gpu=1 mem_mb=9 -n",
            ["a.tsv", "b.tsv"],
        ),
        ("--config seed=1 x.tsv", "x.tsv --config seed=1", ["x.tsv"]),
        (
            "-C seed=1 --set-threads ms_train=2 x.tsv",
            "x.tsv -C seed=1 --set-threads ms_train=2",
            ["x.tsv"],
        ),
        ("a.tsv --cores 8 --resources gpu=1", "a.tsv --cores 8 --resources gpu=1", []),
        ("--cores 8 a.tsv", "--cores 8 a.tsv", []),  # --cores takes one value: argparse's job
        ("--resources=gpu=1 a.tsv", "--resources=gpu=1 a.tsv", []),  # '=' form takes one word
        ("--resources gpu=1 -- a.tsv", "--resources gpu=1 -- a.tsv", []),
        ("--configfile c.yaml d.yaml", "--configfile c.yaml d.yaml", []),
    ],
)
def test_move_targets(typed, expected, moved):
    args, got = move_targets(typed.split())
    assert args == expected.split() and got == moved


def test_hook_rewrites_only_snakemake_and_can_be_turned_off(tmp_path):
    # run the .pth line as site would, in a fresh interpreter named like the snakemake command
    code = (
        "import sys; sys.argv = [sys.argv[1], *sys.argv[2:]]; "
        + PTH_LINE.strip()
        + "; print(' '.join(sys.argv[1:]))"
    )
    typed = ["--cores", "8", "--resources", "gpu=1", "results/ms/dsc.tsv"]
    for argv0, env, out in [
        ("/x/bin/snakemake", {}, "results/ms/dsc.tsv --cores 8 --resources gpu=1"),
        ("/x/bin/other", {}, " ".join(typed)),
        ("/x/bin/snakemake", {"VOXFLOW_KEEP_ARGV": "1"}, " ".join(typed)),
    ]:
        proc = subprocess.run(
            [sys.executable, "-c", code, argv0, *typed],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", **env},
        )
        assert proc.stdout.strip() == out, proc.stderr
        assert ("as target(s)" in proc.stderr) == (out != " ".join(typed))


def test_hook_installed_where_run_sh_set_up():
    if not (Path(sys.prefix) / ".voxflow-setup").exists():
        pytest.skip("this environment was not set up by run.sh")
    assert pth_path().read_text() == PTH_LINE
