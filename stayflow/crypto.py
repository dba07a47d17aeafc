"""Encryption at rest for secrets stayflow must read back (app secrets, Stripe keys).

The Fernet key is derived from STAYFLOW_SECRET_KEY; older keys can be listed
after the current one (comma-separated) so that a rotation can re-encrypt.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class DecryptionError(Exception):
    pass


def _fernet_for(secret: str) -> Fernet:
    digest = hashlib.sha256(b"stayflow-fernet-v1:" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class Encryptor:
    def __init__(self, secret_key: str) -> None:
        keys = [k.strip() for k in secret_key.split(",") if k.strip()]
        if not keys:
            raise ValueError("no secret key")
        self._multi = MultiFernet([_fernet_for(k) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._multi.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._multi.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise DecryptionError("cannot decrypt with the configured secret key(s)") from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt under the first (current) key."""
        return self._multi.rotate(token.encode()).decode()
