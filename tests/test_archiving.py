"""modify.archiving: the result is copied home over real HTTP, or the task fails saying why."""

import pytest

from modify import archiving
from modify.models import ModifyTask
from modify.states import Actor
from modify.video_probe import probe
from tests.conftest import upload_clip
from tests.factories import backdate, make_task

State = ModifyTask.State


@pytest.fixture
def archiving_task(member):
    """A task the provider finished, waiting in ``archiving`` for its result at ``result_url``."""

    def make(result_url):
        return backdate(make_task(member, State.ARCHIVING), result_url=result_url)

    return make


def archive(task):
    return archiving.archive(task.pk)


def kinds(task):
    return [event.kind for event in task.events.all()]


def assert_failed_event(task):
    """The failure left one "fail" event (archiving → failed), whose detail is the member's sentence."""
    [event] = task.events.filter(kind="fail")
    assert (event.from_state, event.to_state, event.actor) == (State.ARCHIVING, State.FAILED, Actor.SYSTEM)
    assert event.detail == task.error_message
    assert kinds(task)[-1] == "fail" and "archived" not in kinds(task)


def test_the_result_and_a_poster_are_stored(app, api, archiving_task, clip):
    source = clip(seconds=1.5)
    task = archive(archiving_task(upload_clip(api, source)))
    assert task.state == State.SUCCEEDED
    assert task.result_file.read() == source.read_bytes()
    assert task.poster.read(3) == b"\xff\xd8\xff"
    assert task.result_duration == pytest.approx(probe(source).duration)
    assert (task.result_width, task.result_height, task.result_size) == (320, 240, source.stat().st_size)
    assert task.finished_at is not None and task.error_message == ""
    [event] = task.events.filter(kind="archived")
    assert (event.from_state, event.to_state, event.actor) == (State.ARCHIVING, State.SUCCEEDED, Actor.SYSTEM)
    assert kinds(task)[-1] == "archived"


def test_an_unanswering_result_url_is_fetched_again_through_a_fresh_download_url(app, api, archiving_task, clip):
    forged = upload_clip(api, clip(seconds=1)) + "?token=expired-or-forged"
    task = archive(archiving_task(forged))
    assert task.state == State.SUCCEEDED, task.error_message


def test_a_result_that_is_not_a_video_fails_the_task(app, api, archiving_task, tmp_path):
    text = tmp_path / "result.mp4"
    text.write_text("an error page, not a video")
    task = archive(archiving_task(upload_clip(api, text)))
    assert task.state == State.FAILED and task.failed_stage == State.ARCHIVING
    assert task.error_message.startswith("The result could not be archived: ")
    assert not task.result_file
    assert_failed_event(task)


def test_a_result_that_cannot_be_downloaded_fails_the_task_with_the_reason(app, archiving_task):
    task = archive(archiving_task("http://127.0.0.1:9/gone.mp4"))
    assert task.state == State.FAILED
    assert "could not be archived" in task.error_message and "127.0.0.1:9/gone.mp4" in task.error_message
    assert_failed_event(task)


def test_a_result_over_the_size_cap_is_refused(app, api, archiving_task, clip, settings):
    settings.LUMA_MAX_RESULT_BYTES = 1000
    task = archive(archiving_task(upload_clip(api, clip(seconds=1))))
    assert task.state == State.FAILED and "could not be archived" in task.error_message
    assert_failed_event(task)


def test_an_unexpected_error_fails_the_task_and_is_raised_for_the_logs(app, api, archiving_task, clip, monkeypatch):
    monkeypatch.setattr("modify.archiving.write_poster", lambda *args: 1 / 0)
    task = archiving_task(upload_clip(api, clip(seconds=1)))
    with pytest.raises(ZeroDivisionError):
        archive(task)
    task.refresh_from_db()
    assert task.state == State.FAILED and "failed unexpectedly" in task.error_message
    assert_failed_event(task)


def test_a_task_that_is_no_longer_archiving_is_left_alone(app, member):
    """The job takes a task id: a task another worker (or staff) moved on is not archived again."""
    done = make_task(member, State.SUCCEEDED)
    before = kinds(done)
    assert archiving.archive(done.pk) is None
    done.refresh_from_db()
    assert done.state == State.SUCCEEDED and kinds(done) == before
