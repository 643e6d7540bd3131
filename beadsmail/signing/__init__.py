"""Signed feeds: Ed25519 keys (``keys``) and the hash chain of a replica's feed (``feed``).

The pieces a replica needs to sign what it appends and a clone needs to verify a
feed: key files in OpenSSH form, sealing a write (``feed.seal``), and checking a
segment's lines against the chain and the feed's key (``feed.Checker``). See
``docs/security.md``.
"""
