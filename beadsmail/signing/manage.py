"""``bd agent keys`` and ``bd agent trust``: show, pin, add, revoke and rotate.

Local changes (pins, bindings added or revoked by hand) live in the bindings file
beside the index and take effect on this clone at once: the index is folded again
with them (the signature cache makes that cheap). ``publish`` also writes a
``key`` record so every clone applies the binding or revocation; it takes effect
where its writer may make it: a replica bound to the agent, or a manager.
"""

from __future__ import annotations

import os

from beadsmail.errors import InvalidInput
from beadsmail.index import feeds as feeds_index
from beadsmail.records import check_identity
from beadsmail.signing import bindings as bindings_mod
from beadsmail.signing import keys


def _bindings(ws) -> bindings_mod.Bindings:
    return bindings_mod.Bindings(ws.loc.state_dir / "bindings.json")


def _key_view(public: bytes | None) -> dict:
    if public is None:
        return {"key": None, "fingerprint": None}
    return {"key": keys.openssh_public(public), "fingerprint": keys.fingerprint(public)}


def show_keys(ws) -> dict:
    """This replica's key and every feed's, with the identities bound to each."""
    ws.refresh()
    b = _bindings(ws)
    agents_of: dict[str, list[str]] = {}
    for agent, entry in b.agents.items():
        for replica in entry["replicas"]:
            agents_of.setdefault(replica, []).append(agent)
    feeds = [{"replica": replica, **_key_view(key), "verified_seq": seq,
              "pinned": b.keys.get(replica), "agents": sorted(agents_of.get(replica, [])),
              "fork_from_seq": b.forks.get(replica)}
             for replica, key, seq in feeds_index.all_feeds(ws.index.conn)]
    me = ws.signer.key
    return {"replica": ws.replica, "key": me.openssh_public,
            "fingerprint": keys.fingerprint(me.public), "key_file": str(ws.signer.key_path),
            "policy": ws.policy, "feeds": feeds}


def pin(ws, replica: str, key_text: str | None) -> dict:
    """Pin (or with None unpin) the key a replica's feed must publish."""
    bindings_mod.check_replica(replica)
    b = _bindings(ws)
    b.pin_key(replica, None if key_text is None else
              keys.openssh_public(keys.parse_public(key_text)))
    b.save()
    ws.rebuild_index()
    return {"replica": replica, "pinned": b.keys.get(replica)}


def show_trust(ws, agent: str | None = None) -> list[dict]:
    ws.refresh()
    out = _bindings(ws).view()
    return [e for e in out if e["agent"] == agent] if agent else out


def change(ws, me: str, agent: str, replica: str, op: str, publish: bool) -> dict:
    """``op`` 'bind' or 'revoke' ``agent`` for ``replica``, here (and everywhere with
    ``publish``: a ``key`` record)."""
    check_identity(agent, "agent id")
    bindings_mod.check_replica(replica)
    record = None
    if publish:  # (first: a write refused changes nothing here either)
        record = ws.write(me, [("key", {"op": op, "agent": agent, "target": replica})],
                          f"trust: {me} {op}s {agent} for replica {replica}").records[0]["id"]
    b = _bindings(ws)
    if op == "bind":
        b.add(agent, replica, f"added by hand ({me})")
    else:
        b.revoke(agent, replica)
    b.save()
    ws.rebuild_index()
    return {"agent": agent, "replica": replica, "op": op, "record": record,
            "bindings": show_trust(ws, agent)}


TRUST_FORMAT = "beadsmail-trust"


def export_trust(ws) -> dict:
    """This clone's bindings and the keys of the feeds it verified: what a new clone
    imports before its first fold (``import_trust``), as ssh users copy known_hosts."""
    ws.refresh()
    b = _bindings(ws)
    found = {replica: keys.openssh_public(key) for replica, key, _ in
             feeds_index.all_feeds(ws.index.conn) if key is not None}
    return {"format": TRUST_FORMAT, "v": 1,
            "agents": {e["agent"]: {"replicas": [r["replica"] for r in e["replicas"]],
                                    "revoked": e["revoked"]} for e in b.view()},
            "keys": {**found, **b.keys_seen, **b.keys}}  # (a feed's seq-1 key, not a rotated one)


def import_trust(ws, data: object, source: str) -> dict:
    """Bind and pin what a trusted clone exported (``export_trust``), then fold again:
    an imported identity is never bound by first use here."""
    def bad(why: str) -> InvalidInput:
        return InvalidInput(f"{source}: {why}; give a file written by 'bd agent trust --export'")

    if not isinstance(data, dict) or data.get("format") != TRUST_FORMAT or data.get("v") != 1:
        raise bad("not a beadsmail trust file (format beadsmail-trust, v 1)")
    agents, pins = data.get("agents"), data.get("keys")
    if not isinstance(agents, dict) or not isinstance(pins, dict):
        raise bad("'agents' and 'keys' must be objects")
    b = _bindings(ws)
    parsed_pins = {}
    for replica, key_text in pins.items():
        bindings_mod.check_replica(replica)
        if not isinstance(key_text, str):
            raise bad(f"the key of replica {replica} is not text")
        parsed_pins[replica] = keys.openssh_public(keys.parse_public(key_text))
    changes = []
    for agent, entry in agents.items():
        check_identity(agent, "agent id")
        if not isinstance(entry, dict) or not all(
                isinstance(entry.get(k, []), list) for k in ("replicas", "revoked")):
            raise bad(f"agent {agent}: 'replicas' and 'revoked' must be lists")
        for replica in [*entry.get("replicas", []), *entry.get("revoked", [])]:
            bindings_mod.check_replica(replica if isinstance(replica, str) else "")
        changes.append((agent, entry.get("replicas", []), entry.get("revoked", [])))
    for agent, bound, revoked in changes:  # (all checked first: a bad file changes nothing)
        for replica in bound:
            b.add(agent, replica, "imported")
        for replica in revoked:
            b.revoke(agent, replica)
    for replica, key_text in parsed_pins.items():
        b.pin_key(replica, key_text)
    b.save()
    ws.rebuild_index()
    return {"agents": len(changes), "keys": len(parsed_pins), "bindings": show_trust(ws)}


def rotate(ws, me: str) -> dict:
    """A new key for this replica, announced by a record signed with the old one."""
    if ws.config.get("security", {}).get("key"):
        raise InvalidInput("security.key names a key of your own: rotate it yourself "
                           "(a new key there starts its feed's trust anew)")
    new = keys.SigningKey.generate()
    old = ws.signer.key
    written = ws.write(me, [("key", {"op": "rotate", "key": new.openssh_public})],
                       f"trust: {me} rotates the key of replica {ws.replica}")
    path = ws.signer.key_path
    os.replace(path, path.with_name(path.name + ".old"))  # (kept, private, for the record)
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, keys.encode_private(new, f"beadsmail replica {ws.replica}"))
    finally:
        os.close(fd)
    os.replace(tmp, path)
    ws.signer._key = new
    return {"replica": ws.replica, "old": keys.fingerprint(old.public),
            "new": keys.fingerprint(new.public), "key": new.openssh_public,
            "record": written.records[0]["id"]}
