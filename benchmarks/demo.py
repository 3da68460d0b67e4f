"""Where a demo run spends its time: per rule, the Snakemake process itself, the critical path.

    .venv/bin/python benchmarks/demo.py run [--py-spy PROFILE] [-- SNAKEMAKE_ARGS...]
    .venv/bin/python benchmarks/demo.py report [--since EPOCH]

``run`` runs ``bash run.sh demo SNAKEMAKE_ARGS`` (set-up is timed separately first, with
``bash run.sh setup``), samples the Snakemake process's own CPU time (its children, the jobs,
not included) every 0.2 s, and then prints the report of that run. ``--py-spy PROFILE`` also
records where the Snakemake process spends its CPU (py-spy, 20 samples/s, speedscope JSON, read
at https://speedscope.app or with ``report-profile``); the sampler's own CPU is left out of the
totals.

``report`` reads what a run left behind:

* every rule's ``benchmark:`` file (``logs/**/<job>.benchmark.tsv``: wall s, CPU s, max RSS),
  summed per rule (jobs, total and longest wall, total CPU, largest RSS);
* Snakemake's metadata (``.snakemake/metadata``: each output's rule, inputs, start and end
  time), from which the critical path is the chain of jobs, from the last to finish backwards,
  each gated by the input that was written last.

``report-profile PROFILE`` prints the functions where the sampled Snakemake process spent its
CPU (own and cumulative share; samples of threads waiting on a lock, timer or child left out)
from a py-spy speedscope profile.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Job:
    """One finished job as Snakemake's metadata records it."""

    rule: str
    outputs: list[str]
    inputs: list[str]
    start: float
    end: float


def benchmark_rows(root: Path, since: float = 0.0) -> list[dict[str, float | str]]:
    """Every ``*.benchmark.tsv`` under ``root/logs`` written at or after ``since``."""
    rows = []
    for path in sorted((root / "logs").rglob("*.benchmark.tsv")):
        if path.stat().st_mtime < since:
            continue
        values = _read_benchmark(path)
        if not values:
            continue
        rows.append(
            {
                "rule": path.parent.name,
                "job": str(path.relative_to(root / "logs")),
                "wall_s": _number(values, "s"),
                "cpu_s": _number(values, "cpu_time"),
                "rss_mb": _number(values, "max_rss"),
            }
        )
    return rows


def _read_benchmark(path: Path) -> dict[str, str]:
    """Column -> value of a Snakemake benchmark file's last row ({} when it has none)."""
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        return {}
    return dict(zip(lines[0].split("\t"), lines[-1].split("\t"), strict=True))


def _number(values: dict[str, str], key: str) -> float:
    try:
        return float(values.get(key, "nan"))
    except ValueError:  # "NA": the job ended before Snakemake's first sample of it
        return float("nan")


def rule_table(rows: list[dict[str, float | str]]) -> list[tuple]:
    """Per rule: jobs, total wall, longest wall, total CPU, largest RSS; costliest first."""
    per: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        per[str(row["rule"])].append(row)

    def total(items: list[dict], key: str) -> float:
        return sum(float(r[key]) for r in items if r[key] == r[key])

    def largest(items: list[dict], key: str) -> float:
        return max((float(r[key]) for r in items if r[key] == r[key]), default=float("nan"))

    table = [
        (
            rule,
            len(items),
            total(items, "wall_s"),
            largest(items, "wall_s"),
            total(items, "cpu_s"),
            largest(items, "rss_mb"),
        )
        for rule, items in per.items()
    ]
    return sorted(table, key=lambda t: -t[2])


