"""Encryption at rest for secrets stayflow must read back (app secrets, Stripe keys).

The Fernet key is derived from STAYFLOW_SECRET_KEY; older keys can be listed
after the current one (comma-separated) so that a rotation can re-encrypt.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

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


# --- columns holding Encryptor tokens, for ``stayflow keys rotate`` ----------------------

# (model class, attribute names); each domain registers its own next to its model.
ENCRYPTED_COLUMNS: list[tuple[type, tuple[str, ...]]] = []


def register_encrypted(model: type, *attributes: str) -> None:
    """Declare that ``model.<attribute>`` holds an Encryptor token (or None)."""
    if not any(m is model and a == attributes for m, a in ENCRYPTED_COLUMNS):
        ENCRYPTED_COLUMNS.append((model, attributes))


def rotate_all(db: Any, encryptor: Encryptor, batch_size: int = 500) -> dict[str, int]:
    """Re-encrypt every registered secret under the first key; returns counts per table.

    Run with the new key first and the old ones after it in STAYFLOW_SECRET_KEY; once it
    has run, the old keys can be removed. Reads in batches by primary key so a large
    table does not sit in memory.
    """
    from sqlalchemy import select

    counts: dict[str, int] = {}
    for model, attributes in ENCRYPTED_COLUMNS:
        table = str(getattr(model, "__tablename__", model.__name__))
        pk = model.id  # type: ignore[attr-defined]
        last = 0
        done = 0
        while True:
            rows = db.scalars(select(model).where(pk > last).order_by(pk).limit(batch_size)).all()
            if not rows:
                break
            for row in rows:
                for attribute in attributes:
                    token = getattr(row, attribute)
                    if token:
                        try:
                            setattr(row, attribute, encryptor.rotate(token))
                        except InvalidToken as exc:
                            raise DecryptionError(
                                f"{table}.{attribute} of row {row.id} does not decrypt with "
                                "any configured key"
                            ) from exc
                        done += 1
                last = row.id
            db.flush()
        counts[table] = done
    return counts
