"""The provider's callback signature, shared by the sandbox (signs) and the app (verifies).

``X-Webhook-Signature`` is base64(HMAC-SHA256(key, taskId + "." + timestamp))
and ``X-Webhook-Timestamp`` is unix seconds; stale timestamps are replays.
"""

import base64
import hashlib
import hmac
import time


def signature(key, task_id, timestamp):
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed_headers(key, task_id, now=None):
    timestamp = str(int(now if now is not None else time.time()))
    return {"X-Webhook-Timestamp": timestamp, "X-Webhook-Signature": signature(key, task_id, timestamp)}


def signature_problem(key, task_id, timestamp, given_signature, max_age_seconds, now=None):
    """Why a callback's signature is not acceptable, or None when it is."""
    if not timestamp or not given_signature:
        return "missing signature headers"
    try:
        age = (now if now is not None else time.time()) - int(timestamp)
    except (ValueError, OverflowError):  # not a number, or one too large for a float
        return "malformed timestamp"
    if abs(age) > max_age_seconds:
        return "stale timestamp"
    if not hmac.compare_digest(signature(key, task_id, timestamp).encode(), given_signature.encode(errors="replace")):
        return "bad signature"
    return None
