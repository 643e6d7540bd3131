"""Records: ids, construction, canonical bytes and validation.

A record is an immutable JSON object (see ``schemas/``). Its canonical form is
compact, key-sorted UTF-8 JSON on one line, so the same record is always the same
bytes. Ids are a prefix plus 64 random bits in base36 (13 characters), never a
counter. Records are ordered by ``(clock, id)``: ``clock`` is a Lamport clock,
one more than the largest clock the writer has seen.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime

from beadsmail.errors import InvalidInput

FORMAT_VERSION = 1
ID_CHARS = 13
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
IDENTITY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,7}-$")
ID_RE = re.compile(r"^[a-z][a-z0-9]{0,7}-[0-9a-z]{13}$")


def new_id(prefix: str = "bd-") -> str:
    """A fresh random id: ``prefix`` + 64 random bits in base36."""
    import secrets  # (hmac, hashlib: ~5 ms that read-only commands never need)

    n = secrets.randbits(64)
    chars = []
    for _ in range(ID_CHARS):
        n, r = divmod(n, 36)
        chars.append(_B36[r])
    return prefix + "".join(reversed(chars))


def new_replica_id() -> str:
    return new_id("r-")[2:][:12]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")


def check_identity(name: str, what: str = "identity") -> str:
    if not isinstance(name, str) or not IDENTITY_RE.match(name):
        raise InvalidInput(
            f"invalid {what} {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def make(kind: str, actor: str, clock: int, replica: str, prefix: str, **fields: object) -> dict:
    """Build and validate a new record of ``kind``."""
    record = {
        "v": FORMAT_VERSION,
        "id": fields.pop("id", None) or new_id(prefix),
        "kind": kind,
        "actor": actor,
        "created_at": now_iso(),
        "clock": clock,
        "replica": replica,
    }
    record.update({k: v for k, v in fields.items()})
    validate(record)
    return record


def upgrade(record: object) -> object:
    """A record as the current format names it: a message written before format
    change 2 calls its parent ``reply_to``; it is read as ``replies_to`` (the stored
    line is never rewritten)."""
    if (isinstance(record, dict) and record.get("kind") == "message" and "reply_to" in record
            and "replies_to" not in record):
        record["replies_to"] = record.pop("reply_to")
    return record


def sender_group(record: dict) -> str | None:
    """The group a message's sender was in when it sent (``sender_group``). A message
    written before the field existed has none, unless btmsg kept it in its metadata
    (``sender_group_id``), which is read then; its sender's group now is never guessed."""
    if "sender_group" in record:
        return record["sender_group"]
    meta = record.get("metadata")
    old = meta.get("sender_group_id") if isinstance(meta, dict) else None
    return old if isinstance(old, str) and IDENTITY_RE.match(old) else None


def stored_text(record: dict, raw: bytes) -> str:
    """The line as the index keeps it: the raw line, or for a record ``upgrade`` renamed
    a field of, its canonical bytes in the current format (so every view reads one name)."""
    if b'"reply_to"' in raw and record.get("kind") == "message" and "reply_to" not in record:
        return dumps(record).decode()
    return raw.decode()


def validate(record: object) -> None:
    """Raise InvalidInput naming the first schema violation."""
    from beadsmail.schemas._validators import VALIDATORS

    if not isinstance(record, dict):
        raise InvalidInput("a record must be a JSON object")
    kind = record.get("kind")
    check = VALIDATORS.get(kind) if isinstance(kind, str) else None
    if check is None:
        raise InvalidInput(f"unknown record kind {record.get('kind')!r}")
    try:
        check(record)
    except ValueError as exc:
        msg = getattr(exc, "message", str(exc))
        raise InvalidInput(f"invalid {record.get('kind')} record: {msg}") from None


def dumps(record: dict) -> bytes:
    """Canonical serialisation: sorted keys, compact separators, UTF-8."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def parse_line(line: bytes) -> dict:
    """Parse and validate one JSONL line; raise InvalidInput saying why not."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"not UTF-8 (byte {exc.start})") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"not JSON: {exc.msg} at column {exc.colno}") from None
    upgrade(record)
    validate(record)
    return record


def fast_parser() -> Callable[[bytes], dict]:
    """``parse_line`` for many lines (a rebuild), about twice as fast, same results.

    orjson parses and the generated ``accept_<kind>`` check passes the common valid
    record; a line either refuses goes through ``parse_line``, which decides and words
    the error as always. orjson refuses some lines json reads (NaN, lone surrogates),
    and turns integers past 64 bits into floats: ``accept`` refuses a float anywhere
    in a free-form field, and elsewhere the schema's integer types refuse one. It
    costs a command ~10 ms to import, so a refresh of a few lines keeps to ``parse_line``.
    """
    import orjson

    from beadsmail.schemas._validators import ACCEPT

    loads = orjson.loads

    def parse(line: bytes) -> dict:
        try:
            record = upgrade(loads(line))
            if ACCEPT[record["kind"]](record):
                return record
        except (ValueError, KeyError, TypeError):  # not JSON to orjson, or not a valid record
            pass
        return parse_line(line)

    return parse


def order_key(record: dict) -> tuple[int, str]:
    return (record["clock"], record["id"])
