"""Media in S3-compatible object storage (modify.storage, modify.s3_storage), against a real S3 API server.

With a bucket configured, every file the app archives (sources, results,
posters) is an object in a private bucket, not a file on this machine; a
member reaches one through the app's permission check and then a short-lived
presigned URL; nobody reaches one without. The ``s3`` fixture makes a fresh
bucket on moto's standalone server the default storage for one test.
"""

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings as django_settings

from modify import archiving, intake, sending
from modify.models import ModifyTask
from sandbox.models import UploadedFile
from tests.conftest import upload_clip
from tests.factories import backdate, make_task

State = ModifyTask.State
ROOT = Path(__file__).resolve().parent.parent


def on_disk(media_root, *names):
    """Those of ``names`` that are files in MEDIA_ROOT (other tests' files may be there too)."""
    return [name for name in names if (Path(media_root) / name).exists()]


def presigned(response, s3, key):
    """The query of the presigned URL ``response`` redirects to, checked to be ``key`` in ``s3``'s bucket."""
    assert response.status_code == 302, response.status_code
    location = response["Location"]
    assert location.startswith(f"{s3.endpoint}/{s3.name}/{key}?"), location
    assert response["Cache-Control"] == "private, no-store"
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


# --- Configuration alone -----------------------------------------------------------------------


def settings_seen_by_a_new_process(**env):
    """What a process started with ``env`` stores media with: backend, ACL, signing, expiry, a file's URL,
    and whether it loaded boto3 before its storage was first used."""
    code = (
        "import sys, django; django.setup()\n"
        "import lumaweb.urls, sandbox.jobs\n"
        "boto3 = 'boto3' in sys.modules\n"
        "from django.core.files.storage import storages\n"
        "s = storages['default']\n"
        "print(type(s).__name__, getattr(s, 'default_acl', '-'), getattr(s, 'querystring_auth', '-'),"
        " getattr(s, 'querystring_expire', '-'), s.url('results/2026/01/x/result.mp4'), boto3)\n"
    )
    base = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**base, "DJANGO_SETTINGS_MODULE": "lumaweb.settings", **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


def test_a_bucket_in_the_environment_is_the_media_storage_and_it_stays_private():
    # On the local disk, no process pays for boto3 (some 35 MB each).
    assert settings_seen_by_a_new_process() == ["FileSystemStorage", "-", "-", "-", "/media/results/2026/01/x/result.mp4",
                                                "False"]
    env = {"AWS_STORAGE_BUCKET_NAME": "team-media", "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:9"}
    # Private whatever else is set: no ACL (the bucket's own policy), every URL signed, and pages
    # still link to the app's own /media/ address (the permission check), never to the bucket.
    assert settings_seen_by_a_new_process(**env, AWS_DEFAULT_ACL="public-read") == [
        "PrivateS3Storage", "None", "True", "300", "/media/results/2026/01/x/result.mp4", "False"]
    assert settings_seen_by_a_new_process(**env, AWS_QUERYSTRING_EXPIRE="90")[3] == "90"


# --- Every path that writes media writes to the bucket -------------------------------------------


def test_an_uploaded_source_lands_in_the_bucket_not_on_disk(s3, signed_in, member, clip, media_root, monkeypatch):
    monkeypatch.setattr("modify.enqueue.send_to_provider", lambda task: None)
    source = clip(seconds=1)
    with open(source, "rb") as fh:
        response = signed_in.post("/tasks/", {"video": fh, "prompt": "a snowy winter night"})
    assert response.status_code == 302, response.content.decode()[:2000]
    task = ModifyTask.objects.get(owner=member)
    assert task.source_file.name.startswith("sources/") and task.source_file.name.endswith(f"/{task.pk}/source.mp4")
    assert s3.keys() == [task.source_file.name]
    assert s3.read(task.source_file.name) == source.read_bytes()
    assert on_disk(media_root, task.source_file.name) == []
    assert task.source_file.url == f"/media/{task.source_file.name}"  # what pages link to: the app


def test_sending_uploads_the_source_from_the_bucket(s3, app, member, clip):
    source = clip(seconds=1)
    task = sending.send_to_provider(make_task(member, upload=source).pk)
    assert task.state == State.GENERATING, task.error_message
    # The sandbox got the very bytes (and, its files being media too, keeps them in the bucket).
    uploaded = UploadedFile.objects.get()
    assert task.provider_video_url.endswith(f"/files/uploads/{uploaded.id}/{task.pk}.mp4")
    assert s3.read(uploaded.file.name) == source.read_bytes()


def test_archiving_stores_the_result_and_its_poster_in_the_bucket(s3, app, api, member, clip, media_root):
    video = clip(seconds=1.5)
    task = backdate(make_task(member, State.ARCHIVING), result_url=upload_clip(api, video))
    task = archiving.archive(task.pk)
    assert task.state == State.SUCCEEDED, task.error_message
    assert task.result_file.name.endswith(f"/{task.pk}/result.mp4")
    assert task.poster.name.endswith(f"/{task.pk}/poster.jpg")
    assert s3.read(task.result_file.name) == video.read_bytes()
    assert s3.read(task.poster.name)[:3] == b"\xff\xd8\xff"
    assert task.result_size == video.stat().st_size
    assert on_disk(media_root, task.result_file.name, task.poster.name) == []


