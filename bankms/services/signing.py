"""The bank's Ed25519 signing key: made on first start, kept private, its public half shared.

The key signs the manifest of every auditor's export (export.py), so that an auditor who holds
the public key can tell that the bundle came from this bank and was not changed since. It is
made on first start beside the cookie key (the database's folder, or $BANKMS_SIGNING_KEY_FILE),
as an unencrypted PKCS#8 PEM file of mode 0600 (files.create_private_file), and refused when the
file is open to other users, as the cookie key is. The public key is handed out as a PEM
SubjectPublicKeyInfo block (`python -m bankms public-key`, or the Auditor export page).

Ed25519 (RFC 8032) through the `cryptography` package: deterministic signatures of 64 bytes
that OpenSSL checks too (`openssl pkeyutl -verify -pubin -inkey bank.pub -rawin
-in manifest.json -sigfile manifest.sig`).
"""
from __future__ import annotations

import os
import threading

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..store import files
from ..domain.errors import InvalidInput, WeakSigningKey

KEY_FILE_NAME = "signing.key"
# A bank in memory has no folder of its own: its key lives as long as the process does.
_MEMORY_KEYS: dict[int, Ed25519PrivateKey] = {}
_LOCK = threading.Lock()


def key_path_for(db_path: str) -> str:
    """Where the signing key lives: $BANKMS_SIGNING_KEY_FILE, else signing.key beside the
    database file (where the cookie key is made too, tokens.key_path_for)."""
    override = os.environ.get("BANKMS_SIGNING_KEY_FILE")
    if override:
        return override
    return os.path.join(files.data_folder(db_path), KEY_FILE_NAME)


def load_or_create(path: str) -> Ed25519PrivateKey:
    """The private key in the PEM file at path, made (0600, never overwritten) when missing.
    WeakSigningKey if the file is open to other users or holds no Ed25519 private key."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    files.create_private_file(path, pem)
    mode = files.open_to_others(path)
    if mode is not None:
        raise WeakSigningKey(f"The signing key file {path} is readable by other users "
                             f"(mode {mode:o}); run: chmod 600 {path}")
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise WeakSigningKey(f"The signing key file {path} holds no private key in PEM.") \
            from None
    if not isinstance(key, Ed25519PrivateKey):
        raise WeakSigningKey(f"The signing key file {path} holds a key that is not Ed25519.")
    return key


def bank_key(bank) -> Ed25519PrivateKey:
    """The bank's private key (made on first use for a bank in memory, which keeps it in
    memory only)."""
    if bank.path == ":memory:":
        with _LOCK:
            return _MEMORY_KEYS.setdefault(id(bank), Ed25519PrivateKey.generate())
    return load_or_create(key_path_for(bank.path))


def public_pem(private_key: Ed25519PrivateKey) -> bytes:
    """The public half as PEM SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----")."""
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public(pem: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM text; InvalidInput for anything else."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise InvalidInput("The public key is not a PEM public key (-----BEGIN PUBLIC "
                           "KEY-----).") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput("The public key is not an Ed25519 key.")
    return key


def verifies(public_key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
