"""Hostile stores: what a collaborator with push access can put into the store branch.

``Attacker`` edits its clone's ``beadsmail`` branch with git plumbing (any mode,
any name bytes, any content, any history) and publishes it: through the shared
bare remote (``git push --force``) or by leaving it in its own repository for the
victim to ``git fetch``. ``CASES`` names each class of hostile change; ``apply``
makes one. The suite is ``tests/test_hostile.py``.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from faults import env

ZERO = "0" * 40
DAY = "2026-01-01"


class Attacker:
    def __init__(self, repo: Path, victim_replica: str, own_replica: str, victim_ids: list[str]):
        self.repo, self.victim, self.own, self.victim_ids = repo, victim_replica, own_replica, \
            victim_ids
        self.changes: list[bytes] = []
        self.parent: str | None = "beadsmail"

    def git(self, *args: str | bytes, input: bytes | None = None, index: str | None = None,
            strip: bool = True) -> bytes:
        extra = {"GIT_INDEX_FILE": index} if index else {}
        proc = subprocess.run(["git", *args], cwd=self.repo, input=input, capture_output=True,
                              env=env(**extra), check=True)
        return proc.stdout.strip() if strip else proc.stdout

    def blob(self, data: bytes) -> str:
        return self.git("hash-object", "-w", "--stdin", input=data).decode()

    def put(self, path: bytes | str, data: bytes | None = None, mode: int = 0o100644,
            sha: str | None = None) -> None:
        """Set ``.beads/<path>`` to a blob of ``data`` (or the object ``sha``) with ``mode``."""
        path = path.encode() if isinstance(path, str) else path
        sha = sha or self.blob(data or b"")
        self.changes.append(b"%o %s\t.beads/%s\n" % (mode, sha.encode(), path))

    def remove(self, path: str) -> None:
        for name in self.git("ls-tree", "-r", "--name-only", "beadsmail", "--",
                             f".beads/{path}").split(b"\n"):
            if name:
                self.changes.append(b"0 %s\t%s\n" % (ZERO.encode(), name))

    def read(self, path: str) -> bytes:
        return self.git("cat-file", "blob", f"beadsmail:.beads/{path}", strip=False)

    def segments(self, replica: str) -> list[str]:
        """The well-formed segments of a replica (what earlier cases added left aside)."""
        out = self.git("ls-tree", "beadsmail", f".beads/log/{replica}/").decode()
        names = [line.split("\t")[1].rsplit("/", 1)[1] for line in out.splitlines()
                 if line.startswith("100644 blob")]
        return sorted(n for n in names if re.fullmatch(r"\d{4}-\d\d-\d\d-\d{3}\.jsonl", n)
                      and not n.startswith(DAY))

    def record(self, **fields) -> bytes:
        """A valid message line of this attacker's replica, changed by ``fields``."""
        lines = self.read(f"log/{self.own}/{self.segments(self.own)[0]}").split(b"\n")
        base = next(r for r in map(json.loads, filter(None, lines)) if r["kind"] == "message")
        for key in ("seq", "prev", "sig"):  # (a line made by hand: unsigned)
            base.pop(key, None)
        base.update(fields)
        return json.dumps(base, separators=(",", ":")).encode()

    def append(self, line: bytes, replica: str | None = None) -> None:
        replica = replica or self.own
        name = self.segments(replica)[-1]
        self.put(f"log/{replica}/{name}", self.read(f"log/{replica}/{name}") + line + b"\n")

    def commit(self) -> str:
        """One commit of the changes on top of ``beadsmail`` (or a new root); moves it."""
        with tempfile.TemporaryDirectory() as tmp:
            index = str(Path(tmp) / "index")
            if self.parent:
                self.git("read-tree", self.parent, index=index)
            self.git("update-index", "--index-info", input=b"".join(self.changes), index=index)
            tree = self.git("write-tree", "--missing-ok", index=index).decode()
        parents = ["-p", self.parent] if self.parent else []
        new = self.git("commit-tree", tree, *parents, "-m", "hostile").decode()
        self.git("update-ref", "refs/heads/beadsmail", new)
        return new


def _deep(a: Attacker) -> None:
    a.append(b'{"a":' * 1000 + b"1" + b"}" * 1000)
    a.append(b"[" * 100_000)


def _big_numbers(a: Attacker) -> None:
    a.append(a.record(id="bd-zzzzzzzzzzzz1", clock=2**63))
    a.append(a.record(id="bd-zzzzzzzzzzzz2", metadata={"n": 10**30}))
    a.append(a.record(id="bd-zzzzzzzzzzzz3")[:-1] + b',"x":NaN}')
    a.append(a.record(id="bd-zzzzzzzzzzzz4")[:-1] + b',"x":1e999}')


def _max_clock(a: Attacker) -> None:  # valid: the victim's clocks saturate, writes go on
    a.append(a.record(id="bd-zzzzzzzzzzzz5", clock=2**53 - 1))


def _bad_text(a: Attacker) -> None:
    a.append(a.record(id="bd-zzzzzzzzzzzz6")[:-1] + b',"y":"\\ud800"}')
    a.append(b'{"subject":"\xff\xfe"}')
    a.append(a.record(id="bd-zzzzzzzzzzzz7", subject="\x1b]0;pwned\x07\x1b[2J"))
    a.append(b"x" * (2 << 20))


