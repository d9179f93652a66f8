"""sending.send_to_provider (the django-q2 sending job) against the sandbox over real HTTP: each
upstream error code ends in a retry or in a failure the user can read, and leaves its events."""

import pytest
from django.utils import timezone

from modify import sending
from modify.models import ApiKey, ModifyTask
from modify.states import Actor
from tests.factories import backdate, make_member, make_task

State = ModifyTask.State


@pytest.fixture
def owner(transactional_db):
    return make_member("ana")


@pytest.fixture
def upload_task(owner, clip):
    def make(**fields):
        return make_task(owner, upload=clip(seconds=1), **fields)

    return make


def kinds(task):
    return [event.kind for event in task.events.all()]


def only_event(task, kind):
    events = [event for event in task.events.all() if event.kind == kind]
    assert len(events) == 1, f"expected one {kind!r} event, got {kinds(task)}"
    return events[0]


def assert_failed_event(task, *secrets):
    """The failure left one "fail" event, by the system, whose detail is the member's sentence, without secrets."""
    event = only_event(task, "fail")
    assert (event.from_state, event.to_state) == (State.SUBMITTING, State.FAILED)
    assert event.actor == Actor.SYSTEM
    assert event.detail == task.error_message
    for secret in secrets:
        assert all(secret not in e.detail for e in task.events.all())
    return event


def assert_retry_event(task):
    """The last retry left a "retry_later" event, by the system, whose reason the member's note repeats."""
    event = task.events.filter(kind="retry_later").last()
    assert event is not None, f"no retry_later event in {kinds(task)}"
    assert (event.from_state, event.to_state) == (State.SUBMITTING, State.QUEUED)
    assert event.actor == Actor.SYSTEM and event.detail
    assert task.status_note == f"Waiting to retry: {event.detail}"
    return event


def send(task):
    return sending.send_to_provider(task.pk)


def retry_now(task):
    """As if the retry's backoff had passed."""
    return backdate(task, next_submit_at=timezone.now())


def test_an_upload_is_made_public_then_generated(app, upload_task):
    task = send(upload_task())
    assert task.state == State.GENERATING
    assert len(task.provider_task_id) == 32
    assert task.provider_video_url.startswith(f"{app.url}/sandbox/files/uploads/")
    assert task.submit_attempts == 1
    assert task.next_poll_at > timezone.now()
    assert task.status_note == "" and task.error_message == ""
    assert kinds(task) == ["created", "claim", "accepted"]
    assert only_event(task, "accepted").detail == task.provider_task_id


def test_only_one_sending_wins(app, upload_task):
    task = upload_task()
    send(task)
    again = send(task)
    assert again.state == State.GENERATING and again.submit_attempts == 1
    assert kinds(again) == ["created", "claim", "accepted"]


def test_a_wrong_api_key_fails_with_advice(app, upload_task, owner):
    key = ApiKey(owner=None, label="team")
    key.secret = "not-a-sandbox-key"
    key.save()
    task = send(upload_task())
    assert task.state == State.FAILED
    assert task.failed_stage == State.SUBMITTING
    assert task.error_code == 401
    assert "rejected the API key" in task.error_message
    assert "not-a-sandbox-key" not in task.error_message
    assert task.status_note == ""
    assert_failed_event(task, "not-a-sandbox-key")


def test_out_of_credits_fails_saying_so(app, upload_task, settings):
    settings.SANDBOX_INITIAL_CREDITS = 0
    task = send(upload_task())
    assert (task.state, task.error_code) == (State.FAILED, 402)
    assert "out of credits" in task.error_message
    assert_failed_event(task, "sandbox-key")


def public_url(app, path, name="clip.mp4"):
    from modify.provider import LumaClient

    return LumaClient("sandbox-key", upload_base=f"{app.url}/sandbox").upload_file(path, "t", name).download_url


def url_task_for(owner, url, is_sandbox=True):
    return make_task(owner, url=url, is_sandbox=is_sandbox)


def test_a_url_source_is_kept_and_the_provider_fetches_the_url_itself(app, owner, clip):
    url = public_url(app, clip(seconds=1.5))
    task = send(url_task_for(owner, url))
    assert task.state == State.GENERATING
    assert task.provider_video_url == url
    assert task.source_file.name.endswith("/source.mp4")
    assert task.source_duration == pytest.approx(1.5, abs=0.1)
    with task.source_file.open("rb") as kept:
        assert kept.read() == clip(seconds=1.5).read_bytes()
    assert kinds(task) == ["created", "claim", "source_kept", "accepted"]


