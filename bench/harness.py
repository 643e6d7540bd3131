"""Shared benchmark helpers: timing, floors, temporary stores, tables.

Every benchmark prints medians and ratios measured in the same run; none
asserts an absolute threshold (these machines are noisy). A ratio's goal is
printed beside it so a reader sees at once whether it holds.
"""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}


def median_ms(fn: Callable[[], object], runs: int = 15, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _process(args: list[str], cwd: Path | None, env: dict | None) -> Callable[[], None]:
    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    # as installed: the warm-up runs leave bytecode behind (pip compiles it on install),
    # so no measured run compiles an edited module from source
    full_env.pop("PYTHONDONTWRITEBYTECODE", None)

    def run() -> None:
        subprocess.run(args, cwd=cwd, env=full_env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)

    return run


def process_ms(args: list[str], cwd: Path | None = None, env: dict | None = None,
               runs: int = 15) -> float:
    """Median wall time of a whole process, in milliseconds."""
    return median_ms(_process(args, cwd, env), runs=runs)


def medians_in_turn(calls: dict, runs: int = 15, warmup: int = 2) -> dict:
    """Median milliseconds of each call, the calls run in turn round after round, so
    that the machine's drift (disk, other load) hits each alike and their ratio holds."""
    times: dict = {name: [] for name in calls}
    for round_ in range(warmup + runs):
        for name, call in calls.items():
            t = time.perf_counter()
            call()
            if round_ >= warmup:
                times[name].append((time.perf_counter() - t) * 1000)
    return {name: statistics.median(ts) for name, ts in times.items()}


def processes_in_turn_ms(procs: dict[str, tuple[list[str], Path | None, dict | None]],
                         runs: int = 15) -> dict[str, float]:
    """``medians_in_turn`` of whole processes: ``name -> (args, cwd, env)``."""
    return medians_in_turn({name: _process(*spec) for name, spec in procs.items()}, runs)


def floors(runs: int = 15) -> dict[str, float]:
    """The floor figures every process benchmark is compared with."""
    return {
        "python -c pass": process_ms([sys.executable, "-c", "pass"], runs=runs),
        'python -c "import typer"': process_ms([sys.executable, "-c", "import typer"], runs=runs),
    }


def bd_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "beadsmail", *args]


def new_repo(prefix: str = "beadsmail-bench-") -> Path:
    """A fresh git repository in a temporary folder, removed when the benchmark exits
    (a million-record store takes over a gigabyte)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    env = {**os.environ, **GIT_ENV}
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=env)
    return path


def table(title: str, header: list[str], rows: list[list[object]]) -> str:
    cells = [header] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(header))]
    lines = [title, "  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells[1:]]
    return "\n".join(lines) + "\n"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
