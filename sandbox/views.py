"""The sandbox's side of the upstream contract (``shared/upstream-api.md``).

Same paths, envelopes, codes and field names as the real service under the
``/sandbox`` prefix, so that a client works against it by changing only the
base URL. Generation itself runs on the django-q2 cluster (``sandbox.jobs``).
"""

import base64
import binascii
import mimetypes
import os
import tempfile
import uuid
from urllib.parse import unquote, urlencode, urlsplit

from django.conf import settings
from django.core import signing
from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import transaction
from django.http import FileResponse, Http404, HttpResponseForbidden
from django.urls import reverse
from django.utils import timezone
from django.utils.text import get_valid_filename

from modify.downloads import DownloadError, DownloadTooLarge, download
from modify.prompts import prompt_problem
from sandbox import faults, jobs, ratelimit, schedules
from sandbox.envelope import ApiError, api_view, envelope, json_body, require_sandbox_enabled, string_field
from sandbox.intake import fetched_video
from sandbox.models import Account, Task, UploadedFile

DOWNLOAD_URL_SECONDS = 20 * 60
_signer = signing.TimestampSigner(salt="sandbox.download-url")


def index(request):
    """The sandbox's root: says what it is, so ``/sandbox/`` is never a bare 404."""
    require_sandbox_enabled()
    return envelope({"service": "lumaweb sandbox", "contract": "kie.ai Luma modify video"})


def sandbox_base(request):
    return request.build_absolute_uri(reverse("sandbox:root")).rstrip("/")


MAX_URL_LENGTH = 2000


def _url_field(body, field, required=False):
    value = string_field(body, field, MAX_URL_LENGTH, required=required)
    if value and not value.startswith(("http://", "https://")):
        raise ApiError(422, f"{field} must be an http or https URL.")
    _split(value, field)
    return value


def _split(url, field):
    try:
        return urlsplit(url)
    except ValueError:
        raise ApiError(422, f"{field} is not a valid URL.") from None


@ratelimit.retry_after_header
@api_view(["POST"])
def generate(request, api_key):
    body = json_body(request)
    prompt = string_field(body, "prompt", required=True)  # prompt_problem judges its length
    if problem := prompt_problem(prompt):
        raise ApiError(422, f"Invalid prompt: {problem}")
    callback_url = _url_field(body, "callBackUrl")
    video_url = _url_field(body, "videoUrl", required=True)
    watermark = string_field(body, "watermark", 255)
    account = Account.for_key(api_key)
    ratelimit.check(request, account)  # as kie.ai: 429 over the limit, before any work
    if account.credits < settings.SANDBOX_TASK_COST:
        raise ApiError(402, "Insufficient credits: top up your account to create tasks.")
    with fetched_video(video_url) as (path, container):
        task = Task(
            account=account,
            prompt=prompt,  # as sent: paramJson gives the original request back
            video_url=video_url,
            callback_url=callback_url,
            watermark=watermark,
            base_url=sandbox_base(request),
            faults=faults.task_faults(),
        )
        with open(path, "rb") as fh:  # copied before the transaction: no write lock held meanwhile
            task.source.save(f"source.{container}", File(fh), save=False)
        with transaction.atomic():  # the credits are taken only with the task
            if not account.spend(settings.SANDBOX_TASK_COST):
                task.source.delete(save=False)
                raise ApiError(402, "Insufficient credits: top up your account to create tasks.")
            try:  # counted again under the account's row lock that spend took: exact
                task.created_at = ratelimit.admit(request, account)
            except ratelimit.RateLimited:
                task.source.delete(save=False)
                raise  # the spend is rolled back with the transaction
            task.save()
    if "callback_early" in faults.parse(task.faults):
        jobs.generate(task.task_id, wait=False)  # its callback must come before this answer
    else:
        schedules.enqueue_generate(task.task_id)  # on the sandbox's own cluster
    return {"taskId": task.task_id}


@api_view(["GET"])
def record_info(request, api_key):
    task_id = request.GET.get("taskId", "").strip()
    if not task_id:
        raise ApiError(422, "taskId is required.")
    task = Task.objects.filter(task_id=task_id, account__key_hash=Account.for_key(api_key).key_hash).first()
    if task is None:
        raise ApiError(404, f"Task {task_id[:64]} not found.")
    return task.as_record_info()


@api_view(["GET"])
def credit(request, api_key):
    return Account.for_key(api_key).credits


@api_view(["POST"])
def download_url(request, api_key):
    url = _url_field(json_body(request), "url", required=True)
    if _generated_file(request, url) is None:
        raise ApiError(422, "Only URLs of files generated by this service are accepted.")
    # The signed value is the file's path and TimestampSigner adds when it was signed: the link
    # opens that one file only, for DOWNLOAD_URL_SECONDS.
    token = _signer.sign(unquote(_split(url, "url").path))
    return f"{url.split('?')[0]}?{urlencode({'token': token})}"


def _generated_file(request, url):
    """The live UploadedFile or Task that ``url`` names on this sandbox, or None."""
    base = urlsplit(sandbox_base(request))
    parts = _split(url, "url")
    prefix = base.path + "/files/"
    if (parts.scheme, parts.netloc) != (base.scheme, base.netloc) or not parts.path.startswith(prefix):
        return None
    kind, _, rest = parts.path[len(prefix) :].partition("/")
    if kind == "results" and rest.endswith(".mp4"):
        found = Task.objects.filter(task_id=rest[:-4]).exclude(result="").first()
    elif kind == "uploads":
        found = UploadedFile.objects.filter(id=_uuid_or_none(rest.partition("/")[0])).first()
    else:
        found = None
    return None if found is None or found.is_expired else found