@pytest.mark.parametrize(
    "make_source, message",
    [
        (lambda clip, tmp_path: (tmp_path / "notes.mp4").write_bytes(b"just some text") and tmp_path / "notes.mp4",
         "not an MP4, MOV or AVI video"),
        (lambda clip, tmp_path: clip(seconds=11), "The video is 11 s long; the limit is 10 s."),
    ],
)
def test_a_url_the_provider_would_refuse_fails_before_any_credit_is_spent(app, owner, clip, tmp_path, settings,
                                                                           make_source, message):
    from sandbox.models import Account, Task as SandboxTask

    task = send(url_task_for(owner, public_url(app, make_source(clip, tmp_path))))
    assert (task.state, task.failed_stage) == (State.FAILED, State.SUBMITTING)
    assert task.error_message.startswith("The video URL cannot be used:") and message in task.error_message
    assert not SandboxTask.objects.exists()
    assert Account.for_key("sandbox-key").credits == settings.SANDBOX_INITIAL_CREDITS
    assert kinds(task) == ["created", "claim", "fail"]
    assert_failed_event(task, "sandbox-key")


def test_for_the_real_provider_a_private_url_is_refused_unfetched(app, owner, clip):
    """kie.ai fetches from the internet: a URL on this machine could not work, and the app
    must not be a way to probe its own network."""
    from sandbox.models import Task as SandboxTask

    task = send(url_task_for(owner, public_url(app, clip(seconds=1)), is_sandbox=False))
    assert task.state == State.FAILED
    assert "is on this machine or a private network; give a public URL" in task.error_message
    assert not task.source_file and not SandboxTask.objects.exists()
    assert_failed_event(task)


def test_an_unreachable_video_url_is_retried_then_fails_saying_so(app, owner, settings):
    settings.LUMA_SUBMIT_MAX_ATTEMPTS = 2
    task = send(url_task_for(owner, "http://127.0.0.1:9/x.mp4?sig=SECRET"))
    assert task.state == State.QUEUED and task.next_submit_at > timezone.now()
    assert task.status_note.startswith(
        "Waiting to retry: Could not download http://127.0.0.1:9/x.mp4: the connection failed")
    assert task.error_message == ""
    assert_retry_event(task)
    task = send(retry_now(task))
    assert task.state == State.FAILED
    assert "Could not download http://127.0.0.1:9/x.mp4: the connection failed" in task.error_message
    assert "SECRET" not in task.error_message
    assert task.status_note == ""
    assert kinds(task) == ["created", "claim", "retry_later", "claim", "fail"]
    assert_failed_event(task, "SECRET")


def test_a_url_the_host_refuses_fails_at_once(app, owner):
    task = send(url_task_for(owner, f"{app.url}/sandbox/files/uploads/nothing/here.mp4"))
    assert task.state == State.FAILED
    assert "the server answered HTTP 404" in task.error_message
    assert kinds(task) == ["created", "claim", "fail"]
    assert_failed_event(task)


def test_a_rate_limit_puts_the_task_back_with_a_delay_then_it_goes_through(app, upload_task, inject_faults):
    inject_faults("rate_limit:1")
    task = send(upload_task())
    assert task.state == State.QUEUED
    assert task.next_submit_at > timezone.now()
    assert "Waiting to retry" in task.status_note and task.error_message == ""
    assert_retry_event(task)
    assert send(task).state == State.QUEUED  # not before the retry is due
    assert kinds(task) == ["created", "claim", "retry_later"]
    task = send(retry_now(task))
    assert task.state == State.GENERATING
    assert task.submit_attempts == 2 and task.error_message == "" and task.status_note == ""
    assert task.next_submit_at is None
    assert kinds(task) == ["created", "claim", "retry_later", "claim", "accepted"]


def test_server_errors_give_up_after_the_attempt_limit(app, upload_task, settings, inject_faults):
    inject_faults("server_error:100")
    settings.LUMA_SUBMIT_MAX_ATTEMPTS = 2
    task = send(upload_task())
    assert task.state == State.QUEUED
    assert_retry_event(task)
    task = send(retry_now(task))
    assert task.state == State.FAILED
    assert "kept failing" in task.error_message
    assert kinds(task) == ["created", "claim", "retry_later", "claim", "fail"]
    assert_failed_event(task, "sandbox-key")


def test_an_unreachable_provider_is_retried(upload_task, settings):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"
    task = send(upload_task())
    assert task.state == State.QUEUED and task.submit_attempts == 1
    assert "Waiting to retry" in task.status_note
    assert_retry_event(task)


@pytest.fixture
def url_task(app, owner, clip):
    """A task whose source is already public, so that sending it calls generate only."""
    return url_task_for(owner, public_url(app, clip(seconds=1)))


