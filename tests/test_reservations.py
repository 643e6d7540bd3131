"""Reservations and the commit guard, on real repositories, worktrees and clones."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import GIT_ENV, git
from helpers import error, ok

from beadsmail import reservations, sync
from beadsmail.index.reservations import regex_of
from beadsmail.workspace import Workspace


@pytest.fixture
def store(worktrees: list[Path], bd) -> list[Path]:
    ok(bd(worktrees[0], "init"))
    return worktrees


def as_(who: str) -> tuple[str, str]:
    return ("--identity", who)


def leases(bd, path: Path, *args: str) -> list[dict]:
    return ok(bd(path, "reservations", "--json", *args))


def commit(path: Path, name: str, who: str, *args: str, env: dict | None = None):
    (path / name).parent.mkdir(parents=True, exist_ok=True)
    (path / name).write_text(f"{name} by {who} {time.time()}\n")
    git(path, "add", name)
    full = {**os.environ, **GIT_ENV, "BEADS_IDENTITY": who, **(env or {})}
    if "BEADS_GUARD" not in (env or {}):
        full.pop("BEADS_GUARD", None)
    return subprocess.run(["git", "commit", "-q", "-m", f"{who}: {name}", *args], cwd=path,
                          env=full, capture_output=True, text=True)


def test_reserve_refuse_shared_force_and_release(store: list[Path], bd) -> None:
    main = store[0]
    made = ok(bd(main, "reserve", "src/**", "-m", "parser refactor", *as_("alice"), "--json"))
    rid = made["reserved"][0]["id"]
    err = error(bd(main, "reserve", "src/x.py", *as_("bob"), "--json"), "permission_denied")
    for word in ("alice", "src/**", rid, "since", "until", "parser refactor"):
        assert word in err["message"]
    error(bd(main, "reserve", "src/x.py", "--shared", *as_("bob"), "--json"), "permission_denied")
    ok(bd(main, "reserve", "src/**", *as_("alice"), "--json"))  # one's own: no conflict
    ok(bd(main, "reserve", "docs/**", "*.md", *as_("bob"), "--json"))  # apart from src/**
    assert {r["pattern"] for r in leases(bd, main, "--mine", *as_("bob"))} == {"docs/**", "*.md"}
    assert [r["holder"] for r in leases(bd, main, "--path", "src/a/b.py")] == ["alice", "alice"]
    forced = ok(bd(main, "reserve", "src/x.py", "--force", *as_("bob"), "--json"))
    assert {t["holder"] for t in forced["taken_over"]} == {"alice"}
    assert "alice" not in {r["holder"] for r in leases(bd, main)}
    inbox = ok(bd(main, "mail", "inbox", *as_("alice"), "--json"))
    assert inbox[0]["from"] == "bob" and "src/**" in ok(bd(
        main, "mail", "read", inbox[0]["id"], *as_("alice"), "--json"))["body"]
    ok(bd(main, "reserve", "lib/**", "--shared", *as_("carol"), "--json"))
    ok(bd(main, "reserve", "lib/a.py", "--shared", *as_("dave"), "--json"))  # shared: no block
    released = ok(bd(main, "release", "--all", *as_("bob"), "--json"))["released"]
    assert {r["pattern"] for r in released} == {"docs/**", "*.md", "src/x.py"}
    assert ok(bd(main, "release", "--all", *as_("bob"), "--json"))["released"] == []
    error(bd(main, "release", "nothing/here", *as_("carol"), "--json"), "not_found")


@pytest.mark.parametrize("pattern", ["", "/etc/passwd", "../x", "a/../../b", "!neg", "#c",
                                     "a\x1bb", "x" * 600, "."])
def test_bad_patterns_are_refused_and_write_nothing(store: list[Path], bd, pattern) -> None:
    before = git(store[0], "rev-parse", "beadsmail")
    error(bd(store[0], "reserve", "--json", "--", pattern), "invalid_input")
    assert git(store[0], "rev-parse", "beadsmail") == before


def test_bad_ttl_and_task_are_refused(store: list[Path], bd) -> None:
    error(bd(store[0], "reserve", "a", "--ttl", "forever", "--json"), "invalid_input")
    error(bd(store[0], "reserve", "a", "--ttl", "90d", "--json"), "invalid_input")
    error(bd(store[0], "reserve", "a", "--task", "bd-zzzzzz", "--json"), "not_found")


def test_expiry_renewal_and_unregistering(store: list[Path], bd) -> None:
    main = store[0]
    ok(bd(main, "reserve", "a.txt", "--ttl", "1s", *as_("alice"), "--json"))
    deadline = time.monotonic() + 60
    while leases(bd, main) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leases(bd, main) == []  # lapsed
    ok(bd(main, "reserve", "b.txt", "--ttl", "1h", *as_("alice"), "--json"))
    renewed = ok(bd(main, "renew", "--ttl", "3h", *as_("alice"), "--json"))["renewed"]
    assert leases(bd, main)[0]["until"] == renewed[0]["until"]
    ok(bd(main, "agent", "register", "--id", "alice", "--role", "manager", *as_("alice")))
    ok(bd(main, "reserve", "c.txt", *as_("alice"), "--json"))
    assert len(leases(bd, main)) == 2
    ok(bd(main, "agent", "unregister", "alice", *as_("alice")))
    assert leases(bd, main) == []  # a lease lapses with its holder


def test_overlap_is_conservative() -> None:
    def lease(p: str) -> dict:
        return {"pattern": p, "regex": regex_of(p)}

    apart = [("src/**", "docs/**"), ("*.py", "*.md"), ("src/a.py", "src/b.py"),
             ("src/*.py", "lib/*.py")]
    together = [("src/**", "src/x.py"), ("src", "src/x/y.py"), ("src/*.py", "src/parser.*"),
                ("**/test_*.py", "tests/test_a.py"), ("*.py", "x.py"), ("a/**/b", "a/c/**")]
    for a, b in apart:
        assert not reservations.overlaps(lease(a), lease(b)), (a, b)
    for a, b in together:
        assert reservations.overlaps(lease(a), lease(b)), (a, b)


def test_guard_in_worktrees_chains_and_bypasses(store: list[Path], bd) -> None:
    main, wt1, wt2 = store
    hooks = Path(git(main, "rev-parse", "--git-path", "hooks").strip())
    hooks = hooks if hooks.is_absolute() else (main / hooks)
    hooks.mkdir(parents=True, exist_ok=True)
    mine = hooks / "pre-commit"
    mine.write_text("#!/bin/sh\necho ran >> \"$(git rev-parse --git-common-dir)/mine.log\"\n")
    mine.chmod(0o755)
    original = mine.read_bytes()
    assert ok(bd(wt1, "guard", "install", "--dry-run", "--json"))["dry_run"] is True
    assert mine.read_bytes() == original
    assert ok(bd(wt1, "guard", "install", "--json"))["chained"] is True
    assert ok(bd(wt1, "guard", "install", "--json"))["changed"] is False  # idempotent
    ok(bd(wt1, "reserve", "src/**", "-m", "refactor", *as_("alice"), "--json"))
    refused = commit(wt2, "src/x.py", "bob")
    assert refused.returncode != 0 and "alice" in refused.stderr and "src/**" in refused.stderr
    git(wt2, "reset", "-q")  # (the refused file stays staged)
    assert commit(wt1, "src/y.py", "alice").returncode == 0  # the holder may
    assert commit(wt2, "docs/a.md", "bob").returncode == 0  # elsewhere
    warned = commit(wt2, "src/z.py", "bob", env={"BEADS_GUARD": "warn"})
    assert warned.returncode == 0 and "alice" in warned.stderr
    assert commit(wt2, "src/v.py", "bob", env={"BEADS_GUARD": "off"}).returncode == 0
    assert commit(wt2, "src/w.py", "bob", "--no-verify").returncode == 0
    ok(bd(wt2, "reserve", "lib/**", "--shared", *as_("carol"), "--json"))
    assert commit(wt2, "lib/a.py", "bob").returncode == 0  # shared does not block
    ok(bd(wt1, "release", "src/**", *as_("alice"), "--json"))
    assert commit(wt2, "src/x.py", "bob").returncode == 0
    log = Path(git(main, "rev-parse", "--git-common-dir").strip())
    log = (log if log.is_absolute() else main / log) / "mine.log"
    assert log.read_text().count("ran") >= 6  # the user's own hook ran every time
    assert ok(bd(wt2, "guard", "uninstall", "--json"))["restored"] is True
    assert mine.read_bytes() == original


def test_guard_honours_core_hooks_path(store: list[Path], bd) -> None:
    main = store[0]
    shared = main.parent / "team-hooks"
    git(main, "config", "core.hooksPath", str(shared))  # (every worktree runs these)
    ok(bd(store[2], "guard", "install", "--json"))
    assert (shared / "pre-commit").is_file()
    ok(bd(main, "reserve", "x/**", *as_("alice"), "--json"))
    assert "alice" in commit(store[1], "x/1", "bob").stderr
    git(store[1], "reset", "-q")
    ok(bd(main, "guard", "uninstall", "--json"))
    assert not (shared / "pre-commit").exists()
    git(main, "config", "core.hooksPath", ".githooks")  # relative: each checkout's own
    ok(bd(main, "guard", "install", "--json"))
    assert (main / ".githooks" / "pre-commit").is_file()
    assert "alice" in commit(main, "x/2", "bob").stderr


def test_two_clones_race_resolves_alike_and_the_loser_is_told(tmp_path: Path, bd) -> None:
    from test_sync import make_clones

    _remote, clones, _ = make_clones(tmp_path, n=2)
    ok(bd(clones[0], "sync", "--json"))
    ok(bd(clones[1], "init", "--json"))  # (the remote has no records yet: nothing to adopt)
    first = ok(bd(clones[0], "reserve", "src/**", *as_("alice"), "--json"))["reserved"][0]
    second = ok(bd(clones[1], "reserve", "src/parser.py", *as_("bob"), "--json"))["reserved"][0]
    for clone in (clones[0], clones[1], clones[0]):
        ok(bd(clone, "sync", "--json"))
    views = [leases(bd, clone) for clone in clones]
    assert views[0] == views[1]
    won = {r["id"]: r["state"] for r in views[0]}
    ws = Workspace.open(clones[0])
    rec = {r: ws.index.record(r) for r in (first["id"], second["id"])}
    ws.close()
    order = sorted(rec.values(), key=lambda r: (r["clock"], r["id"]))
    assert won[order[0]["id"]] == "held" and won[order[1]["id"]] == "lost"
    loser = order[1]["actor"]
    loser_clone = clones[0] if order[1]["replica"] == Workspace.open(clones[0]).replica else clones[1]
    told = ok(bd(loser_clone, "mail", "inbox", *as_(loser), "--json"))
    assert [m["subject"] for m in told].count("Reservation lost: " + order[1]["pattern"]) == 1
    ok(bd(loser_clone, "reservations", "--json"))  # told once
    told = ok(bd(loser_clone, "mail", "inbox", *as_(loser), "--json"))
    assert len(told) == 1
    assert sync  # (the module the clones synced through)


def test_status_prime_and_http_show_reservations(store: list[Path], bd) -> None:
    httpx = pytest.importorskip("httpx")
    from beadsmail.server.runner import Background

    main = store[0]
    ok(bd(main, "reserve", "src/**", "-m", "refactor", *as_("alice"), "--json"))
    status = ok(bd(main, "status", "--json", *as_("bob")))
    assert [r["pattern"] for r in status["reservations"]] == ["src/**"]
    assert "src/**" in bd(main, "status", *as_("bob")).out
    assert "src/** by alice" in bd(main, "prime", *as_("bob")).out
    ws = Workspace.open(main)
    with Background(ws, identity="bob", projects=["proj"]) as bg:
        s = httpx.Client(base_url=bg.url, headers={"X-Beads-Identity": "bob"})
        assert [r["holder"] for r in s.get("/api/reservations").json()] == ["alice"]
        refused = s.post("/api/reservations", json={"paths": ["src/a.py"]})
        assert refused.status_code == 403 and "alice" in refused.json()["error"]["message"]
        made = s.post("/api/reservations", json={"paths": ["docs/**"], "ttl": "1h"}).json()
        assert made["reserved"][0]["pattern"] == "docs/**"
        assert s.post("/api/reservations", json={"paths": []}).status_code == 400
        assert s.post("/api/reservations/release", json={"all": True}).json()["released"]
        assert [r["holder"] for r in s.get("/api/reservations").json()] == ["alice"]
    ws.close()
