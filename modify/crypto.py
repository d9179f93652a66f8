"""Encryption at rest for provider API keys.

Fernet keys are derived from ``FIELD_ENCRYPTION_KEYS`` (or, when unset, from
``SECRET_KEY``) so that a copy of the database alone never reveals a key.
Every listed key decrypts and the first encrypts, so keys rotate without a
moment when a secret cannot be read: list the new key first, run
``manage.py rotate_encryption_key``, then drop the old one. A secret stored
while only ``SECRET_KEY`` was in use stays readable until it is rotated.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


def _fernet(material):
    digest = hashlib.sha256(b"lumaweb.apikey:" + material.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _keys():
    return MultiFernet([_fernet(material) for material in [*settings.FIELD_ENCRYPTION_KEYS, settings.SECRET_KEY]])


def encrypt(plaintext: str) -> str:
    return _keys().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """The plaintext, or ValueError (without the token) when no configured key opens it."""
    try:
        return _keys().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("This API key cannot be decrypted with the configured FIELD_ENCRYPTION_KEYS.") from None


def rotate(token: str) -> str:
    """The same secret, encrypted with the first (newest) key."""
    try:
        return _keys().rotate(token.encode()).decode()
    except InvalidToken:
        raise ValueError("This API key cannot be decrypted with the configured FIELD_ENCRYPTION_KEYS.") from None