def test_a_generate_that_got_no_answer_is_not_sent_again(url_task, settings, inject_faults):
    """A read timeout: the provider may have created (and billed) the task, so waiting beats resending."""
    from sandbox.models import Task as SandboxTask

    inject_faults("slow:1.5")
    settings.LUMA_HTTP_TIMEOUT = 1
    task = send(url_task)
    assert task.state == State.UNCONFIRMED
    assert "waiting for its callback" in task.status_note and task.error_message == ""
    assert task.callback_deadline > timezone.now()
    assert task.next_submit_at is None and not task.provider_task_id
    assert task.provider_video_url == url_task.source_url
    again = send(task)
    assert again.state == State.UNCONFIRMED and again.submit_attempts == 1  # not claimable again
    settings.SANDBOX_FAULTS = ""
    assert SandboxTask.objects.count() <= 1
    assert kinds(again) == ["created", "claim", "source_kept", "no_answer"]
    event = only_event(again, "no_answer")
    assert (event.from_state, event.to_state, event.actor) == (State.SUBMITTING, State.UNCONFIRMED, Actor.SYSTEM)


def test_without_callbacks_an_unanswered_generate_fails_and_says_why(url_task, settings, inject_faults, monkeypatch):
    inject_faults("slow:1.5")
    settings.LUMA_HTTP_TIMEOUT = 1
    monkeypatch.setattr("modify.sending.callback_url", lambda task: None)
    task = send(url_task)
    assert task.state == State.FAILED
    assert "To avoid paying twice it was not sent again" in task.error_message
    assert task.callback_deadline is None
    assert kinds(task) == ["created", "claim", "source_kept", "fail"]
    assert_failed_event(task, "sandbox-key")


def test_uploads_are_named_after_the_task_so_equal_file_names_never_collide(app, upload_task):
    first, second = send(upload_task()), send(upload_task())
    assert first.provider_video_url.endswith(f"/{first.pk}.mp4")
    assert second.provider_video_url.endswith(f"/{second.pk}.mp4")


def test_a_key_that_cannot_be_decrypted_fails_the_task_with_advice(app, upload_task, owner):
    key = ApiKey(owner=owner, label="mine")
    key.secret = "sandbox-key"
    key.save()
    ApiKey.objects.filter(pk=key.pk).update(secret_encrypted="garbage")
    task = send(upload_task())
    assert task.state == State.FAILED
    assert "cannot be decrypted" in task.error_message and "mine" in task.error_message
    assert kinds(task) == ["created", "claim", "fail"]
    assert_failed_event(task, "sandbox-key", "garbage")


def test_an_upload_that_got_no_answer_is_simply_retried(app, upload_task, settings, inject_faults):
    """Nothing is billed for an upload: a timeout there is an ordinary retry, not a wait for a callback."""
    inject_faults("slow:1.5")
    settings.LUMA_HTTP_TIMEOUT = 1
    task = send(upload_task())
    assert task.state == State.QUEUED and "Waiting to retry" in task.status_note
    assert task.callback_deadline is None
    assert kinds(task) == ["created", "claim", "retry_later"]
    assert_retry_event(task)


def test_a_retried_url_sending_keeps_the_source_it_fetched(url_task, inject_faults, monkeypatch):
    fetches = []
    real = sending.download
    monkeypatch.setattr(sending, "download", lambda url, *args, **kwargs: fetches.append(url) or real(url, *args, **kwargs))
    inject_faults("rate_limit:1")
    task = send(url_task)
    assert task.state == State.QUEUED and task.source_file
    assert_retry_event(task)
    kept = task.source_file.name
    task = send(retry_now(task))
    assert task.state == State.GENERATING
    assert task.source_file.name == kept and fetches == [url_task.source_url]
    assert kinds(task) == ["created", "claim", "source_kept", "retry_later", "claim", "accepted"]


@pytest.mark.parametrize("kind", ["url", "upload"])
def test_a_task_staff_stop_while_it_is_being_sent_is_not_generated(app, owner, clip, monkeypatch, kind):
    """Staff stop it during the source check or the upload: no credit is spent, no copy is kept."""
    from sandbox.models import Task as SandboxTask

    source = clip(seconds=1)
    task = url_task_for(owner, public_url(app, source)) if kind == "url" else make_task(owner, upload=source)
    step = "validate_video" if kind == "url" else "_public_video_url"
    real_step = getattr(sending, step)

    def stopped_meanwhile(*args, **kwargs):
        ModifyTask.objects.get(pk=task.pk).fail("Stopped by staff (sam).", actor=Actor.STAFF)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(sending, step, stopped_meanwhile)
    task = send(task)
    assert (task.state, task.error_message) == (State.FAILED, "Stopped by staff (sam).")
    assert not SandboxTask.objects.exists()
    assert kinds(task) == ["created", "claim", "fail"]
    if kind == "url":
        assert not task.source_file and not list(_stored_sources(task))


def _stored_sources(task):
    from django.core.files.storage import default_storage

    folder = f"sources/{task.created_at:%Y/%m}/{task.pk}"
    return default_storage.listdir(folder)[1] if default_storage.exists(folder) else []
