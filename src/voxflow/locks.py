"""A rerun after ``kill -9`` starts without ``snakemake --unlock``; two live runs still cannot.

Snakemake's lock is plain files, ``.snakemake/locks/N.input.lock`` and ``N.output.lock`` (the
files a run reads and writes), written once the DAG is built and removed when the run ends. A
run killed by SIGKILL, the OOM killer, a power cut or a cluster job kill leaves them behind, and
every later run that shares a file with them stops with "Directory cannot be locked ... --unlock".
The lock files name no owner, so Snakemake cannot tell a dead run's lock from a live one's.

:func:`clear_stale_locks` runs while the Snakefile is parsed (``workflow/rules/common.smk``),
which is before Snakemake checks its lock, in the main Snakemake process only (not in job
processes that parse the Snakefile again). Every such process holds a shared ``flock`` on
``.snakemake/voxflow/run.lock`` until it exits; the kernel drops it however the process dies.
A process that gets that flock *exclusively* knows that no other voxflow Snakemake process is
alive in this folder on this host, and removes the lock files left behind, unless an owner
record (``.snakemake/voxflow/owners/``, one per process, removed at a normal exit) shows that

* the run was on another host, where this host cannot see whether it is alive, or
* processes of the dead run's process group are still alive: jobs orphaned when only the main
  ``snakemake`` process was killed, which still write its outputs.

Then the lock files stay and Snakemake's own check refuses or allows the run, as without voxflow.
Where ``flock`` is not available (no ``fcntl``, a file system without locks) nothing is done.

Dry runs take part like real runs (a stale lock is removed by ``snakemake -n`` as well). A rerun
started in the dead run's own process group (relaunched by the same script) cannot tell that
group's orphaned jobs from its own relatives, so it counts any member other than itself and its
ancestors as one, and keeps the lock: safe, at worst Snakemake's ``--unlock`` message as before.
"""

from __future__ import annotations

import atexit
import errno
import json
import os
import re
import socket
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: keep Snakemake's own behaviour
    fcntl = None  # type: ignore[assignment]

# Snakemake's lock file names (snakemake/persistence/file.py: f"{i}.{lock_type}.lock")
SNAKEMAKE_LOCK = re.compile(r"[0-9]+\.(input|output)\.lock")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
PROC = Path("/proc")
# flock() errors meaning "this file system cannot lock", not "someone else holds it"
NO_LOCKING = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}

# run.lock descriptors this process holds, by path: kept open (never closed) until exit
_held: dict[Path, int] = {}
# owner records this process removes at a normal exit
_records: set[Path] = set()


@dataclass(frozen=True)
class Owner:
    """The Snakemake process behind a run: where it runs and its process group."""

    host: str
    boot_id: str
    pid: int
    pgid: int

    @classmethod
    def me(cls) -> Owner:
        return cls(socket.gethostname(), boot_id(), os.getpid(), os.getpgrp())

    @property
    def record_name(self) -> str:
        return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', self.host)}.{self.pid}.json"


def boot_id() -> str:
    """This boot's id (Linux), or ``""`` where the system does not say."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def _stat(pid: int | str) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of a process from ``/proc/PID/stat``; None if it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    state, ppid, pgrp = text[text.rindex(")") + 2 :].split()[:3]
    return state, int(ppid), int(pgrp)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    if PROC.is_dir():
        stat = _stat(pid)
        return stat is not None and stat[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_alive(pgid: int) -> bool:
    """Whether a live process other than this one and its ancestors is in process group
    ``pgid`` (without ``/proc``: whether the group exists at all, other than our own)."""
    if not PROC.is_dir():
        if pgid == os.getpgrp():
            return True  # cannot tell our own group's other members from us
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    mine = {0, os.getpid()}
    pid = os.getppid()
    while pid > 1 and pid not in mine:
        mine.add(pid)
        stat = _stat(pid)
        pid = stat[1] if stat else 0
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        stat = _stat(entry.name)
        if stat is not None and stat[2] == pgid and stat[0] not in ("Z", "X"):
            return True
    return False


def lock_files(snakemake_dir: Path) -> list[Path]:
    """Snakemake's lock files in ``snakemake_dir`` (``.snakemake``), sorted."""
    locks = snakemake_dir / "locks"
    if not locks.is_dir():
        return []
    return sorted(p for p in locks.iterdir() if SNAKEMAKE_LOCK.fullmatch(p.name))


