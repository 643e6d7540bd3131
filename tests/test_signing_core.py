"""Signed feeds, the library: keys in OpenSSH form, sealing writes, verifying a feed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from beadsmail import records as rec
from beadsmail.errors import InvalidInput
from beadsmail.signing import feed, keys

R = "r1a2b3c4d5e6"


def test_key_file_is_an_openssh_key_with_mode_0600_that_ssh_keygen_reads(tmp_path: Path) -> None:
    path = tmp_path / "k"
    key = keys.load_or_create(path, "beadsmail replica x")
    assert path.stat().st_mode & 0o777 == 0o600
    assert keys.load_or_create(path, "other").public == key.public  # made once
    if shutil.which("ssh-keygen"):
        out = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True,
                             text=True, check=True).stdout
        assert out.split()[:2] == key.openssh_public.split()
        finger = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], capture_output=True,
                                text=True, check=True).stdout
        assert finger.split()[1] == keys.fingerprint(key.public)
    assert keys.parse_public(key.openssh_public + " comment") == key.public


def test_an_ssh_keygen_key_can_be_the_replica_key(tmp_path: Path) -> None:
    if not shutil.which("ssh-keygen"):
        pytest.skip("no ssh-keygen")
    path = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    key = keys.decode_private(path.read_bytes(), path)
    assert key.openssh_public == " ".join((tmp_path / "id_ed25519.pub").read_text().split()[:2])
    assert keys.verify(key.public, key.sign(b"m"), b"m")
    assert not keys.verify(key.public, key.sign(b"m"), b"n")


def test_bad_key_files_are_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_bytes(b"not a key")
    with pytest.raises(InvalidInput, match="not an unencrypted OpenSSH Ed25519"):
        keys.load_or_create(path, "x")
    with pytest.raises(InvalidInput):
        keys.parse_public("ssh-rsa AAAA")


# -- the chain -------------------------------------------------------------------------


def _record(n: int, kind: str = "message", **extra) -> dict:
    return {"v": 1, "id": f"bd-{n:013d}", "kind": kind, "actor": "alice", "clock": n,
            "created_at": "2026-12-03T00:00:00.000000Z", "replica": R, **extra}


class Feed:
    """A feed written by ``seal`` write after write, as its lines."""

    def __init__(self, key: keys.SigningKey) -> None:
        self.key, self.lines, self.n = key, [], 0

    def write(self, count: int = 1) -> list[bytes]:
        records = [_record(self.n + i + 1) for i in range(count)]
        self.n += count + (0 if self.lines else 1)
        tip = None
        if self.lines:
            last = json.loads(self.lines[-1])
            tip = (last["seq"], feed.line_hash(self.lines[-1]))
        _, lines = feed.seal(records, tip, self.key, lambda f: _record(0, "key", **f))
        self.lines += lines
        return lines


def check(lines: list[bytes], seen=lambda rid: False) -> list[feed.Line]:
    checker = feed.Checker(lambda r: None, feed.SignatureCache(Path("/nonexistent/x")), {}, {})
    out = [feed.Line(json.loads(x), x, f"{R}/seg", n + 1) for n, x in enumerate(lines)]
    checker.segment(R, out, seen)
    return out


def test_writes_form_a_chain_that_starts_with_the_key_and_verifies() -> None:
    f = Feed(keys.SigningKey.generate())
    f.write()
    f.write(3)
    records = [json.loads(x) for x in f.lines]
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert records[0]["kind"] == "key" and records[0]["prev"] is None
    assert ["sig" in r for r in records] == [True, True, False, False, True]
    assert [r["prev"] for r in records[1:]] == [feed.line_hash(x) for x in f.lines[:-1]]
    assert {ln.status for ln in check(f.lines)} == {feed.VERIFIED}


def test_a_changed_line_a_deletion_an_insertion_and_another_key_are_caught() -> None:
    f = Feed(keys.SigningKey.generate())
    for _ in range(4):
        f.write(2)
    lines = list(f.lines)
    changed = lines[:4] + [lines[4].replace(b'"clock":', b'"clock":1')] + lines[5:]
    assert [ln.status for ln in check(changed)][3:5] == [feed.FORGED, feed.FORGED]
    missing = lines[:3] + lines[5:]  # a whole write gone from the middle
    statuses = check(missing)
    assert all(ln.status == feed.VERIFIED for ln in statuses)
    assert "lines missing" in statuses[4].why
    inserted = json.loads(lines[2])
    inserted["id"] = "bd-9999999999999"
    inserted.pop("sig", None)
    extra = json.dumps(inserted, sort_keys=True, separators=(",", ":")).encode()
    out = check(lines[:3] + [extra] + lines[3:])
    assert out[3].status == feed.FORGED and "not on the signed chain" in out[3].why
    other = Feed(keys.SigningKey.generate())
    other.write()
    assert {ln.status for ln in check(lines[:3] + other.lines[1:])} >= {feed.FORGED}


def test_a_fork_is_two_signed_lines_for_one_position() -> None:
    key = keys.SigningKey.generate()
    a, b = Feed(key), Feed(key)
    a.write()
    b.lines, b.n = list(a.lines), a.n + 1000  # (another record: the same line twice is no fork)
    a.write()
    b.write()
    out = check(a.lines + b.lines[2:], seen=lambda rid: False)
    assert out[-1].status == feed.FORGED and "fork" in out[-1].why


def test_the_same_line_twice_is_not_a_fork() -> None:
    f = Feed(keys.SigningKey.generate())
    f.write()
    f.write()
    out = check(f.lines + f.lines[-1:], seen=lambda rid: False)
    assert [ln.status for ln in out] == [feed.VERIFIED] * 3 + [feed.KNOWN]
    assert not any(ln.why for ln in out)


def test_a_compaction_stub_keeps_the_chain() -> None:
    f = Feed(keys.SigningKey.generate())
    for _ in range(3):
        f.write()
    lines = list(f.lines)
    compacted = lines[:2] + [feed.stub(lines[2])] + lines[3:]
    out = check(compacted + [_marker(f.key, lines[2])])
    assert [ln.status for ln in out] == [feed.VERIFIED, feed.VERIFIED, feed.KNOWN, feed.VERIFIED,
                                         feed.UNVERIFIED]
    assert not any(ln.why for ln in out)
    # the same rewrite without its owner's signature: the chain holds, the rewrite is named
    for marker in (_marker(None, lines[2]), _marker(keys.SigningKey.generate(), lines[2])):
        out = check(compacted + [marker])
        assert [ln.status for ln in out] == [feed.VERIFIED, feed.VERIFIED, feed.FORGED,
                                             feed.VERIFIED, feed.FORGED]
        assert "no compaction signed by this feed's key" in out[2].why
        assert "did not sign" in out[4].why


def _marker(key, *removed: bytes) -> bytes:
    record = _record(99, "compaction", segment="2026-12-03-000.jsonl",
                     removed=[json.loads(x)["id"] for x in removed],
                     hashes=[feed.line_hash(x) for x in removed])
    return rec.dumps(feed.seal_marker(record, key) if key else record)


def test_a_line_and_the_stub_that_stands_for_it_are_never_a_fork() -> None:
    f = Feed(keys.SigningKey.generate())
    for _ in range(3):
        f.write()
    lines = list(f.lines)
    forged = lines[:2] + [feed.stub(lines[2])] + lines[3:] + [_marker(None, lines[2])]
    for first, then in ((forged, lines), (lines, forged)):  # (either head read first)
        forks: dict = {}
        checker = feed.Checker(lambda r: None, feed.SignatureCache(Path("/nonexistent/x")), {},
                               forks)
        folded: set = set()
        out = []
        for segment in (first, then):
            got = [feed.Line(json.loads(x), x, f"{R}/seg", i + 1) for i, x in enumerate(segment)]
            checker.segment(R, got, folded.__contains__)
            folded |= {ln.record["id"] for ln in got if ln.status == feed.VERIFIED}
            out += got
        assert forks == {} and not checker.new_fork
        assert json.loads(lines[2])["id"] in folded  # (the line itself is folded)
        assert not [ln.why for ln in out if "fork" in ln.why]
