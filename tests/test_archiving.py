"""modify.archive: the result is copied home over real HTTP, or the task fails saying why."""

import pytest
from django.utils import timezone

from modify import archive, backend
from modify.video_probe import probe
from modify.models import ModifyTask
from tests.conftest import upload_clip


@pytest.fixture
def archiving(member):
    def make(result_url):
        return ModifyTask.objects.create(
            owner=member, prompt="p", source_kind="url", source_url="https://x/a.mp4",
            state=ModifyTask.State.ARCHIVING, result_url=result_url, generating_at=timezone.now(),
            archiving_at=timezone.now(), is_sandbox=True,
        )

    return make


@pytest.fixture
def client(app):
    return backend.client("sandbox-key")


def test_the_result_and_a_poster_are_stored(app, api, client, archiving, clip):
    source = clip(seconds=1.5)
    task = archive.archive(archiving(upload_clip(api, source)), client)
    assert task.state == ModifyTask.State.SUCCEEDED
    assert task.result_file.read() == source.read_bytes()
    assert task.poster.read(3) == b"\xff\xd8\xff"
    assert task.result_duration == pytest.approx(probe(source).duration)
    assert (task.result_width, task.result_height, task.result_size) == (320, 240, source.stat().st_size)


def test_an_unanswering_result_url_is_fetched_again_through_a_fresh_download_url(app, api, client, archiving, clip):
    forged = upload_clip(api, clip(seconds=1)) + "?token=expired-or-forged"
    task = archive.archive(archiving(forged), client)
    assert task.state == ModifyTask.State.SUCCEEDED, task.error_message


def test_a_result_that_is_not_a_video_fails_the_task(app, api, client, archiving, tmp_path):
    text = tmp_path / "result.mp4"
    text.write_text("an error page, not a video")
    task = archive.archive(archiving(upload_clip(api, text)), client)
    assert task.state == ModifyTask.State.FAILED and task.failed_stage == ModifyTask.State.ARCHIVING
    assert task.error_message.startswith("The result could not be archived: ")
    assert not task.result_file


def test_a_result_that_cannot_be_downloaded_fails_the_task_with_the_reason(app, client, archiving):
    task = archive.archive(archiving("http://127.0.0.1:9/gone.mp4"), client)
    assert task.state == ModifyTask.State.FAILED
    assert "could not be archived" in task.error_message and "127.0.0.1:9/gone.mp4" in task.error_message


def test_a_result_over_the_size_cap_is_refused(app, api, client, archiving, clip, settings):
    settings.LUMA_MAX_RESULT_BYTES = 1000
    task = archive.archive(archiving(upload_clip(api, clip(seconds=1))), client)
    assert task.state == ModifyTask.State.FAILED and "could not be archived" in task.error_message


def test_an_unexpected_error_fails_the_task_and_is_raised_for_the_logs(app, api, client, archiving, clip, monkeypatch):
    monkeypatch.setattr("modify.archive.write_poster", lambda *args: 1 / 0)
    task = archiving(upload_clip(api, clip(seconds=1)))
    with pytest.raises(ZeroDivisionError):
        archive.archive(task, client)
    task.refresh_from_db()
    assert task.state == ModifyTask.State.FAILED and "failed unexpectedly" in task.error_message