def _read_owner(path: Path) -> Owner | None:
    try:
        return Owner(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None  # half-written by a killed process, or not ours


def _blocker(owner: Owner | None, me: Owner) -> str | None:
    """Why the lock files must stay for ``owner`` (a record found while no other voxflow
    process holds run.lock), or None if that run and all its processes are gone."""
    if owner is None:
        return None
    if owner.host != me.host:
        return f"a run on host {owner.host} (pid {owner.pid}), which cannot be checked from here"
    if owner.boot_id != me.boot_id:
        return None  # rebooted since: nothing of it survives
    if owner.pid != me.pid and pid_alive(owner.pid):  # (our pid: the old one is gone)
        return f"snakemake process {owner.pid}, still alive"
    if group_alive(owner.pgid):
        return (
            f"snakemake process {owner.pid} is gone but processes of its group {owner.pgid} "
            f"still run (orphaned jobs?); let them end or stop them (kill -- -{owner.pgid})"
        )
    return None


def _flock(fd: int, op: int) -> bool:
    """flock(); False where the file system cannot lock (other errors are raised)."""
    try:
        fcntl.flock(fd, op)
    except OSError as err:
        if err.errno in NO_LOCKING:
            return False
        raise
    return True


def claim_workdir(snakemake_dir: str | Path = ".snakemake") -> list[Path]:
    """Register this process as a live voxflow run of the folder around ``snakemake_dir`` and,
    if no other one is alive, remove Snakemake lock files that only dead runs left.

    Returns the lock files removed. Call it once per process, in the main Snakemake process,
    before Snakemake takes its lock; further calls in the same process only re-check.
    """
    if fcntl is None:
        return []
    base = Path(snakemake_dir).absolute()
    guard = base / "voxflow" / "run.lock"
    owners = guard.parent / "owners"
    fd = _held.get(guard)
    if fd is None:
        try:
            owners.mkdir(parents=True, exist_ok=True)
            fd = os.open(guard, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by jobs
        except OSError:
            return []  # e.g. a read-only folder: Snakemake reports what it cannot write
        _held[guard] = fd
    me = Owner.me()
    removed: list[Path] = []
    try:
        exclusive = _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        exclusive = False  # another voxflow run is alive here: Snakemake's check decides
    else:
        if not exclusive:
            return []  # no locking on this file system: keep Snakemake's behaviour
    if exclusive:
        locks = lock_files(base)
        blockers = []
        for path in owners.glob("*.tmp"):
            path.unlink(missing_ok=True)  # a record half-written by a killed process
        for path in sorted(owners.glob("*.json")):
            owner = _read_owner(path)
            why = _blocker(owner, me) if owner != me else None
            if why and locks:
                blockers.append(why)
            elif why is None or (owner and owner.host != me.host):
                path.unlink(missing_ok=True)  # dead, or foreign with nothing left to guard
        if locks and blockers:
            print(
                f"voxflow: leaving Snakemake's lock ({base / 'locks'}) in place: "
                + "; ".join(blockers),
                file=sys.stderr,
            )
        elif locks:
            for path in locks:
                path.unlink(missing_ok=True)
            removed = locks
            print(
                "voxflow: removed the Snakemake lock left by a run that is no longer alive "
                f"(killed?): {', '.join(p.name for p in locks)}",
                file=sys.stderr,
            )
    # shared from here on (blocks only while another process clears stale locks): no process
    # holds run.lock exclusively, judging records, while this one writes its own
    _flock(fd, fcntl.LOCK_SH)
    record = owners / me.record_name
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(me)))
    os.replace(tmp, record)
    if record not in _records:
        _records.add(record)
        atexit.register(record.unlink, missing_ok=True)
    return removed


def clear_stale_locks(workflow: Any) -> list[Path]:
    """:func:`claim_workdir` for a Snakemake ``workflow`` being parsed: only in the main
    process (``exec_mode`` DEFAULT), not in job processes on a cluster, which parse the
    Snakefile again while the main process holds the lock."""
    mode = getattr(workflow, "exec_mode", None)
    if getattr(mode, "name", "DEFAULT") != "DEFAULT":
        return []
    return claim_workdir(".snakemake")
