"""Every command README.md shows runs as written, in a dry-run or --help form, on a copy.

Collected: each ``snakemake``, ``voxflow``, ``bash run.sh`` and ``.venv/bin/python`` command in
a fenced block (a ``$ `` prompt line followed by output: that output must appear) or an inline
code span, with leading ``VAR=value`` assignments. ``[...]`` is optional syntax: an optional
option is kept, an optional placeholder (``[targets]``) dropped. Dry forms:

- ``snakemake ...`` gets ``-n`` (unless it is already a dry run, --lint, --help...) and runs in
  a copy of the workflow with the repository's demo config; ``--report`` runs for real in a
  copy where the tiny default target was built; ``--sdm conda`` is dropped when no ``conda``
  is on PATH (conda channels are unreachable here; test_envs.py checks the env files);
- ``voxflow ...`` is parsed by the real argument parser (no stage runs);
- ``bash run.sh demo|test|setup ...`` runs run.sh in a copy, with this environment as its
  venv: ``demo`` gets ``-n``, ``test`` gets ``--collect-only -q``, ``setup`` must be a no-op;
- ``.venv/bin/python benchmarks/X.py ...`` runs with ``--help`` appended.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from shared_data import SHARED_DATA
from workflow_copy import SNAKEMAKE, make_workdir

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PROGRAMS = r"snakemake|voxflow|bash run\.sh|\.venv/bin/python"
PROGRAM = re.compile(rf"^((?:[A-Z_]+=\S+\s+)*)({PROGRAMS})(\s|$)")
DRY_FLAGS = {"-n", "--dry-run", "--dryrun", "--lint", "--help", "-h", "--version", "--report"}
EXTRA = ("run.sh", "pyproject.toml", "requirements", "tests", "benchmarks", "README.md")


@dataclass
class Command:
    line: int
    text: str
    expected: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"L{self.line}:{self.text[:70]}"


def _strip_optional(text: str) -> str:
    """'[--opt X]' -> '--opt X'; '[targets]' -> ''."""
    return re.sub(r"\[([^\]]*)\]", lambda m: m.group(1) if m.group(1).startswith("-") else "", text)


def readme_commands(text: str) -> list[Command]:
    """The commands of a README, in order, with the output shown after `$ ` prompts."""
    commands: list[Command] = []
    lines = text.splitlines()
    prose: list[tuple[int, str]] = []
    fence = False
    pending = ""
    current: Command | None = None
    for no, raw in enumerate(lines, start=1):
        if raw.lstrip().startswith("```"):
            fence, current, pending = not fence, None, ""
            continue
        if not fence:
            prose.append((no, raw))
            continue
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        prompt = line.startswith("$ ")
        body = line[2:] if prompt else line
        if PROGRAM.match(body):
            cmd = shlex.join(shlex.split(body, comments=True))
            current = Command(no, cmd) if prompt else None
            commands.append(current or Command(no, cmd))
        elif current is not None and line:
            current.expected.append(line)
    joined = "\n".join(t for _, t in prose)
    starts = [0]
    for _, t in prose:
        starts.append(starts[-1] + len(t) + 1)
    for m in re.finditer(r"`([^`]+)`", joined):
        span = " ".join(m.group(1).split())
        if PROGRAM.match(span) and PROGRAM.match(span).end() < len(span):  # not a bare name
            idx = next(i for i, s in enumerate(starts) if s > m.start()) - 1
            commands.append(Command(prose[idx][0], span))
    return commands


def unique(commands: list[Command]) -> list[Command]:
    """Each distinct command once (the README repeats `bash run.sh demo`...), first line kept."""
    seen: dict[tuple, Command] = {}
    for c in commands:
        seen.setdefault((c.text, tuple(c.expected)), c)
    return list(seen.values())


COMMANDS = unique(readme_commands(README.read_text()))


def _venv_is_run_sh_setup(workdir: Path) -> bool:
    """True when run.sh in ``workdir`` finds this environment current (it would not install)."""
    env = {**os.environ, "VOXFLOW_VENV": sys.prefix}
    check = ["bash", "run.sh", "setup", "--check"]
    return subprocess.run(check, cwd=workdir, env=env, capture_output=True).returncode == 0


def run_readme_command(cmd: Command, workdir: Path, report_dir: Path | None = None) -> str | None:
    """Run one README command in its dry form in ``workdir``; None if fine, else why not."""
    m = PROGRAM.match(cmd.text)
    env_words, program = m.group(1).split(), m.group(2)
    args = shlex.split(_strip_optional(cmd.text[m.end(2) :]))
    env = {**os.environ, **dict(w.split("=", 1) for w in env_words)}
    if program == "voxflow":
        from voxflow.cli import build_parser

        try:
            build_parser().parse_args(args)
        except SystemExit as exc:
            return None if exc.code == 0 else f"voxflow rejects the arguments (exit {exc.code})"
        return None
    cwd = workdir
    if program == "snakemake":
        from voxflow.snakemake_argv import move_targets, pth_path

        if move_targets(args)[1] and not pth_path().exists():
            pytest.skip("needs the target-order hook that run.sh installs")
        if "--sdm" in args and shutil.which("conda") is None:
            i = args.index("--sdm")
            args = args[:i] + args[i + 2 :]
        if "--report" in args:
            cwd = report_dir or workdir
        elif not DRY_FLAGS.intersection(args):
            args.append("-n")
        full = [SNAKEMAKE, *args]
    elif program == "bash run.sh":
        if not _venv_is_run_sh_setup(workdir):
            pytest.skip("this environment was not set up by run.sh (it would reinstall)")
        env["VOXFLOW_VENV"] = sys.prefix
        args = args or ["demo"]
        sub = args[0]
        if sub == "demo" and not DRY_FLAGS.intersection(args):
            args.append("-n")
        elif sub == "test":
            args += ["--collect-only", "-q"]
        full = ["bash", "run.sh", *args]
    else:  # .venv/bin/python benchmarks/...
        full = [sys.executable, *args, "--help"]
    proc = subprocess.run(full, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    if program == "bash run.sh" and "setting up" in out:
        return f"run.sh reinstalled instead of running:\n{out[-2000:]}"
    if cmd.expected:
        missing = [line for line in cmd.expected if line not in out]
        return f"output lacks {missing}:\n{out[-3000:]}" if missing else None
    if proc.returncode != 0:
        return f"exit {proc.returncode}: {' '.join(full)}\n{out[-3000:]}"
    return None


@pytest.fixture(scope="module")
def readme_copy(tmp_path_factory) -> Path:
    """A copy of the repository as a user has it: with the project's shared data beside it
    (where present), which README commands such as the real-patient check rely on."""
    base = tmp_path_factory.mktemp("readme")
    if SHARED_DATA.is_dir():
        (base / "shared").symlink_to(SHARED_DATA.parent)
    return make_workdir(base / "repo", repo_config=True, extra=EXTRA)


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.id for c in COMMANDS])
def test_readme_command_runs(cmd, readme_copy, finished_workdir):
    problem = run_readme_command(cmd, readme_copy, report_dir=finished_workdir)
    assert problem is None, f"README.md line {cmd.line}: {cmd.text}\n{problem}"


def test_collector_finds_the_documented_commands():
    texts = [c.text for c in COMMANDS]
    assert "bash run.sh demo" in texts and "bash run.sh test" in texts
    assert "snakemake results/ms/dsc.tsv --cores 8 --resources gpu=1" in texts
    assert "snakemake --cores 8 --resources gpu=1 results/ms/dsc.tsv" in texts  # the card's
    assert any(t.startswith("voxflow dicom2nifti") for t in texts)
    shown = [c for c in COMMANDS if c.expected]
    assert {c.text.split()[1] for c in shown} == {"-n", "--cores"}  # config typo, card's form


def test_collector_parses_blocks_prompts_and_inline_spans():
    text = (
        "Run `bash run.sh demo -n` or\n`voxflow phantom brain OUT\n--seed 1`; not `voxflow.io`.\n"
        "```bash\nsnakemake --cores 2 \\\n  results/x.tsv   # a comment\nls -l\n```\n"
        "```text\n$ snakemake -n --config a=1\nError: bad\n```\n"
    )
    got = [(c.line, c.text, c.expected) for c in readme_commands(text)]
    assert got == [
        (6, "snakemake --cores 2 results/x.tsv", []),
        (10, "snakemake -n --config a=1", ["Error: bad"]),
        (1, "bash run.sh demo -n", []),
        (2, "voxflow phantom brain OUT --seed 1", []),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "snakemake --cores 8 --resourcez gpu=1 results/ms/dsc.tsv",  # misspelt option
        "snakemake results/ms/dcs.tsv --cores 8",  # no rule makes this target
        "voxflow phantom brian OUT_DIR",  # not a phantom kind
        "voxflow dicom2nifti IN_DIR OUT.nii.gz --plane axiall",
    ],
)
def test_a_broken_command_is_caught(text, readme_copy):
    assert run_readme_command(Command(0, text), readme_copy) is not None
