"""Fixtures: real git repositories, real linked worktrees, and a ``bd`` runner.

``bd(cwd, *args)`` runs the CLI in-process (fast); ``bd_proc`` runs the real
console script in a subprocess, for concurrency and crash tests.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test User", "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test User", "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


# Variables that name the caller: tests set them explicitly, never inherit them.
IDENTITY_ENV = ("BEADS_IDENTITY", "BEADS_SESSION", "BTMSG_AGENT_ID", "CLAUDE_SESSION_ID")


def git(cwd: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, **GIT_ENV}
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


def run_bd(cwd: Path, *args: str, env: dict | None = None, input: str | bytes | None = None) -> Result:
    """Run ``bd`` in-process with ``cwd`` as the working directory."""
    from beadsmail.cli import main

    old_cwd, old_env, old_stdin = os.getcwd(), dict(os.environ), sys.stdin
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        os.chdir(cwd)
        for name in IDENTITY_ENV:
            os.environ.pop(name, None)
        os.environ.update(env or {})
        if input is not None:
            data = input.encode() if isinstance(input, str) else input
            sys.stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
        sys.stdin = old_stdin
    return Result(code, out.getvalue(), err.getvalue())


def run_bd_proc(cwd: Path, *args: str, env: dict | None = None, input: str | None = None,
                timeout: float = 300) -> Result:
    """Run the real ``bd`` in a subprocess."""
    full_env = {k: v for k, v in os.environ.items() if k not in IDENTITY_ENV}
    full_env.update(GIT_ENV)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "beadsmail", *args], cwd=cwd, env=full_env,
                          input=input, capture_output=True, text=True, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def bd():
    return run_bd


@pytest.fixture
def bd_proc():
    return run_bd_proc


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.txt").write_text("user project\n")
    git(path, "add", "README.txt")
    git(path, "commit", "-q", "-m", "user: initial commit")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real git repository with one user commit (no store yet)."""
    return make_repo(tmp_path / "repo")


@pytest.fixture
def worktrees(repo: Path) -> list[Path]:
    """The main checkout plus two linked worktrees made with the git CLI."""
    paths = [repo]
    for name in ("wt1", "wt2"):
        wt = repo.parent / name
        git(repo, "worktree", "add", "-q", "-b", name, str(wt))
        paths.append(wt)
    return paths


def fsck(path: Path) -> None:
    """``git fsck`` once the background packer the last writes started has finished: fsck
    lists loose objects and then reads them, and ``git repack -d`` removes them between."""
    import faults

    common = (path / git(path, "rev-parse", "--git-common-dir").strip()).resolve()
    faults.wait_packers(common)
    out = subprocess.run(["git", "fsck", "--no-dangling", "--no-progress"], cwd=path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "error" not in out.stderr.lower() and "missing" not in out.stdout.lower(), out.stdout + out.stderr