def _names(a: Attacker) -> None:
    a.put(b"log/\xff\xfe/" + DAY.encode() + b"-000.jsonl", a.record())
    a.put(b"log/\x1b[2Jabcdefg/" + DAY.encode() + b"-000.jsonl", a.record())
    a.put(f"log/{a.own}/notes.txt", b"hello\n")
    a.put(f"log/{a.own}/{DAY}-x.jsonl", a.record() + b"\n")
    a.put("other-top-level-file", b"x")


def _modes(a: Attacker) -> None:
    a.put(f"log/{a.own}/{DAY}-500.jsonl", mode=0o160000, sha="1" * 40)  # gitlink
    a.put(f"log/{a.own}/{DAY}-501.jsonl", b"/etc/passwd", mode=0o120000)  # symlink
    a.put(f"log/{a.own}/{DAY}-502.jsonl/inner", a.record() + b"\n")  # a tree for a file
    a.put("log/zzzzzzzzzzzz", a.record() + b"\n")  # a file for a replica directory
    a.put(f"log/{a.own}/{DAY}-503.jsonl", mode=0o100755, sha=a.blob(b"[" * 100 + b"\n"))


def _victim_dir(a: Attacker) -> None:
    """Junk into (and next to) the victim's own replica directory."""
    a.put(f"log/{a.victim}/notes.txt", b"junk\n")
    a.put(f"log/{a.victim}/9999-99-99-999999999.jsonl", a.record(replica=a.victim) + b"\n")
    today = a.segments(a.victim)[-1]
    a.put(f"log/{a.victim}/{today[:10]}-999999999.jsonl", b"no newline")
    a.put(f"log/{a.victim}/{today[:10]}-998.jsonl", mode=0o160000, sha="2" * 40)
    a.put(f"log/{a.victim}x", b"next to it\n")


def _log_is_a_file(a: Attacker) -> None:
    a.remove("log")
    a.put("log", b"not a directory\n")


def _rewrite(a: Attacker) -> None:
    seg = f"log/{a.victim}/{a.segments(a.victim)[0]}"
    lines = a.read(seg).split(b"\n")
    a.put(seg, b"\n".join(lines[1:]))  # the victim's first record dropped


def _truncate(a: Attacker) -> None:
    for name in a.segments(a.victim):
        a.put(f"log/{a.victim}/{name}", b"")


def _delete(a: Attacker) -> None:
    a.remove(f"log/{a.victim}")


def _delete_all(a: Attacker) -> None:
    a.remove("log")


def _new_root(a: Attacker) -> None:
    """A history of its own: a new root commit holding only the marker and one segment."""
    a.parent = None
    a.put("store.json", b'{"format":"beadsmail","v":1}\n')
    a.put(f"log/{a.own}/{DAY}-000.jsonl", a.record(id="bd-zzzzzzzzzzzz8") + b"\n")


def _forged_compaction(a: Attacker) -> None:
    seg = f"log/{a.victim}/{a.segments(a.victim)[0]}"
    first = json.loads(a.read(seg).split(b"\n")[0])
    marker = json.loads(a.record())
    marker.update(kind="compaction", replica=a.victim, segment=seg.rsplit("/", 1)[1],
                  removed=[first["id"]], id="bd-zzzzzzzzzzzz9")
    for key in ("from", "to", "subject", "body", "priority", "type", "thread_id", "replies_to",
                "ephemeral", "metadata", "action_requested", "context", "sender_group"):
        marker.pop(key, None)
    rest = a.read(seg).split(b"\n")[1:]
    a.put(seg, b"\n".join(rest).rstrip(b"\n") + b"\n" + json.dumps(marker).encode() + b"\n")


def _conflicts(a: Attacker) -> None:
    """A victim's record id with other content, and a record claiming the victim's replica."""
    a.append(a.record(id=a.victim_ids[0], subject="forged copy"))
    a.append(a.record(id="bd-zzzzzzzzzzzya", replica=a.victim, subject="claims the victim"))


def _many_entries(a: Attacker) -> None:  # the victim sets boundary.tree_entries: 30
    for n in range(40):
        a.put(f"log/{a.own}/{DAY}-{n + 100:03d}.jsonl", a.record(id=f"bd-zzzzzzzzzz{n:03d}") + b"\n")


CASES: dict[str, Callable[[Attacker], None]] = {
    "deep_json": _deep, "big_numbers": _big_numbers, "max_clock": _max_clock,
    "bad_text": _bad_text, "names": _names, "modes": _modes, "victim_dir": _victim_dir,
    "log_is_a_file": _log_is_a_file, "rewrite": _rewrite, "truncate": _truncate,
    "delete": _delete, "delete_all": _delete_all, "new_root": _new_root,
    "forged_compaction": _forged_compaction, "conflicts": _conflicts,
    "many_entries": _many_entries,
}


def apply(a: Attacker, case: str) -> str:
    a.changes = []
    a.parent = "beadsmail"
    CASES[case](a)
    return a.commit()
