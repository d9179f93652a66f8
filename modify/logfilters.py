"""Keeps per-task callback secrets and invitation tokens out of access logs.

The provider can only be given a URL, so the secret lives in the callback
path; server logs would otherwise print it with every callback request.
"""

import logging
import re

# Paths whose last part is a secret: a task's callback token, an invitation's token.
SECRET_PATH = re.compile(r"(/callbacks/|/join/)[^/\s\"?]+")
SECRET_PREFIXES = ("/callbacks/", "/join/")


def redact(text):
    """``text`` without the secret part of any callback or invitation URL in it."""
    return SECRET_PATH.sub(r"\1[redacted]", text) if any(prefix in text for prefix in SECRET_PREFIXES) else text


class RedactCallbackTokens(logging.Filter):
    def filter(self, record):
        message = record.getMessage()
        if any(prefix in message for prefix in SECRET_PREFIXES):
            record.msg = redact(message)
            record.args = ()
        return True
