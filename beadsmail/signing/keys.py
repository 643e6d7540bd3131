"""A replica's Ed25519 signing key: made on first write, kept private, shown in OpenSSH form.

The key file is an unencrypted OpenSSH private key (``openssh-key-v1``, the
format ``ssh-keygen -t ed25519`` writes), at ``<common git dir>/beadsmail/
signing_key`` with mode 0600, or wherever ``security.key`` points (for example
an existing ``~/.ssh/id_ed25519`` without a passphrase). So ``ssh-keygen -y -f``
prints its public key, and the public key this module publishes in the store
(``ssh-ed25519 AAAA...``) is one a human recognises and can pin.

Signing and verifying call libsodium through PyNaCl's compiled binding
(``nacl._sodium``) directly: importing it costs ~1 ms, against ~45 ms for
``nacl.signing`` or ``cryptography``'s public API, which pull in ``typing``,
``enum`` and more; measured figures are in the commit that chose it and in
``docs/security.md``. Nothing here is imported by a command that neither writes
nor verifies.
"""

from __future__ import annotations

import base64
import os
import struct
from pathlib import Path

from beadsmail.errors import InvalidInput

KEY_TYPE = b"ssh-ed25519"
MAGIC = b"openssh-key-v1\x00"
DOMAIN = b"beadsmail-feed-v1\x00"  # signed bytes never double as another protocol's
_lib = _ffi = None


def _sodium():
    global _lib, _ffi
    if _lib is None:
        from nacl._sodium import ffi, lib

        lib.sodium_init()
        _lib, _ffi = lib, ffi
    return _lib, _ffi


class SigningKey:
    """An Ed25519 key pair: ``seed`` (32 bytes) and ``public`` (32 bytes)."""

    __slots__ = ("seed", "public", "_secret")

    def __init__(self, seed: bytes) -> None:
        lib, ffi = _sodium()
        pk = ffi.new("unsigned char[]", 32)
        sk = ffi.new("unsigned char[]", 64)
        if lib.crypto_sign_seed_keypair(pk, sk, seed) != 0:
            raise InvalidInput("could not derive an Ed25519 key from the key file")
        self.seed, self.public, self._secret = seed, bytes(pk), bytes(sk)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(os.urandom(32))

    def sign(self, message: bytes) -> bytes:
        lib, ffi = _sodium()
        data = DOMAIN + message
        out = ffi.new("unsigned char[]", len(data) + 64)
        size = ffi.new("unsigned long long *")
        lib.crypto_sign(out, size, data, len(data), self._secret)
        return ffi.buffer(out, 64)[:]

    @property
    def openssh_public(self) -> str:
        return openssh_public(self.public)


def verify(public: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``public``'s Ed25519 signature of ``message``."""
    if len(public) != 32 or len(signature) != 64:
        return False
    lib, ffi = _sodium()
    signed = signature + DOMAIN + message
    out = ffi.new("unsigned char[]", len(signed))
    size = ffi.new("unsigned long long *")
    return lib.crypto_sign_open(out, size, signed, len(signed), public) == 0


# -- OpenSSH encodings ---------------------------------------------------------------


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _read_string(data: bytes, at: int) -> tuple[bytes, int]:
    if at + 4 > len(data):
        raise ValueError("truncated")
    (n,) = struct.unpack_from(">I", data, at)
    if at + 4 + n > len(data):
        raise ValueError("truncated")
    return data[at + 4:at + 4 + n], at + 4 + n


def openssh_public(public: bytes) -> str:
    """``ssh-ed25519 AAAA...``: the form of ``~/.ssh/*.pub`` and git's ``allowed_signers``."""
    return "ssh-ed25519 " + base64.b64encode(_string(KEY_TYPE) + _string(public)).decode()


def parse_public(text: str) -> bytes:
    """The 32 key bytes of an OpenSSH ``ssh-ed25519 AAAA... [comment]`` line."""
    parts = text.strip().split()
    if len(parts) < 2 or parts[0] != "ssh-ed25519":
        raise InvalidInput("give an Ed25519 public key in OpenSSH form: 'ssh-ed25519 AAAA...'")
    try:
        blob = base64.b64decode(parts[1], validate=True)
        kind, at = _read_string(blob, 0)
        public, at = _read_string(blob, at)
    except ValueError:
        raise InvalidInput("the ssh-ed25519 key is not valid base64 of a key blob") from None
    if kind != KEY_TYPE or len(public) != 32 or at != len(blob):
        raise InvalidInput("the ssh-ed25519 key blob does not hold a 32-byte Ed25519 key")
    return public


def fingerprint(public: bytes) -> str:
    """``SHA256:...`` as ``ssh-keygen -l`` prints it."""
    import hashlib

    digest = hashlib.sha256(_string(KEY_TYPE) + _string(public)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def encode_private(key: SigningKey, comment: str) -> bytes:
    """An unencrypted ``openssh-key-v1`` private key file, as ``ssh-keygen`` writes it."""
    pub_blob = _string(KEY_TYPE) + _string(key.public)
    check = os.urandom(4)
    private = (check + check + _string(KEY_TYPE) + _string(key.public)
               + _string(key.seed + key.public) + _string(comment.encode()))
    private += bytes(range(1, 1 + (-len(private) % 8)))
    body = (MAGIC + _string(b"none") + _string(b"none") + _string(b"") + struct.pack(">I", 1)
            + _string(pub_blob) + _string(private))
    text = base64.b64encode(body).decode()
    lines = [text[i:i + 70] for i in range(0, len(text), 70)]
    return ("-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(lines)
            + "\n-----END OPENSSH PRIVATE KEY-----\n").encode()


def decode_private(data: bytes, where: Path) -> SigningKey:
    """The key of an unencrypted OpenSSH Ed25519 private key file; InvalidInput otherwise."""
    what = f"{where} is not an unencrypted OpenSSH Ed25519 private key"
    try:
        text = data.decode("ascii").strip().splitlines()
        if text[0] != "-----BEGIN OPENSSH PRIVATE KEY-----" or not text[-1].startswith("-----END"):
            raise ValueError
        body = base64.b64decode("".join(text[1:-1]))
        if not body.startswith(MAGIC):
            raise ValueError
        at = len(MAGIC)
        cipher, at = _read_string(body, at)
        _kdf, at = _read_string(body, at)
        _opts, at = _read_string(body, at)
        if cipher != b"none":
            raise InvalidInput(f"{what} (it has a passphrase); give one without, "
                               "or remove security.key to use a key of its own")
        at += 4
        _pub, at = _read_string(body, at)
        private, _ = _read_string(body, at)
        if private[:4] != private[4:8]:
            raise ValueError
        kind, at = _read_string(private, 8)
        public, at = _read_string(private, at)
        secret, at = _read_string(private, at)
    except (ValueError, IndexError, UnicodeDecodeError):
        raise InvalidInput(what) from None
    if kind != KEY_TYPE or len(secret) != 64 or secret[32:] != public:
        raise InvalidInput(what)
    key = SigningKey(secret[:32])
    if key.public != public:
        raise InvalidInput(f"{what} (its public half does not match)")
    return key


def load_or_create(path: Path, comment: str) -> SigningKey:
    """This replica's key at ``path``, made (mode 0600, atomically) if there is none."""
    try:
        return decode_private(path.read_bytes(), path)
    except FileNotFoundError:
        pass
    key = SigningKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, encode_private(key, comment))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # the first writer's key wins; never replace one
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return decode_private(path.read_bytes(), path)
