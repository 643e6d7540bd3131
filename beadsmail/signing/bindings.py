"""Who may write as whom: agent identities bound to the replicas that sign for them.

Trust on first use, as ssh's ``known_hosts``: the first verified record this
clone folds for an identity binds it to the replica that wrote it. After that a
verified record claiming the identity from another replica is refused (shown
``forged`` in ``bd doctor``) until the binding grows: by hand (``bd agent trust
AGENT --add REPLICA``), or by a ``key`` record (``op: bind``) written by a
replica already bound to the agent or by a manager, which every clone applies.
``op: revoke`` (by the agent's own replica or a manager) withdraws a replica;
a revoked replica is never bound again by first use. A replica's key can be
pinned (``bd agent keys --pin``): its feed must then publish exactly that key.
Keys are also remembered as they are met (``keys_seen``): the key of the first
publish (seq 1) this clone verified for a replica, which no later feed for that
replica may replace (a pin, set by hand or by a trust file, overrides it).

The bindings live in ``<common git dir>/beadsmail/bindings.json``, beside the
index and never synced, so a rebuild decides exactly as before. An unsigned
record claiming a bound identity from a replica whose feed is signed is refused
too (that replica's own writes are signed; an unsigned one is someone else's).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from beadsmail.errors import InvalidInput


class Bindings:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            data = {}
        self.agents: dict[str, dict] = data.get("agents", {}) if isinstance(data, dict) else {}
        self.keys: dict[str, str] = data.get("keys", {}) if isinstance(data, dict) else {}
        # replica -> the seq from which its feed has two signed branches (seen on this clone)
        self.forks: dict[str, int] = data.get("forks", {}) if isinstance(data, dict) else {}
        # replica -> the seq-1 key (OpenSSH text) this clone verified for its feed
        self.keys_seen: dict[str, str] = _keys_seen(data)
        self.dirty = False

    def learn(self, keys_seen: dict[str, str]) -> None:
        """Remember keys verified elsewhere (a part of a build); the first one stays."""
        for replica, key in keys_seen.items():
            if replica not in self.keys_seen:
                self.keys_seen[replica] = key
                self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:  # (keys another process remembered meanwhile stay: the first one is kept)
            on_disk = _keys_seen(json.loads(self.path.read_text("utf-8")))
        except (OSError, ValueError):
            on_disk = {}
        self.keys_seen.update(on_disk)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"agents": self.agents, "keys": self.keys,
                                   "forks": self.forks, "keys_seen": self.keys_seen},
                                  indent=1, sort_keys=True) + "\n", "utf-8")
        os.replace(tmp, self.path)
        self.dirty = False

    def _entry(self, agent: str) -> dict:
        return self.agents.setdefault(agent, {"replicas": [], "revoked": [], "how": {}})

    def known(self, agent: str) -> bool:
        """Whether the identity has a binding (or had one revoked) on this clone."""
        entry = self.agents.get(agent)
        return entry is not None and bool(entry["replicas"] or entry["revoked"])

    def how(self, agent: str) -> str:
        """How the identity's only binding was made ('' when it has several)."""
        entry = self.agents.get(agent, {})
        hows = list(entry.get("how", {}).values())
        return hows[0] if len(hows) == 1 else ""

    def bound(self, agent: str) -> list[str]:
        return list(self.agents.get(agent, {}).get("replicas", []))

    def check(self, actor: str, writer: str) -> str | None:
        """None if ``writer`` may write as ``actor`` (binding it on first use); else why not."""
        entry = self.agents.get(actor)
        if entry is None or not (entry["replicas"] or entry["revoked"]):
            self.add(actor, writer, "first use")
            return None
        if writer in entry["replicas"]:
            return None
        if writer in entry["revoked"]:
            return f"replica {writer} was revoked for {actor}"
        return (f"replica {writer} is not bound to {actor} (bound: "
                f"{', '.join(entry['replicas']) or 'none'}); if it is theirs, run "
                f"'bd agent trust {actor} --add {writer}'")

    def add(self, agent: str, replica: str, how: str) -> bool:
        entry = self._entry(agent)
        if replica in entry["revoked"] and how == "first use":
            return False
        changed = replica not in entry["replicas"]
        if changed:
            entry["replicas"].append(replica)
            entry["how"][replica] = how
        if replica in entry["revoked"]:
            entry["revoked"].remove(replica)
            changed = True
        self.dirty |= changed
        return changed

    def revoke(self, agent: str, replica: str) -> bool:
        entry = self._entry(agent)
        changed = replica in entry["replicas"] or replica not in entry["revoked"]
        if replica in entry["replicas"]:
            entry["replicas"].remove(replica)
        if replica not in entry["revoked"]:
            entry["revoked"].append(replica)
        entry["how"].pop(replica, None)
        self.dirty |= changed
        return changed

    def pin_key(self, replica: str, key: str | None) -> None:
        if key is None:
            self.dirty |= self.keys.pop(replica, None) is not None
        else:
            self.dirty |= self.keys.get(replica) != key
            self.keys[replica] = key

    def view(self) -> list[dict]:
        return [{"agent": a, "replicas": [{"replica": r, "how": e["how"].get(r, "")}
                                          for r in e["replicas"]], "revoked": e["revoked"]}
                for a, e in sorted(self.agents.items())]


def _keys_seen(data: object) -> dict[str, str]:
    found = data.get("keys_seen") if isinstance(data, dict) else None
    if not isinstance(found, dict):
        return {}
    return {r: k for r, k in found.items() if isinstance(r, str) and isinstance(k, str)}


def check_replica(text: str) -> str:
    import re

    if not re.fullmatch(r"[0-9a-z]{12}", text or ""):
        raise InvalidInput(f"{text!r} is not a replica id (12 lowercase letters or digits; "
                           "'bd agent keys' lists them)")
    return text
