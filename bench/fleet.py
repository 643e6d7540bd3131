"""A fleet of clones that all send and ``bd sync`` at once: the scale check of feeds.

``run(root, n, rounds, url)`` makes a bare remote and ``n`` clones of it (each
syncing with ``url``: the remote's path, or a ``git://`` URL when a ``git
daemon`` serves it), starts one worker process per clone at the same moment,
and each worker ``rounds`` times sends one message and runs ``bd sync --json``
as its own process, as an agent does after every send. Then every clone syncs
once more, in turn, until all hold every message, and the fleet is checked:
every sent id is on every clone's store branch exactly once, and every clone's
index holds the same records.

``kill_rate`` makes a killer SIGKILL running syncs at random; a killed sync is
counted apart from failures (a failure is a sync that exited non-zero by
itself). Used by ``tests/test_scale.py`` and ``bench/bench_scale.py``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GIT_ENV = {"GIT_AUTHOR_NAME": "fleet", "GIT_AUTHOR_EMAIL": "fleet@example.com",
           "GIT_COMMITTER_NAME": "fleet", "GIT_COMMITTER_EMAIL": "fleet@example.com",
           "GIT_CONFIG_NOSYSTEM": "1"}


def _env() -> dict:
    env = {**os.environ, **GIT_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=_env(), check=True,
                          capture_output=True, text=True).stdout


@dataclass
class Result:
    clones: int
    syncs: int = 0
    failures: list[str] = field(default_factory=list)
    killed: int = 0
    sent: list[str] = field(default_factory=list)
    bytes_fetched: list[int] = field(default_factory=list)
    converge_s: float = 0.0
    passes: int = 0
    problems: list[str] = field(default_factory=list)


def make(root: Path, n: int) -> tuple[Path, list[Path]]:
    """A bare remote with a user branch, and ``n`` clones of it."""
    remote = root / "remote.git"
    git(root, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = root / "seed"
    git(root, "init", "-q", "-b", "main", str(seed))
    (seed / "README").write_text("fleet\n")
    git(seed, "add", "README")
    git(seed, "commit", "-qm", "seed")
    git(seed, "push", "-q", str(remote), "main")
    clones = []
    for i in range(n):
        clone = root / f"clone{i:02d}"
        git(root, "clone", "-q", str(remote), str(clone))
        clones.append(clone)
    return remote, clones


def run(root: Path, n: int, rounds: int, url: str | None = None, kill_rate: float = 0.0,
        seed: int = 1) -> Result:
    remote, clones = make(root, n)
    if url is not None:
        for clone in clones:
            git(clone, "remote", "set-url", "origin", url)
    result = Result(n)
    go = root / "go"
    procs = [subprocess.Popen([sys.executable, "-m", "bench.fleet", str(c), str(rounds), str(go),
                               str(kill_rate), str(seed + i)], cwd=ROOT, env=_env(),
                              stdout=subprocess.PIPE, text=True) for i, c in enumerate(clones)]
    started = time.monotonic()
    go.touch()  # every worker starts at once
    for proc in procs:
        out, _ = proc.communicate()
        for line in out.splitlines():
            _tally(result, json.loads(line))
    _converge(result, clones, started)
    _check(result, clones)
    return result


def _tally(result: Result, entry: dict) -> None:
    if entry["what"] == "send":
        result.sent.append(entry["id"])
        return
    result.syncs += 1
    if entry.get("killed"):
        result.killed += 1
    elif not entry["ok"]:
        result.failures.append(entry["error"])
    else:
        result.bytes_fetched.append(entry["bytes_fetched"])


def _converge(result: Result, clones: list[Path], started: float) -> None:
    """Sync every clone in turn until each holds every sent id (at most 4 passes)."""
    want = set(result.sent)
    pending = list(clones)
    while pending and result.passes < 4:
        result.passes += 1
        for clone in pending:
            proc = _bd(clone, "sync", "--json")
            if proc.returncode != 0:
                result.failures.append(f"convergence sync: {proc.stdout}{proc.stderr}")
        pending = [c for c in clones if not want <= set(stored_ids(c))]
    result.converge_s = time.monotonic() - started
    result.problems += [f"{c.name} lacks {len(want - set(stored_ids(c)))} messages"
                        for c in pending]


def _check(result: Result, clones: list[Path]) -> None:
    want = sorted(result.sent)
    states = []
    for clone in clones:
        ids = stored_ids(clone)
        if len(ids) != len(set(ids)):
            result.problems.append(f"{clone.name}: a message stored twice")
        if sorted(set(ids)) != want:
            result.problems.append(f"{clone.name}: store holds {len(set(ids))} of {len(want)}")
        states.append(fingerprint(clone))
    if any(s != states[0] for s in states):
        result.problems.append("the clones' indexes differ")


def _bd(clone: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "beadsmail", *args], cwd=clone, env=_env(),
                          capture_output=True, text=True)


def stored_ids(clone: Path) -> list[str]:
    """Every message id on the clone's store branch, with repetitions (read with git)."""
    try:
        listing = git(clone, "ls-tree", "-r", "beadsmail", "--", ".beads/log")
    except subprocess.CalledProcessError:
        return []
    blobs = "".join(line.split()[2] + "\n" for line in listing.splitlines())
    data = subprocess.run(["git", "cat-file", "--batch"], cwd=clone, input=blobs.encode(),
                          capture_output=True, check=True).stdout
    out = []
    for line in data.splitlines():
        if line.startswith(b"{"):
            record = json.loads(line)
            if record.get("kind") == "message":
                out.append(record["id"])
    return out


def fingerprint(clone: Path) -> dict:
    from beadsmail.workspace import Workspace

    ws = Workspace.open(clone)
    try:
        ws.refresh()
        return ws.index.fingerprint()
    finally:
        ws.close()


# -- one worker (a process per clone) ------------------------------------------------------


def worker(clone: Path, rounds: int, go: Path, kill_rate: float, seed: int) -> None:
    from beadsmail import mail
    from beadsmail.workspace import Workspace

    rng = random.Random(seed)
    while not go.exists():
        time.sleep(0.01)
    for r in range(rounds):
        ws = Workspace.open(clone)
        try:
            sent = mail.send(ws, f"agent-{clone.name}", ["everyone"], f"round {r}", "body")
        finally:
            ws.close()
        _emit({"what": "send", "id": sent["id"]})
        _emit(_sync_once(clone, rng, kill_rate))


def _sync_once(clone: Path, rng: random.Random, kill_rate: float) -> dict:
    proc = subprocess.Popen([sys.executable, "-m", "beadsmail", "sync", "--json"], cwd=clone,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    killer = None
    if kill_rate and rng.random() < kill_rate:
        killer = threading.Timer(rng.uniform(0.05, 1.5), _kill, [proc])
        killer.start()
    out, err = proc.communicate()
    if killer is not None:
        killer.cancel()
    if proc.returncode == -signal.SIGKILL:
        return {"what": "sync", "ok": False, "killed": True}
    if proc.returncode != 0:
        return {"what": "sync", "ok": False, "error": (out + err).strip()[-400:]}
    return {"what": "sync", "ok": True, "bytes_fetched": json.loads(out).get("bytes_fetched", 0)}


def _kill(proc: subprocess.Popen) -> None:
    try:
        proc.send_signal(signal.SIGKILL)
    except ProcessLookupError:
        pass


def _emit(entry: dict) -> None:
    sys.stdout.write(json.dumps(entry) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    worker(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4]),
           int(sys.argv[5]))