def _uuid_or_none(value):
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _safe_name(requested, default, mime_hint=None):
    """The name an upload is stored and served under: the client's ``fileName`` (else
    ``default``) reduced to a safe basename short enough for the database and the disk.
    When nothing usable is left ("???" makes get_valid_filename raise) or only an
    extension is, it becomes ``upload`` plus that extension or one guessed from ``mime_hint``."""
    if requested is None or requested == "":
        requested = default
    if not isinstance(requested, str):
        raise ApiError(422, "fileName must be a string.")
    try:
        name = get_valid_filename(os.path.basename(requested))
    except SuspiciousFileOperation:
        name = mimetypes.guess_extension(mime_hint or "") or ".bin"
    stem, extension = os.path.splitext(f"upload{name}" if name.startswith(".") else name)
    return stem[:100] + extension[:20]


def _store_upload(request, fileobj, name, upload_path):
    if not fileobj.size:
        raise ApiError(422, "The file is empty.")
    now = timezone.now()
    uploaded = UploadedFile(
        file_name=name,
        upload_path=upload_path,
        mime_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
        size=fileobj.size,
        created_at=now,
    )
    uploaded.file.save(name, fileobj, save=False)
    uploaded.save()
    return {
        "fileName": name,
        "filePath": f"{upload_path.strip('/')}/{name}".lstrip("/"),
        "downloadUrl": f"{sandbox_base(request)}/files/uploads/{uploaded.id}/{name}",
        "fileSize": uploaded.size,
        "mimeType": uploaded.mime_type,
        "uploadedAt": now.isoformat(),
    }


def _upload_path(body):
    return string_field(body, "uploadPath", 255, required=True).strip()


@api_view(["POST"], upload=True)
def file_stream_upload(request, api_key):
    upload = request.FILES.get("file")
    if upload is None:
        raise ApiError(422, "file is required (a non-empty multipart form field 'file').")
    if upload.size > settings.LUMA_MAX_VIDEO_BYTES:
        raise ApiError(422, "The file is too large.")
    path = _upload_path(request.POST)
    name = _safe_name(request.POST.get("fileName"), upload.name, upload.content_type)
    return _store_upload(request, upload, name, path)


@api_view(["POST"], upload=True)
def file_url_upload(request, api_key):
    body = json_body(request)
    path = _upload_path(body)
    file_url = _url_field(body, "fileUrl", required=True)
    name = _safe_name(body.get("fileName"), _split(file_url, "fileUrl").path)
    with tempfile.TemporaryFile() as fh:
        try:
            download(file_url, fh, max_bytes=settings.LUMA_MAX_VIDEO_BYTES, timeout=30)
        except DownloadTooLarge:
            raise ApiError(422, "The file at fileUrl is too large.") from None
        except DownloadError as error:
            raise ApiError(422, f"fileUrl is not reachable: {error}") from None
        fh.flush()  # File() sizes it from the descriptor
        return _store_upload(request, File(fh, name=name), name, path)


@api_view(["POST"], upload=True)
def file_base64_upload(request, api_key):
    body = json_body(request)
    path = _upload_path(body)
    data = string_field(body, "base64Data", settings.DATA_UPLOAD_MAX_MEMORY_SIZE, required=True)
    mime_hint = None
    if data.startswith("data:"):
        header, _, data = data.partition(",")
        mime_hint = header[5:].split(";")[0]
    try:
        content = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "base64Data is not valid base64.") from None
    name = _safe_name(body.get("fileName"), "", mime_hint)
    return _store_upload(request, ContentFile(content, name=name), name, path)


def serve_file(request, kind, name):
    """Serve an upload or a result until it expires, as the real file host does.

    Uploads are whatever a client sent, served from the app's own origin: only a video
    plays inline, anything else is an attachment, never sniffed or run as a page.
    """
    require_sandbox_enabled()
    token = request.GET.get("token")
    if token:
        try:
            signed_path = _signer.unsign(token, max_age=DOWNLOAD_URL_SECONDS)
        except signing.SignatureExpired:
            return HttpResponseForbidden("This download link has expired.")
        except signing.BadSignature:
            return HttpResponseForbidden("This download link is invalid.")
        if signed_path != request.path:
            return HttpResponseForbidden("This download link is for another file.")
    found = _generated_file(request, request.build_absolute_uri(request.path))
    if found is None:
        raise Http404("This file does not exist or has expired.")
    if isinstance(found, Task):
        field, file_name = found.result, f"{found.task_id}.mp4"
    else:
        field, file_name = found.file, found.file_name
    content_type = _served_type(file_name)
    response = FileResponse(
        field.open("rb"),
        content_type=content_type,
        as_attachment=not content_type.startswith("video/"),
        filename=file_name,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox"
    return response


def _served_type(file_name):
    """A video/* or image/* type guessed from the name; anything else is opaque bytes."""
    guessed = mimetypes.guess_type(file_name)[0] or ""
    return guessed if guessed.startswith(("video/", "image/")) else "application/octet-stream"