def read_metadata(root: Path, since: float = 0.0) -> dict[str, Job]:
    """Output path -> the job that wrote it, from ``.snakemake/metadata`` (jobs ending >= since)."""
    jobs: dict[str, Job] = {}
    folder = root / ".snakemake" / "metadata"
    if not folder.is_dir():
        return jobs
    by_key: dict[tuple, Job] = {}
    for path in folder.iterdir():
        try:
            name = base64.urlsafe_b64decode(path.name.encode()).decode()
            meta = json.loads(path.read_text())
        except (ValueError, OSError):
            continue
        if meta.get("incomplete") or meta.get("endtime") is None:
            continue
        if meta["endtime"] < since:
            continue
        # one job, several outputs, each with its own start/end record: its log names the job
        key = (meta.get("rule"), tuple(meta.get("log") or ()) or name)
        end = float(meta["endtime"])
        job = by_key.get(key)
        if job is None:
            start = float(meta.get("starttime") or end)
            job = by_key[key] = Job(
                str(meta.get("rule")), [], list(meta.get("input") or []), start, end
            )
        job.start, job.end = min(job.start, float(meta.get("starttime") or end)), max(job.end, end)
        job.outputs.append(name)
        jobs[name] = job
    for (_, logs), job in by_key.items():
        job.outputs.sort()
        # Snakemake's starttime is when the job was handed to the executor (it may then wait
        # for a worker); the job's benchmark file has the time it ran
        wall = _benchmark_wall(root, list(logs) if isinstance(logs, tuple) else [])
        if wall == wall:
            job.start = job.end - wall
    return jobs


def _benchmark_wall(root: Path, logs: list[str]) -> float:
    """The wall seconds in the benchmark file beside a job's first log (NaN without one)."""
    for log in logs:
        path = root / f"{log.removesuffix('.log')}.benchmark.tsv"
        if path.is_file() and (values := _read_benchmark(path)):
            return _number(values, "s")
    return float("nan")


