"""Fault injection for the reliability tests.

Real ``bd`` processes killed with SIGKILL at chosen moments, the background
packers they start found and killed too, segments edited by hand with git
plumbing (as a user with a text editor and ``git commit`` would), and the
checks every damaged store must pass afterwards. Nothing here mocks the store:
every fault is done to a real repository on disk.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import GIT_ENV, fsck, git

BD = [sys.executable, "-m", "beadsmail"]
STORE_REF = "refs/heads/beadsmail"


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("BEADS_IDENTITY", "BEADS_SESSION")}
    return {**base, **GIT_ENV, **extra}


def configure(repo: Path, section: str = "store", **values: object) -> None:
    """Set ``<section>.<key>`` values in the worktree's ``.beads/config.yaml``."""
    import yaml

    path = repo / ".beads" / "config.yaml"
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    data.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(data))


# -- killing -------------------------------------------------------------------------

@dataclass
class Run:
    """One ``bd`` process: its arguments, whether we killed it, and what it printed."""

    args: tuple[str, ...]
    killed: bool
    code: int | None
    out: str
    err: str

    def json(self) -> dict | list | None:
        """The JSON document it printed, or None if it was cut short before printing one."""
        try:
            return json.loads(self.out) if self.out.strip() else None
        except ValueError:
            return None


def spawn(cwd: Path, *args: str, extra_env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([*BD, *args], cwd=cwd, env=env(**(extra_env or {})),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run_killed(cwd: Path, args: tuple[str, ...], delay: float | None,
               extra_env: dict | None = None, timeout: float = 300) -> Run:
    """Run ``bd args``; SIGKILL it after ``delay`` seconds unless it finished first."""
    proc = spawn(cwd, *args, extra_env=extra_env)
    killed = False
    try:
        proc.wait(timeout=delay if delay is not None else timeout)
    except subprocess.TimeoutExpired:
        if delay is None:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"bd {' '.join(args)} hung for {timeout}s: {err}") from None
        proc.send_signal(signal.SIGKILL)
        killed = True
    out, err = proc.communicate()
    return Run(tuple(args), killed and proc.returncode == -signal.SIGKILL, proc.returncode, out, err)


def _proc_env(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in pairs}


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def packers(common: Path) -> list[int]:
    """Pids of background packers working on ``common``: the python packer a write
    starts (its argv names the git dir) and the git processes it runs (GIT_DIR)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        argv = _cmdline(pid)
        if "beadsmail.store.pack" in argv and str(common) in argv:
            found.append(pid)
        elif argv and Path(argv[0]).name.startswith("git") and \
                _proc_env(pid).get("GIT_DIR") == str(common):
            found.append(pid)
    return found


def kill_packers(common: Path) -> int:
    """SIGKILL every packer of this store (each by its pid); how many were killed."""
    killed = 0
    for pid in packers(common):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed


def start_packer(common: Path) -> subprocess.Popen:
    """The background packer exactly as ``Writer.maybe_pack`` starts it."""
    return subprocess.Popen([sys.executable, "-m", "beadsmail.store.pack", str(common)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def wait_packers(common: Path, timeout: float = 600) -> None:
    """Until no packer of this store runs (a busy machine may take long; it must end)."""
    deadline = time.monotonic() + timeout
    while packers(common):
        assert time.monotonic() < deadline, f"a packer of {common} still runs after {timeout} s"
        time.sleep(0.05)


# -- hand edits ----------------------------------------------------------------------

def segments(repo: Path, ref: str = "beadsmail") -> list[str]:
    """Segment paths (``<replica>/<name>``) in the store's head tree."""
    out = git(repo, "ls-tree", "-r", "--name-only", ref, "--", ".beads/log")
    return [line.removeprefix(".beads/log/") for line in out.splitlines()]


def segment_bytes(repo: Path, path: str, ref: str = "beadsmail", top: str = "log") -> bytes:
    """A file of the store tree (``.beads/<top>/<path>``) as bytes."""
    proc = subprocess.run(["git", "cat-file", "blob", f"{ref}:.beads/{top}/{path}"], cwd=repo,
                          capture_output=True, check=True)
    return proc.stdout


def blob_id(repo: Path, path: str, ref: str = "beadsmail") -> str:
    return git(repo, "rev-parse", f"{ref}:.beads/log/{path}").strip()


def commit_segment(repo: Path, path: str, content: bytes, message: str = "hand edit") -> str:
    """Commit new bytes for one segment on the store branch with git plumbing; new head."""
    proc = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=content,
                          capture_output=True, check=True)
    blob = proc.stdout.decode().strip()
    with tempfile.TemporaryDirectory() as tmp:
        index_env = {**env(), "GIT_INDEX_FILE": str(Path(tmp) / "index")}

        def plumb(*args: str) -> str:
            out = subprocess.run(["git", *args], cwd=repo, env=index_env, capture_output=True,
                                 text=True, check=True)
            return out.stdout.strip()

        old = plumb("rev-parse", STORE_REF)
        plumb("read-tree", old)
        plumb("update-index", "--add", "--cacheinfo", f"100644,{blob},.beads/log/{path}")
        tree = plumb("write-tree")
        new = plumb("commit-tree", tree, "-p", old, "-m", message)
        plumb("update-ref", STORE_REF, new, old)
    return new


