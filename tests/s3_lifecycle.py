"""The whole lifecycle with media in a bucket, in a test session configured by environment alone.

Not collected with the suite (its name does not start with ``test_``):
``tests/test_s3_storage.py`` runs it in a pytest session of its own, with
``AWS_STORAGE_BUCKET_NAME`` and the rest in the environment, so that this
process, its live server and its q clusters (the app's and the sandbox's)
all start with the bucket as their media storage, as a deployment's would.
Against a real bucket: ``AWS_STORAGE_BUCKET_NAME=... AWS_S3_ENDPOINT_URL=...
pytest tests/s3_lifecycle.py``.
"""

import pytest
import requests
from django.conf import settings
from django.core.files.storage import storages
from django.test import Client

from modify.models import ModifyTask
from modify.s3_storage import PrivateS3Storage
from modify.storage import local_copy
from modify.video_probe import probe
from sandbox.models import Task as SandboxTask
from tests.conftest import wait_for_state
from tests.factories import make_member

pytestmark = pytest.mark.e2e


def test_a_task_runs_its_whole_lifecycle_with_media_in_the_bucket(e2e, clip, media_root):
    assert settings.AWS_STORAGE_BUCKET_NAME, "set AWS_STORAGE_BUCKET_NAME (tests/test_s3_storage.py does)"
    storage = storages["default"]
    assert isinstance(storage, PrivateS3Storage)
    member = make_member("maria")
    client = Client()
    client.force_login(member)
    source = clip(seconds=1.5)
    with open(source, "rb") as fh:
        response = client.post("/tasks/", {"video": fh, "prompt": "a snowy winter night", "watermark": "ACME"})
    assert response.status_code == 302, response.content.decode()[:2000]
    task = ModifyTask.objects.get(owner=member)

    wait_for_state(task, ModifyTask.State.SUCCEEDED, timeout=120)
    kinds = [event.kind for event in task.events.all()]
    assert kinds[:4] == ["created", "claim", "generate_sent", "accepted"] and kinds[-1] == "archived", kinds
    for field in (task.source_file, task.result_file, task.poster):
        assert storage.exists(field.name), field.name
    with local_copy(task.result_file, ".mp4") as path:
        info = probe(path)
    assert info.codec == "h264" and abs(info.duration - probe(source).duration) < 0.1
    with task.poster.open("rb") as poster:
        assert poster.read(3) == b"\xff\xd8\xff"
    # The sandbox keeps its files as media too: its upload, its copy of the source, its render.
    rendered = SandboxTask.objects.get(task_id=task.provider_task_id)
    assert rendered.watermark == "ACME"
    assert storage.exists(rendered.source.name) and storage.exists(rendered.result.name)
    assert [path for path in media_root.rglob("*") if path.is_file()] == []  # nothing on this machine's disk

    # A member watches it: the app checks, then the bucket serves it.
    response = client.get(task.result_file.url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{settings.AWS_S3_ENDPOINT_URL}/")
    with task.result_file.open("rb") as result:
        assert requests.get(response["Location"], timeout=10).content == result.read()