def busy_cores(jobs: dict[str, Job]) -> list[float]:
    """Jobs running in each minute of the run (mean over the minute), from the job intervals."""
    unique = list({id(j): j for j in jobs.values()}.values())
    if not unique:
        return []
    t0 = min(j.start for j in unique)
    minutes = int((max(j.end for j in unique) - t0) // 60) + 1
    busy = [0.0] * minutes
    for job in unique:
        a, b = job.start - t0, job.end - t0
        for m in range(int(a // 60), int(b // 60) + 1):
            overlap = min(b, (m + 1) * 60) - max(a, m * 60)
            busy[m] += max(0.0, overlap) / 60
    return busy


def critical_path(jobs: dict[str, Job]) -> list[Job]:
    """The longest chain of dependent jobs, by their wall times (the run's floor on any number
    of cores); its jobs in order."""
    unique = sorted({id(j): j for j in jobs.values()}.values(), key=lambda j: j.end)
    best: dict[int, tuple[float, Job | None]] = {}
    for job in unique:
        parents = {id(jobs[i]): jobs[i] for i in job.inputs if i in jobs}
        parents = {k: p for k, p in parents.items() if k in best and p.end <= job.start + 1.0}
        before = max(parents.values(), key=lambda p: best[id(p)][0], default=None)
        length = (best[id(before)][0] if before else 0.0) + (job.end - job.start)
        best[id(job)] = (length, before)
    if not best:
        return []
    job = max(unique, key=lambda j: best[id(j)][0])
    path = [job]
    while (job := best[id(job)][1]) is not None:
        path.append(job)
    return path[::-1]


def report(root: Path, since: float = 0.0, wall: float | None = None) -> None:
    """Print the per-rule table, the job count and the critical path."""
    rows = benchmark_rows(root, since)
    table = rule_table(rows)
    print(f"{'rule':<26}{'jobs':>5}{'wall s':>9}{'max s':>8}{'cpu s':>9}{'rss MB':>8}")
    for rule, n, wall_s, longest, cpu, rss in table:
        print(f"{rule:<26}{n:>5}{wall_s:>9.1f}{longest:>8.1f}{cpu:>9.1f}{rss:>8.0f}")
    wall_sum = sum(t[2] for t in table)
    cpu_sum = sum(t[4] for t in table)
    print(f"{'total':<26}{len(rows):>5}{wall_sum:>9.1f}{'':>8}{cpu_sum:>9.1f}")
    print(f"jobs: {len(rows)} (benchmark files)")
    jobs = read_metadata(root, since)
    busy = busy_cores(jobs)
    if busy:
        print("jobs running, mean per minute: " + " ".join(f"{b:.1f}" for b in busy))
    path = critical_path(jobs)
    if path:
        print("critical path (the longest chain of dependent jobs; job wall time, rule, output):")
        for job in path:
            print(f"  {job.end - job.start:7.1f} s  {job.rule}  {job.outputs[0]}")
        length = sum(j.end - j.start for j in path)
        print(f"  length {length / 60:.2f} min", end="")
        if wall:
            print(f" (run wall {wall / 60:.2f} min: the rest is jobs queueing for cores)", end="")
        print()


def cpu_of(proc: psutil.Process) -> float:
    """A process's own user+system CPU seconds (its children not included)."""
    times = proc.cpu_times()
    return times.user + times.system


def run(snakemake_args: list[str], py_spy: Path | None) -> None:
    """Time set-up, then the demo, sampling the Snakemake process's own CPU; then report."""
    t0 = time.time()
    subprocess.run(["bash", "run.sh", "setup"], cwd=REPO, check=True)
    print(f"set-up: {time.time() - t0:.1f} s", flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = ["bash", "run.sh", "demo", *snakemake_args]
    if py_spy is not None:
        spy = Path(sys.executable).with_name("py-spy")
        if not spy.is_file():
            hint = f"`{sys.executable} -m pip install py-spy` (needed for --py-spy only)"
            sys.exit(f"{spy}: not installed; {hint}")
        cmd = [str(spy), "record", "--rate", "20", "--format", "speedscope"]
        cmd += ["-o", str(py_spy), "--", "bash", "run.sh", "demo", *snakemake_args]
    start = time.time()
    top = psutil.Popen(cmd, cwd=REPO)
    snake_cpu = sampler = 0.0
    snake: psutil.Process | None = None if py_spy else top
    while top.poll() is None:
        try:
            if snake is None:  # py-spy's child: bash, which execs snakemake
                snake = next(iter(top.children()), None)
            if snake is not None:
                snake_cpu = cpu_of(snake)
            if py_spy:
                sampler = cpu_of(top)
        except psutil.Error:
            pass
        time.sleep(0.2)
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    total -= sampler
    snake = snake_cpu
    print(f"exit status: {top.returncode}")
    print(f"wall: {wall / 60:.2f} min; CPU of everything: {total / 60:.2f} min")
    print(f"Snakemake's own CPU: {snake:.1f} s = {100 * snake / max(total, 1e-9):.1f} % of all")
    if py_spy is not None:
        print(f"(py-spy's own CPU, left out: {sampler:.1f} s)")
    report(REPO, since=start, wall=wall)


IDLE = {"select", "sleep", "poll", "acquire", "_try_wait"}


def report_profile(profile: Path, top: int = 25) -> None:
    """Own and cumulative sample shares per function from a speedscope profile."""
    data = json.loads(profile.read_text())
    frames = data["shared"]["frames"]
    own: Counter = Counter()
    cumulative: Counter = Counter()
    total = 0
    for prof in data["profiles"]:
        for sample, weight in zip(prof["samples"], prof["weights"], strict=True):
            leaf = frames[sample[-1]]["name"] if sample else ""
            if not sample or "wait" in leaf.lower() or leaf in IDLE:
                continue  # a thread blocked on a lock, a timer or a child: not CPU
            total += weight
            own[sample[-1]] += weight
            for index in set(sample):
                cumulative[index] += weight

    def name(i: int) -> str:
        f = frames[i]
        file = f.get("file", "")
        short = "/".join(file.split("/")[-2:])
        return f"{f['name']} ({short}:{f.get('line', '')})"

    print(f"{total:.1f} busy (sampled seconds, idle waits left out)")
    print("own %   function")
    for i, w in own.most_common(top):
        print(f"{100 * w / total:5.1f}  {name(i)}")
    print("cumulative %   function")
    for i, w in cumulative.most_common(top):
        print(f"{100 * w / total:5.1f}  {name(i)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="run the demo, then report")
    p_run.add_argument("--py-spy", type=Path, default=None, help="speedscope profile to write")
    p_run.add_argument("snakemake_args", nargs=argparse.REMAINDER)
    p_rep = sub.add_parser("report", help="report on what the last runs left behind")
    p_rep.add_argument("--since", type=float, default=0.0, help="only jobs ending after (epoch)")
    p_prof = sub.add_parser("report-profile", help="summarise a py-spy speedscope profile")
    p_prof.add_argument("profile", type=Path)
    p_prof.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    os.chdir(REPO)
    if args.cmd == "run":
        extra = [a for a in args.snakemake_args if a != "--"]
        run(extra, args.py_spy)
    elif args.cmd == "report":
        report(REPO, since=args.since)
    else:
        report_profile(args.profile, args.top)


if __name__ == "__main__":
    main()
