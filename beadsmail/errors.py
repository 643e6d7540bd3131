"""The package's errors. The CLI translates each into one line and an exit code."""

from __future__ import annotations


class BeadsError(Exception):
    """A domain error: the message says what was wrong and what to do. Exit code 1."""

    code = "error"
    exit_code = 1

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(BeadsError):
    code = "invalid_input"


class NotARepository(BeadsError):
    code = "not_a_repository"


class NoStore(NotARepository):
    """A git repository without a store: nothing is set up until ``bd init`` asks for it."""

    code = "no_store"

    def __init__(self, where: object, more: str = "") -> None:
        super().__init__(f"no beadsmail store in {where}: run 'bd init' to create one "
                         f"(or 'git fetch' a remote that has one){more}")


class Misaddressed(BeadsError):
    """Strict addressing refused a send that would leave dead letters; nothing was written."""

    code = "misaddressed"

    def __init__(self, dead: list[dict]) -> None:
        names = ", ".join(d["recipient"] + (f" (did you mean {', '.join(d['did_you_mean'])}?)"
                                            if d["did_you_mean"] else "") + f" [{d['reason']}]"
                          for d in dead)
        super().__init__(f"strict addressing refused the message, nothing was sent: {names}; "
                         "fix the addresses (or pass --no-strict to store it as a dead letter)",
                         dead_letters=dead)


class NotFound(BeadsError):
    code = "not_found"


class Ambiguous(BeadsError):
    code = "ambiguous"


class Conflict(BeadsError):
    code = "conflict"


class PermissionDenied(BeadsError):
    code = "permission_denied"


class Reserved(BeadsError):
    """A commit touches paths another agent reserved exclusively (the commit guard)."""

    code = "reserved"


class StoreError(BeadsError):
    code = "store_error"


class RemoteError(BeadsError):
    code = "remote_error"
