"""Keeps per-task callback secrets out of access logs.

The provider can only be given a URL, so the secret lives in the callback
path; server logs would otherwise print it with every callback request.
"""

import logging
import re

CALLBACK_PATH = re.compile(r"(/callbacks/)[^/\s\"?]+")


def redact(text):
    """``text`` without the secret part of any callback URL in it."""
    return CALLBACK_PATH.sub(r"\1[redacted]", text) if "/callbacks/" in text else text


class RedactCallbackTokens(logging.Filter):
    def filter(self, record):
        message = record.getMessage()
        if "/callbacks/" in message:
            record.msg = redact(message)
            record.args = ()
        return True
