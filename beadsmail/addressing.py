"""Recipients: who a message may go to, and what to warn about before sending.

A recipient is an agent id, ``#channel``, ``@group`` or ``*`` (every registered
agent). ``check_send`` runs under the store lock before a message is written.
"""

from __future__ import annotations

from typing import Any


def check_send(index: Any, config: dict, sender: str, targets: list[str]) -> list[str]:
    """Raise PermissionDenied for a send the contacts ACL refuses; return warnings."""
    return []
