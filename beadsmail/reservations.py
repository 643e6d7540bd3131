"""File reservations: advisory leases on paths or globs, and the commit guard's check.

``bd reserve src/** --exclusive --ttl 2h`` writes one ``reservation`` record per
pattern. Patterns use git's wildmatch rules, anchored at the repository root
(``*`` and ``?`` stay within one directory, ``**`` crosses them, a directory name
covers everything under it). A reserve that overlaps another agent's open
exclusive lease is refused with who, what, since and until when, and why, unless
``--force``: then the other leases are released (marked forced), and their
holders are told by mail.

Two leases made on different clones before a sync can overlap. Every clone
decides the same way (``decide``): in ``(clock, id)`` order, a lease loses if an
earlier open exclusive lease of another agent overlaps it; lost leases block
nothing, and the clone that wrote a lost lease tells its holder by mail once.

Overlap of two globs is decided conservatively (``overlaps``): they overlap when
one matches the other taken as a path, or else unless a directory level before
any ``**`` tells them apart (two different names, or a name the other's wildcard
cannot match) or their literal endings (after the last wildcard) do. So ``src/**`` and ``docs/**`` or ``*.py`` and ``*.md`` are apart, while
``src/*.py`` and ``src/parser.*`` are taken to overlap.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from beadsmail import mail, timespec
from beadsmail.errors import InvalidInput, NotFound, PermissionDenied
from beadsmail.index import reservations as index

MAX_TTL = 30 * 86400
WILD = re.compile(r"[*?\[\\]")
MODES = ("exclusive", "shared")


def _now() -> str:
    return datetime.now(UTC).strftime(timespec.ISO_FORMAT)


def normalize(pattern: str, base: str = "") -> str:
    """A pattern relative to the repository root (``base``: the caller's subdirectory)."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise InvalidInput("give a path or glob to reserve, like src/parser.py or 'src/**'")
    if any(ord(c) < 32 or c == "\x7f" for c in pattern) or len(pattern) > 512:
        raise InvalidInput(f"invalid pattern {pattern[:60]!r}: control characters or over 512 "
                           "characters")
    if pattern[0] in "!#":
        raise InvalidInput(f"invalid pattern {pattern!r}: it cannot start with '!' or '#'")
    if pattern.startswith("/"):
        raise InvalidInput(f"invalid pattern {pattern!r}: give it relative to the repository "
                           "(or the current directory), not as an absolute path")
    parts = [p for p in (base.strip("/") + "/" + pattern).split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInput(f"invalid pattern {pattern!r}: '..' is not allowed; reserve from "
                           "the repository's top directory instead")
    if not parts:
        raise InvalidInput("give a path or glob inside the repository, not its top directory; "
                           "use '**' for everything")
    return "/".join(parts) + ("/" if pattern.endswith("/") else "")


def overlaps(a: dict, b: dict) -> bool:
    """Whether two leases' patterns may match a common path (see the module docstring)."""
    pa, pb = a["pattern"], b["pattern"]
    if pa == pb or re.match(a["regex"], pb.rstrip("/")) or re.match(b["regex"], pa.rstrip("/")):
        return True
    if _segments_apart(pa, pb):
        return False
    if WILD.search(pa) and WILD.search(pb):
        tail_a, tail_b = WILD.split(pa)[-1], WILD.split(pb)[-1]
        if "/" not in tail_a + tail_b and not (tail_a.endswith(tail_b) or tail_b.endswith(tail_a)):
            return False
    return True


def _segments_apart(a: str, b: str) -> bool:
    """Whether two patterns differ in a directory level before any ``**``: two different
    names, or a name that the other's wildcard segment cannot match."""
    import fnmatch

    for x, y in zip(a.rstrip("/").split("/"), b.rstrip("/").split("/"), strict=False):
        if x == "**" or y == "**" or (WILD.search(x) and WILD.search(y)):
            if x == "**" or y == "**":
                return False
            continue
        if not WILD.search(x) and not WILD.search(y):
            if x != y:
                return True
        elif not re.fullmatch(fnmatch.translate(y if WILD.search(y) else x),
                              x if WILD.search(y) else y):
            return True
    return False


def decide(leases: list[dict]) -> list[dict]:
    """Open leases in (clock, id) order, each with ``lost_to`` (None for a winner)."""
    won: list[dict] = []
    for lease in sorted(leases, key=lambda r: (r["clock"], r["id"])):
        lease["lost_to"] = next((w["id"] for w in won if w["mode"] == "exclusive"
                                 and w["holder"] != lease["holder"] and overlaps(w, lease)), None)
        if lease["lost_to"] is None:
            won.append(lease)
    return won + [lease for lease in leases if lease["lost_to"] is not None]


def live(ws) -> list[dict]:
    """Open leases with the race between them decided, winners first."""
    ws.refresh()
    return decide(index.open_leases(ws.index.conn, _now()))


def view(lease: dict) -> dict:
    return {"id": lease["id"], "holder": lease["holder"], "pattern": lease["pattern"],
            "mode": lease["mode"], "since": lease["created_at"], "until": lease["until"],
            "reason": lease["reason"], "task": lease["task"],
            "state": "lost" if lease.get("lost_to") else "held",
            "lost_to": lease.get("lost_to")}


def _ttl(ws, ttl: str | None) -> str:
    seconds = timespec.parse_duration(ttl or ws.config["reservations"]["ttl"], "--ttl")
    if not 1 <= seconds <= MAX_TTL:
        raise InvalidInput(f"--ttl {ttl} is out of range: give 1s to 30d")
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime(timespec.ISO_FORMAT)


def _blocking(leases: list[dict], me: str, wanted: dict) -> list[dict]:
    return [w for w in leases if w["lost_to"] is None and w["mode"] == "exclusive"
            and w["holder"] != me and overlaps(w, wanted)]


def refusal(lease: dict, what: str) -> str:
    """Who holds what, since and until when, and why: one line."""
    why = f" ({lease['reason']})" if lease.get("reason") else ""
    return (f"{what} is reserved exclusively by {lease['holder']}: {lease['pattern']} "
            f"[{lease['id']}] since {lease['created_at'][:16].replace('T', ' ')} UTC until "
            f"{lease['until'][:16].replace('T', ' ')} UTC{why}")


def reserve(ws, me: str, patterns: list[str], *, mode: str = "exclusive", ttl: str | None = None,
            reason: str | None = None, task: str | None = None, force: bool = False,
            base: str = "") -> dict:
    """Reserve each pattern for ``me``; refuse (or with ``force`` take over) others' leases."""
    if mode not in MODES:
        raise InvalidInput(f"mode must be exclusive or shared, not {mode!r}")
    if reason is not None and len(reason) > 500:
        raise InvalidInput("--reason is over 500 characters")
    wanted = [normalize(p, base) for p in dict.fromkeys(patterns)]
    if not wanted:
        raise InvalidInput("give one or more paths or globs to reserve")
    until = _ttl(ws, ttl)
    task_id = ws.index.resolve(task, ws.prefix, ("task",), "task") if task else None
    taken: dict[str, dict] = {}

    def check(idx) -> None:
        leases = decide(index.open_leases(idx.conn, _now()))
        for pattern in wanted:
            for lease in _blocking(leases, me, {"pattern": pattern, "regex": index.regex_of(pattern)}):
                if not force:
                    raise PermissionDenied(refusal(lease, pattern) + "; ask them, wait, or use "
                                           "--force (they are told)")
                taken[lease["id"]] = lease

    fields = {"mode": mode, "expires_at": until, "task": task_id,
              **({"reason": reason} if reason else {})}
    items = [("reservation", {"op": "reserve", "pattern": p, **fields}) for p in wanted]

    def check_and_fill(idx) -> None:  # (under the store lock: the leases as they are now)
        check(idx)
        if taken:
            for _, f in items:
                f["forced"] = sorted(taken)
            items.insert(0, ("reservation", {"op": "release", "targets": sorted(taken),
                                             "forced": sorted(taken),
                                             "reason": f"taken over by {me} with --force"}))

    written = ws.write(me, items, f"reserve: {me} {', '.join(wanted)}"[:200], check=check_and_fill)
    made = [r for r in written.records if r["op"] == "reserve"]
    warnings = written.warnings + _tell_taken(ws, me, taken, wanted, reason)
    return {"reserved": [{"id": r["id"], "pattern": r["pattern"], "mode": mode, "until": until}
                         for r in made], "taken_over": [view(t) for t in taken.values()],
            "warnings": warnings}


def _tell_taken(ws, me: str, taken: dict[str, dict], wanted: list[str],
                reason: str | None) -> list[str]:
    by_holder: dict[str, list[dict]] = {}
    for lease in taken.values():
        by_holder.setdefault(lease["holder"], []).append(lease)
    warnings: list[str] = []
    for holder, leases in sorted(by_holder.items()):
        body = (f"{me} took over your reservation(s) with --force: "
                + "; ".join(f"{lease['pattern']} [{lease['id']}]" for lease in leases)
                + f". Now reserved by {me}: {', '.join(wanted)}."
                + (f" Reason: {reason}" if reason else ""))
        result = mail.send(ws, me, [holder], f"Reservation taken over by {me}", body,
                           type_="coordination", priority=1)
        warnings += result.get("warnings", [])
    return warnings


def _mine(ws, me: str, patterns: list[str], base: str) -> list[dict]:
    leases = [lease for lease in index.leases(ws.index.conn, holder=me)
              if index._open(lease, _now())]
    if not patterns:
        return leases
    picked = []
    for raw in patterns:
        pattern = normalize(raw, base)
        found = [lease for lease in leases if lease["pattern"] == pattern] or [
            lease for lease in leases if re.match(lease["regex"], pattern)]
        if not found:
            raise NotFound(f"{me} holds no reservation of {pattern}; see 'bd reservations --mine'")
        picked += [lease for lease in found if lease not in picked]
    return picked


def release(ws, me: str, patterns: list[str], *, all_: bool = False, base: str = "") -> dict:
    """End ``me``'s leases on ``patterns`` (the pattern itself, or those covering a path)."""
    if not patterns and not all_:
        raise InvalidInput("say what to release: paths or globs, or --all")
    ws.refresh()
    leases = _mine(ws, me, [] if all_ else patterns, base)
    if not leases:
        return {"released": [], "warnings": []}
    written = ws.write(me, [("reservation", {"op": "release",
                                             "targets": [lease["id"] for lease in leases]})],
                       f"release: {me} {len(leases)} reservation(s)")
    return {"released": [{"id": lease["id"], "pattern": lease["pattern"]} for lease in leases],
            "warnings": written.warnings}


def renew(ws, me: str, patterns: list[str], *, ttl: str | None = None, base: str = "") -> dict:
    """Extend ``me``'s open leases (all of them, or those on ``patterns``)."""
    ws.refresh()
    leases = _mine(ws, me, patterns, base)
    if not leases:
        raise NotFound(f"{me} holds no open reservation to renew; reserve with 'bd reserve'")
    until = _ttl(ws, ttl)
    written = ws.write(me, [("reservation", {"op": "renew", "expires_at": until,
                                             "targets": [lease["id"] for lease in leases]})],
                       f"renew: {me} {len(leases)} reservation(s)")
    return {"renewed": [{"id": lease["id"], "pattern": lease["pattern"], "until": until}
                        for lease in leases], "warnings": written.warnings}


def listing(ws, me: str | None = None, *, mine: bool = False, path: str | None = None,
            base: str = "") -> list[dict]:
    """Open leases (winners first, then lost ones), optionally ``me``'s or covering ``path``."""
    found = live(ws)
    if mine:
        found = [lease for lease in found if lease["holder"] == me]
    if path:
        target = normalize(path, base).rstrip("/")
        found = [lease for lease in found if re.match(lease["regex"], target)
                 or overlaps(lease, {"pattern": target, "regex": index.regex_of(target)})]
    return [view(lease) for lease in found]


def blocking_paths(ws, me: str, paths: list[str]) -> list[dict]:
    """For the commit guard: each path that another agent's held exclusive lease covers."""
    leases = [lease for lease in live(ws) if lease["lost_to"] is None
              and lease["mode"] == "exclusive" and lease["holder"] != me]
    blocked = []
    for path in paths:
        for lease in leases:
            if re.match(lease["regex"], path):
                blocked.append({"path": path, "reservation": view(lease),
                                "message": refusal(lease, path)})
                break
    return blocked


def notify_lost(ws, replica: str) -> list[dict]:
    """Tell, once, the holders of leases this clone wrote that lost a race (by mail)."""
    told = []
    for lease in live(ws):
        key = f"reservation-lost:{lease['id']}"
        if not lease["lost_to"] or lease["replica"] != replica or ws.index.kv_get(key):
            continue
        winner = index.leases(ws.index.conn, ids=[lease["lost_to"]])[0]
        mail.send(ws, lease["holder"], [lease["holder"]],
                  f"Reservation lost: {lease['pattern']}",
                  f"Your reservation {lease['id']} of {lease['pattern']} overlapped "
                  f"{winner['holder']}'s {winner['pattern']} [{winner['id']}], made first on "
                  "another clone; theirs holds. Release yours ('bd release "
                  f"{lease['pattern']}') or ask them.", type_="coordination", priority=1)
        with ws.index.transaction():
            ws.index.kv_set(key, _now())
        told.append(view(lease))
    return told