def object_file(repo: Path, sha: str) -> Path:
    return repo / ".git" / "objects" / sha[:2] / sha[2:]


# -- checks ----------------------------------------------------------------------------

@dataclass
class Tally:
    """Figures of a torture run, printed at the end and copied into docs/reliability.md."""

    runs: int = 0
    kills: int = 0
    packer_kills: int = 0
    records_checked: int = 0
    failures: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self, name: str) -> str:
        return (f"{name}: runs={self.runs} kills={self.kills} packer_kills={self.packer_kills} "
                f"records_checked={self.records_checked} failures={self.failures}"
                + "".join(" " + note for note in self.notes))


def fresh_fingerprint(repo: Path) -> dict:
    """The index of ``repo`` folded from nothing, in a separate file."""
    from beadsmail.index import Index
    from beadsmail.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(repo)
        ws._index = Index(Path(tmp) / "index.sqlite3")
        try:
            ws.refresh()
            return ws.index.fingerprint()
        finally:
            ws.close()


def live_fingerprint(repo: Path) -> dict:
    from beadsmail.workspace import Workspace

    ws = Workspace.open(repo)
    try:
        ws.refresh()
        return ws.index.fingerprint()
    finally:
        ws.close()


def verify_store(repo: Path, must_hold: set[str], write_check: bool = True) -> dict:
    """What every store must pass after a fault: fsck, doctor, every promised record,
    an index equal to a rebuild, and a write that goes through (no lock held forever)."""
    fsck(repo)
    doctor = subprocess.run([*BD, "doctor", "--json"], cwd=repo, env=env(), capture_output=True,
                            text=True, timeout=120)
    report = json.loads(doctor.stdout)
    assert doctor.returncode == 0 and report["ok"], doctor.stdout + doctor.stderr
    live = live_fingerprint(repo)
    missing = must_hold - set(live["records"])
    assert not missing, f"records that were reported stored are gone: {sorted(missing)}"
    assert len(live["records"]) == len(set(live["records"]))
    assert fresh_fingerprint(repo) == live, "the index differs from a rebuild"
    if write_check:
        proc = subprocess.run([*BD, "mail", "send", "checker", "-s", "after", "-m", "still writable",
                               "--identity", "checker", "--json"], cwd=repo, env=env(),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    return live


# -- disk and permission faults ---------------------------------------------------

@contextmanager
def tmpfs(path: Path, size: str = "2m"):
    """A small tmpfs mounted at ``path`` (root only; skips where mount is not permitted)."""
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'mount failed'})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path, leave: int = 0) -> None:
    """Fill the filesystem holding ``path`` until about ``leave`` bytes are free."""
    free = os.statvfs(path).f_bavail * os.statvfs(path).f_frsize
    fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for size in (max(0, free - leave), *([4096] * 10000 if leave == 0 else ())):
            os.write(fd, b"\0" * size)
    except OSError:
        pass
    finally:
        os.close(fd)


def unfill(path: Path) -> None:
    (path / "filler").unlink(missing_ok=True)


@contextmanager
def read_only(path: Path):
    """``path`` read-only even for root: a read-only bind mount (root), else chmod."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")] if not p.is_symlink()}
        for p, mode in modes.items():
            p.chmod(mode & ~0o222)
        try:
            yield path
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    proc = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot bind-mount here ({proc.stderr.strip()}); as root, file modes "
                    "alone do not make a repository read-only")
    try:
        ro = subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], capture_output=True,
                            text=True)
        if ro.returncode != 0:
            pytest.skip(f"cannot remount read-only here ({ro.stderr.strip()})")
        yield path
    finally:
        for _ in range(5):  # until nothing is mounted there any more
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
            if not mounted(path):
                break


def mounted(path: Path) -> bool:
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == str(path) for line in mounts if len(line.split()) > 1)


def rng(seed: int | None = None) -> random.Random:
    """A seeded generator; the seed is printed so a failing run can be replayed."""
    seed = int(os.environ.get("BEADS_TORTURE_SEED", seed if seed is not None else time.time_ns()))
    print(f"seed={seed}")
    return random.Random(seed)
