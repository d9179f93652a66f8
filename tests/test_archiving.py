"""modify.archiving: the result is copied home over real HTTP; a download that failed for now
resumes (polled again at once), anything else fails the task saying why."""

from http.server import BaseHTTPRequestHandler

import pytest
from django.utils import timezone

from modify import archiving
from modify.models import ModifyTask
from modify.states import Actor
from modify.video_probe import probe
from tests.conftest import upload_clip
from tests.factories import backdate, make_task
from tests.httpserver import local_server

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


class ResultHost(BaseHTTPRequestHandler):
    """A result host: answers ``server.status`` without a body, or (``server.status`` None) drops the
    connection without a word; ``server.file``, once set, is served instead."""

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.server.file is not None:
            body = self.server.file.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.server.status is None:
            self.close_connection = True  # no status line: the client sees the connection drop
        else:
            self.send_response(self.server.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def result_host():
    def serve(status):
        return local_server(ResultHost, status=status, file=None, requests=[])

    return serve


def assert_resumed(task, reason):
    """Back to generating, due for a poll now (which confirms and archives anew), saying why; not failed."""
    assert task.state == State.GENERATING
    assert task.next_poll_at <= timezone.now()
    assert ModifyTask.objects.due_for_poll(timezone.now()).filter(pk=task.pk).exists()
    assert task.error_message == "" and task.failed_stage == "" and task.finished_at is None
    assert task.archiving_at is not None  # the maximum wait still counts from the first archiving
    assert not task.result_file
    event = task.events.last()
    assert (event.kind, event.from_state, event.to_state, event.actor) == (
        "resume_archiving", State.ARCHIVING, State.GENERATING, Actor.SYSTEM)
    assert event.detail == reason
    assert "fail" not in kinds(task)
    return event


@pytest.mark.parametrize("status, reason", [
    (500, "the server answered HTTP 500"),
    (502, "the server answered HTTP 502"),
    (503, "the server answered HTTP 503"),
    (None, "the connection failed (ConnectionError)"),
])
def test_a_download_that_failed_for_now_resumes_archiving(app, archiving_task, result_host, status, reason):
    with result_host(status) as host:
        task = archive(archiving_task(f"{host.url}/result.mp4?sig=SECRET"))
        assert host.requests  # it was asked (and the sandbox gave no fresh URL for a file it did not make)
    event = assert_resumed(task, f"Could not download {host.url}/result.mp4: {reason}.")
    assert "SECRET" not in event.detail


def test_a_result_host_that_does_not_answer_at_all_resumes_archiving(app, archiving_task):
    task = archive(archiving_task("http://127.0.0.1:9/gone.mp4"))
    event = assert_resumed(
        task, "Could not download http://127.0.0.1:9/gone.mp4: the connection failed (ConnectionError).")
    assert "127.0.0.1:9/gone.mp4" in event.detail


def test_a_resumed_archiving_archives_when_its_result_is_found_again(app, archiving_task, result_host, clip):
    source = clip(seconds=1)
    with result_host(503) as host:
        task = archive(archiving_task(f"{host.url}/result.mp4"))
        first_archiving = task.archiving_at
        assert task.state == State.GENERATING
        host.file = source
        assert task.result_found(f"{host.url}/result.mp4")  # as the poll does
        task = archive(task)
    assert task.state == State.SUCCEEDED, task.error_message
    assert task.result_file.read() == source.read_bytes()
    assert task.archiving_at == first_archiving
    assert kinds(task)[-4:] == ["result_found", "resume_archiving", "result_found", "archived"]


@pytest.mark.parametrize("status", [404, 403, 410])
def test_a_result_the_host_refuses_fails_the_task_with_the_reason(app, archiving_task, result_host, status):
    with result_host(status) as host:
        task = archive(archiving_task(f"{host.url}/gone.mp4?sig=SECRET"))
    assert (task.state, task.failed_stage) == (State.FAILED, State.ARCHIVING)
    assert task.error_message == (
        f"The result could not be archived: Could not download {host.url}/gone.mp4: the server answered HTTP {status}.")
    assert "SECRET" not in task.error_message
    assert "resume_archiving" not in kinds(task)
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
