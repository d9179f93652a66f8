"""Encryption at rest for provider API keys.

A Fernet key is derived from ``FIELD_ENCRYPTION_KEY`` (or, when unset, from
``SECRET_KEY``) so that a copy of the database alone never reveals a key.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet():
    material = settings.FIELD_ENCRYPTION_KEY or settings.SECRET_KEY
    digest = hashlib.sha256(b"lumaweb.apikey:" + material.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """The plaintext, or ValueError (without the token) when the key changed."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("This API key cannot be decrypted with the current FIELD_ENCRYPTION_KEY.") from None
