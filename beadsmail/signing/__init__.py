"""Signed feeds and identity bindings (see ``feed``, ``keys``, ``bindings``).

``POLICIES``: ``security.signatures`` in ``.beads/config.yaml``.

- ``off``: nothing is verified; every record is folded and shown ``unchecked``
  (writes are still signed, so turning it on later verifies them).
- ``warn`` (the default): records that fail verification (bad signature,
  broken chain, fork, a writer not bound to the identity it claims, a role it
  lacks) are kept out of the state and listed by ``bd doctor``; unsigned
  records (written before signing, or by an older version) are folded and shown
  ``unverified``. The default, because stores and clones from before signing
  keep working while every forgery a signature can reveal is already refused.
- ``require``: unsigned records are kept out too (listed by ``bd doctor``), so
  only verified writers change the state.
"""

from __future__ import annotations

POLICIES = ("off", "warn", "require")
DEFAULT_POLICY = "warn"


def policy_of(settings: dict) -> str:
    from beadsmail.errors import InvalidInput

    value = (settings.get("security") or {}).get("signatures", DEFAULT_POLICY)
    if value is False:  # (YAML reads a bare ``off`` as false)
        value = "off"
    if value not in POLICIES:
        raise InvalidInput(f"security.signatures {value!r} must be one of off, warn, require")
    return value

UNCHECKED = "unchecked"
_current = {"policy": DEFAULT_POLICY}  # (the open workspace's; see ``status_of``)
MARKS = {"verified": "[verified]", "unverified": "[UNVERIFIED]", "forged": "[FORGED]",
         UNCHECKED: "[unchecked]"}


def use_policy(policy: str) -> None:
    _current["policy"] = policy


def status_of(record: dict) -> str:
    """What a folded record's signature says: ``verified`` (its feed's chain and a good
    signature cover it, and its writer is bound to its actor), ``unverified`` (written
    without signing), or ``unchecked`` (``security.signatures: off``). Forged records
    are never folded: ``bd doctor`` lists them."""
    return _status("seq" in record and record.get("kind") != "dropped")


def _status(signed: bool) -> str:
    if _current["policy"] == "off":
        return UNCHECKED
    return "verified" if signed else "unverified"


def provenance(record: dict) -> dict:
    """``verified`` and, when verified, the replica whose key signed it (and ``via``
    when ``bd serve`` wrote it on the actor's behalf): what every view adds."""
    return provenance_of("seq" in record and record.get("kind") != "dropped",
                         record.get("replica"), record.get("via"))


def provenance_of(signed: bool, replica: str | None, via: str | None) -> dict:
    """``provenance`` from what the index keeps of a record (``index.feeds.signed``)."""
    out: dict = {"verified": _status(signed)}
    if out["verified"] == "verified":
        out["signed_by"] = replica
        if via:
            out["via"] = via
    return out


def overall(statuses: list[str]) -> str:
    """One word for a view folded from several records (a task and its moves): verified
    only when every one of them is."""
    if _current["policy"] == "off":
        return UNCHECKED
    return "verified" if statuses and all(s == "verified" for s in statuses) else "unverified"
