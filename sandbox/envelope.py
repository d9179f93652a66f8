"""The provider's answer envelope, bearer auth and injected faults, as one decorator.

Every sandbox API view is wrapped in ``api_view``: it answers 404 when the
sandbox is switched off, checks the bearer key against ``SANDBOX_API_KEYS``,
applies request-level faults, and turns ``ApiError`` and malformed input (bad
JSON, a body over Django's size limit, a rejected upload) into the documented
``{"code", "msg", "data"}`` envelope instead of a traceback or an HTML 400.
"""

import functools
import hmac
import json
import logging
import time

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from sandbox import faults

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code
        self.msg = msg


def envelope(data=None, code=200, msg="success", **extra):
    return JsonResponse({"code": code, "msg": msg, "data": data, **extra})


def bearer_key(request):
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    key = key.strip()
    if any(hmac.compare_digest(key.encode(), allowed.encode()) for allowed in settings.SANDBOX_API_KEYS):
        return key
    return None


def json_body(request):
    try:
        body = json.loads(request.body or b"{}")
        # JSON can spell text no database, file or URL can hold: lone surrogates
        # ("\ud800", which do not encode) and NULs (which PostgreSQL refuses).
        for text in _texts(body):
            text.encode()
            if "\x00" in text:
                raise ApiError(422, "The request body holds a NUL character.")
    except RecursionError:
        raise ApiError(422, "The request body is nested too deeply.") from None
    except UnicodeEncodeError:
        raise ApiError(422, "The request body holds text that is not valid Unicode.") from None
    except ValueError:
        raise ApiError(422, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(422, "The request body must be a JSON object.")
    return body


def _texts(value):
    """Every string in a parsed JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def string_field(body, field, max_length=None, required=False):
    """``body[field]`` as a string ("" when absent or null); 422 for any other type, an
    empty required value, or one longer than ``max_length`` (when given)."""
    value = body.get(field)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ApiError(422, f"{field} must be a string, not {type(value).__name__}.")
    if required and not value.strip():
        raise ApiError(422, f"{field} is required.")
    if max_length is not None and len(value) > max_length:
        raise ApiError(422, f"{field} is longer than {max_length} characters.")
    return value


@csrf_exempt
def unknown_endpoint(request, path):
    """Any other path under /sandbox: the envelope's 404, not an HTML page."""
    require_sandbox_enabled()
    return JsonResponse({"code": 404, "msg": f"No such endpoint: /{path[:100]}", "data": None}, status=404)


def require_sandbox_enabled():
    if not settings.SANDBOX_ENABLED:
        raise Http404("The sandbox is not enabled.")


def api_view(methods, upload=False):
    """Wrap a view ``fn(request, api_key)`` returning the envelope's ``data``."""

    def decorate(fn):
        @csrf_exempt
        @functools.wraps(fn)
        def view(request, *args, **kwargs):
            require_sandbox_enabled()
            extra = {"success": False} if upload else {}
            if request.method not in methods:
                return envelope(None, 405, f"Method {request.method} is not allowed here.", **extra)
            if delay := faults.delay_seconds():
                time.sleep(delay)
            api_key = bearer_key(request)
            if api_key is None:
                return envelope(None, 401, "Unauthorized: missing or invalid API key.", **extra)
            if code := faults.request_fault_code():
                return envelope(None, code, faults.REQUEST_MESSAGES[code], **extra)
            # The body is read lazily, so Django's parsing errors surface inside ``fn``.
            try:
                data = fn(request, api_key, *args, **kwargs)
            except ApiError as error:
                return envelope(None, error.code, error.msg, **extra)
            except RequestDataTooBig:
                limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024)
                msg = f"The request body is larger than {limit:g} MB: send big files with file-stream-upload."
                return envelope(None, 422, msg, **extra)
            except (BadRequest, MultiPartParserError, SuspiciousOperation) as error:
                log.warning("sandbox request to %s rejected: %s", request.path, type(error).__name__)
                msg = "The request could not be parsed: it is malformed or not allowed."
                return envelope(None, 422, msg, **extra)
            if upload:
                return envelope(data, 200, "File uploaded successfully", success=True)
            return envelope(data)

        return view

    return decorate