def test_a_retry_and_a_remix_copy_their_source_within_the_bucket(s3, member, clip):
    source, result = clip(seconds=1), clip(seconds=1.5)
    failed = make_task(member, State.FAILED, upload=source)
    again = intake.retry(failed, by=member)
    assert again.source_file.name != failed.source_file.name
    assert s3.read(again.source_file.name) == source.read_bytes()

    done = make_task(member, State.SUCCEEDED, result=result)
    remix = intake.accept(member, "now at dusk", remix_of=done)
    assert s3.read(remix.source_file.name) == result.read_bytes()
    assert remix.source_file.name in s3.keys("sources/")


# --- Members reach a file through the app, then a presigned URL ---------------------------------


@pytest.fixture
def archived(s3, member, clip, settings):
    """A succeeded task of ``member`` (not shared) whose source, result and poster are in the bucket;
    presigned URLs live 120 s."""
    settings.AWS_QUERYSTRING_EXPIRE = 120  # read when the storage is first used, below
    source, result = clip(seconds=1), clip(seconds=1.5)
    task = make_task(member, State.SUCCEEDED, upload=source, result=result, shared=False)
    task.source_bytes, task.result_bytes = source.read_bytes(), result.read_bytes()
    return task


def test_a_member_is_sent_to_a_short_lived_presigned_url_that_serves_the_bytes(s3, archived, signed_in):
    response = signed_in.get(archived.result_file.url)
    query = presigned(response, s3, archived.result_file.name)
    assert query["X-Amz-Expires"] == "120"  # AWS_QUERYSTRING_EXPIRE
    assert query["X-Amz-Signature"] and query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    assert abs(datetime.now(timezone.utc) - signed_at) < timedelta(minutes=1)  # expires 120 s from now
    from_bucket = requests.get(response["Location"], timeout=10)
    assert from_bucket.status_code == 200 and from_bucket.content == archived.result_bytes
    # The bucket answers ranges itself, so the video element can seek.
    part = requests.get(response["Location"], headers={"Range": "bytes=10-19"}, timeout=10)
    assert part.status_code == 206 and part.content == archived.result_bytes[10:20]
    # The poster and the source, the same way.
    poster = signed_in.get(archived.poster.url)
    presigned(poster, s3, archived.poster.name)
    assert requests.get(poster["Location"], timeout=10).content[:3] == b"\xff\xd8\xff"
    source = signed_in.get(archived.source_file.url)
    presigned(source, s3, archived.source_file.name)
    assert requests.get(source["Location"], timeout=10).content == archived.source_bytes


def test_another_member_gets_404_and_no_url(s3, archived, client, other):
    client.force_login(other)
    for field in (archived.result_file, archived.poster, archived.source_file):
        response = client.get(field.url)
        assert response.status_code == 404
        assert "Location" not in response
        assert s3.name not in response.content.decode() and "X-Amz" not in response.content.decode()


def test_a_stranger_is_sent_to_sign_in_not_to_the_bucket(s3, archived, client):
    response = client.get(archived.result_file.url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_objects_are_not_publicly_readable(s3, archived):
    keys = s3.keys()
    assert set(keys) == {archived.source_file.name, archived.result_file.name, archived.poster.name}
    for key in keys:
        assert requests.get(s3.unsigned_url(key), timeout=10).status_code == 403
        assert not [grant for grant in s3.acl_grants(key) if grant["Grantee"].get("URI", "").endswith("/AllUsers")]


@pytest.mark.parametrize("where", ["disk", "bucket"])
def test_a_download_link_names_the_members_own_file(request, member, signed_in, clip, where):
    s3 = request.getfixturevalue("s3") if where == "bucket" else None
    source = clip(seconds=1)
    task = make_task(member, upload=source, source_name="Holiday at sea.mp4")
    response = signed_in.get(task.source_file.url + "?download")
    expected = "attachment; filename=\"Holiday at sea.mp4\""
    if s3 is None:
        assert response.status_code == 200 and response["Content-Disposition"] == expected
        assert b"".join(response.streaming_content) == source.read_bytes()
    else:
        presigned(response, s3, task.source_file.name)
        from_bucket = requests.get(response["Location"], timeout=10)
        assert from_bucket.headers["Content-Disposition"] == expected
        assert from_bucket.content == source.read_bytes()


# --- The whole lifecycle -----------------------------------------------------------------------


def _elsewhere(url, database):
    """``url`` with another database: its own PostgreSQL database, or Redis's database 13."""
    parts = urlsplit(url)
    return parts._replace(path=f"/{database}").geturl()


@pytest.mark.e2e
def test_the_whole_lifecycle_runs_with_media_in_the_bucket(s3_server, tmp_path):
    """tests/s3_lifecycle.py in a test session of its own, configured by environment alone: its
    live server and its q clusters (app and sandbox) all start with the bucket as their storage."""
    from tests.s3server import Bucket

    bucket = Bucket(s3_server)
    env = {**os.environ, **bucket.env, "LUMAWEB_VAR_DIR": str(tmp_path / "var")}
    # Its own database and queue: the clusters of this session must not take its jobs.
    if "postgresql" in django_settings.DATABASES["default"]["ENGINE"]:
        env["DATABASE_URL"] = _elsewhere(os.environ["DATABASE_URL"], "lumaweb_s3_lifecycle")
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = _elsewhere(os.environ["REDIS_URL"], 13)
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/s3_lifecycle.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "\n1 passed" in f"\n{done.stdout}", done.stdout[-6000:] + done.stderr[-3000:]
    keys = bucket.keys()
    app_files = sorted(key.rsplit("/", 1)[-1] for key in keys if not key.startswith("sandbox/"))
    assert app_files == ["poster.jpg", "result.mp4", "source.mp4"], keys
    assert any(key.startswith("sandbox/") for key in keys)  # the sandbox's own files too
