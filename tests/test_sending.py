"""sending.send_to_provider (the django-q2 sending job) against the sandbox over real HTTP: each
upstream error code ends in a retry or in a failure the user can read, and leaves its events."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from modify import sending, webhooks
from modify.models import ApiKey, ModifyTask
from modify.states import Actor
from modify.sweep import sweep
from modify.timing import worker_gave_up_after
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


def assert_failed_event(task, *secrets, from_state=State.SUBMITTING):
    """The failure left one "fail" event, by the system, whose detail is the member's sentence, without secrets.
    ``from_state``: submitting before generate went out, unconfirmed after (a refusal of generate)."""
    event = only_event(task, "fail")
    assert (event.from_state, event.to_state) == (from_state, State.FAILED)
    assert task.failed_stage == from_state
    assert event.actor == Actor.SYSTEM
    assert event.detail == task.error_message
    for secret in secrets:
        assert all(secret not in e.detail for e in task.events.all())
    return event


def assert_retry_event(task, from_state=State.SUBMITTING):
    """The last retry left a "retry_later" event, by the system, whose reason the member's note repeats.
    ``from_state``: submitting (the source or the upload failed), or unconfirmed (generate answered
    with an error that may pass, so it created nothing); either way no deadline is left running."""
    event = task.events.filter(kind="retry_later").last()
    assert event is not None, f"no retry_later event in {kinds(task)}"
    assert (event.from_state, event.to_state) == (from_state, State.QUEUED)
    assert event.actor == Actor.SYSTEM and event.detail
    assert task.status_note == f"Waiting to retry: {event.detail}"
    assert task.state == State.QUEUED and task.callback_deadline is None
    return event


def assert_generate_went_out_then_answered(task):
    """generate_sent (submitting → unconfirmed) just before generate, then accepted (unconfirmed → generating)
    with the provider's task id, both by the system; the deadline ended with the answer."""
    sent, accepted = only_event(task, "generate_sent"), only_event(task, "accepted")
    assert (sent.from_state, sent.to_state, sent.actor) == (State.SUBMITTING, State.UNCONFIRMED, Actor.SYSTEM)
    assert (accepted.from_state, accepted.to_state, accepted.actor) == (
        State.UNCONFIRMED, State.GENERATING, Actor.SYSTEM)
    assert accepted.detail == task.provider_task_id
    assert task.callback_deadline is None


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
    assert kinds(task) == ["created", "claim", "generate_sent", "accepted"]
    assert_generate_went_out_then_answered(task)


def test_only_one_sending_wins(app, upload_task):
    task = upload_task()
    send(task)
    again = send(task)
    assert again.state == State.GENERATING and again.submit_attempts == 1
    assert kinds(again) == ["created", "claim", "generate_sent", "accepted"]


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
    assert kinds(task) == ["created", "claim", "generate_sent", "fail"]
    assert_failed_event(task, "sandbox-key", from_state=State.UNCONFIRMED)  # generate went out and was refused


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
    assert kinds(task) == ["created", "claim", "source_kept", "generate_sent", "accepted"]
    assert_generate_went_out_then_answered(task)


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
    assert task.status_note == "Waiting to retry: The provider is rate limiting requests."
    assert task.error_message == ""
    assert_retry_event(task)  # the upload was refused: generate never went out
    assert send(task).state == State.QUEUED  # not before the retry is due
    assert kinds(task) == ["created", "claim", "retry_later"]
    task = send(retry_now(task))
    assert task.state == State.GENERATING
    assert task.submit_attempts == 2 and task.error_message == "" and task.status_note == ""
    assert task.next_submit_at is None
    assert kinds(task) == ["created", "claim", "retry_later", "claim", "generate_sent", "accepted"]
    assert_generate_went_out_then_answered(task)


def test_server_errors_give_up_after_the_attempt_limit(app, upload_task, settings, inject_faults):
    inject_faults("server_error:100")
    settings.LUMA_SUBMIT_MAX_ATTEMPTS = 2
    task = send(upload_task())
    assert task.state == State.QUEUED
    assert task.status_note == "Waiting to retry: The provider had a server error."
    assert_retry_event(task)
    task = send(retry_now(task))
    assert task.state == State.FAILED
    assert task.error_message == "Gave up after several tries. The provider had a server error. Try again later."
    assert task.error_code == 500
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


@pytest.fixture
def in_flight(monkeypatch):
    """What the stored task was while each generate call was in flight (``state``, ``deadline``,
    ``video_url``, and ``at``: when generate was called)."""
    seen = []
    real = sending._generate

    def watching(task, client, video_url):
        stored = ModifyTask.objects.get(pk=task.pk)
        seen.append({"state": stored.state, "deadline": stored.callback_deadline,
                     "video_url": stored.provider_video_url, "at": timezone.now()})
        return real(task, client, video_url)

    monkeypatch.setattr(sending, "_generate", watching)
    return seen


def assert_deadline(sent, wait):
    """The deadline set by generate_sent, just before generate was called, is ``wait`` after then."""
    assert sent["state"] == State.UNCONFIRMED
    assert sent["at"] - timedelta(seconds=10) <= sent["deadline"] - wait <= sent["at"]


def test_generate_goes_out_from_unconfirmed(url_task, in_flight, settings):
    """From the moment generate goes out the provider may bill the task: it is unconfirmed, with the
    provider's whole wait as deadline when callbacks can arrive, and the answer moves it on."""
    task = send(url_task)
    [sent] = in_flight
    assert_deadline(sent, timedelta(seconds=settings.LUMA_MAX_WAIT_SECONDS))
    assert sent["video_url"] == url_task.source_url
    assert task.state == State.GENERATING
    assert_generate_went_out_then_answered(task)


def test_a_generate_that_got_no_answer_is_not_sent_again(url_task, settings, inject_faults, in_flight):
    """A read timeout: the provider may have created (and billed) the task, so waiting beats resending."""
    from sandbox.models import Task as SandboxTask

    inject_faults("slow:1.5")
    settings.LUMA_HTTP_TIMEOUT = 1
    task = send(url_task)
    assert task.state == State.UNCONFIRMED
    assert task.status_note == "The provider did not answer in time; waiting for its callback."
    assert task.error_message == ""
    [sent] = in_flight
    assert_deadline(sent, timedelta(seconds=settings.LUMA_MAX_WAIT_SECONDS))
    assert task.callback_deadline == sent["deadline"] > timezone.now()  # no_answer keeps it
    assert task.next_submit_at is None and not task.provider_task_id
    assert task.provider_video_url == url_task.source_url
    again = send(task)
    assert again.state == State.UNCONFIRMED and again.submit_attempts == 1  # not claimable again
    assert len(in_flight) == 1
    settings.SANDBOX_FAULTS = ""
    assert SandboxTask.objects.count() <= 1
    assert kinds(again) == ["created", "claim", "source_kept", "generate_sent", "no_answer"]
    sent_event, event = only_event(again, "generate_sent"), only_event(again, "no_answer")
    assert (sent_event.from_state, sent_event.to_state) == (State.SUBMITTING, State.UNCONFIRMED)
    assert (event.from_state, event.to_state, event.actor) == (State.UNCONFIRMED, State.UNCONFIRMED, Actor.SYSTEM)
    # updated_at says when it entered its current state: the same-state no_answer leaves it.
    assert again.updated_at <= sent_event.created_at < event.created_at


def test_without_callbacks_an_unanswered_generate_fails_and_says_why(url_task, settings, inject_faults, monkeypatch,
                                                                     in_flight):
    inject_faults("slow:1.5")
    settings.LUMA_HTTP_TIMEOUT = 1
    monkeypatch.setattr("modify.sending.callback_url", lambda task: None)
    task = send(url_task)
    assert task.state == State.FAILED
    assert "To avoid paying twice it was not sent again" in task.error_message
    assert task.status_note == ""
    # No callback can come: it did not wait (its deadline was only for a worker that dies mid-call).
    [sent] = in_flight
    assert_deadline(sent, worker_gave_up_after())
    assert kinds(task) == ["created", "claim", "source_kept", "generate_sent", "fail"]
    assert_failed_event(task, "sandbox-key", from_state=State.UNCONFIRMED)


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
    # generate itself answered 429: it created nothing, so the task goes back to the queue.
    assert_retry_event(task, from_state=State.UNCONFIRMED)
    assert task.status_note == "Waiting to retry: The provider is rate limiting requests."
    kept = task.source_file.name
    task = send(retry_now(task))
    assert task.state == State.GENERATING
    assert task.source_file.name == kept and fetches == [url_task.source_url]
    assert kinds(task) == ["created", "claim", "source_kept", "generate_sent", "retry_later", "claim", "generate_sent",
                           "accepted"]
    assert task.callback_deadline is None


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


# A worker that dies once generate has gone out (killed past django-q2's timeout, its host gone):
# the provider may have created and billed the task, so it is never sent again; its callback names
# it, or else the sweep fails it at its deadline.

class WorkerKilled(BaseException):
    """The worker's process ended: no ``except Exception`` in the job runs."""


@pytest.fixture
def worker_dies_after_generate(monkeypatch):
    """The sending job's worker dies right after generate went out: the provider created the task
    (its ids are collected here) and nothing more happens in the job."""
    created = []

    def generate_then_die(task, client, video_url):
        created.append(client.generate(task.prompt, video_url))
        raise WorkerKilled

    monkeypatch.setattr(sending, "_generate", generate_then_die)
    return created


def die_after_generate(task):
    with pytest.raises(WorkerKilled):
        send(task)
    task.refresh_from_db()
    assert task.state == State.UNCONFIRMED and not task.provider_task_id
    assert task.status_note == "" and task.error_message == ""
    assert kinds(task)[-1] == "generate_sent"
    return task


def test_a_task_whose_worker_died_after_generate_is_adopted_by_its_signed_callback(
        url_task, worker_dies_after_generate, client, settings, monkeypatch):
    from modify import polling
    from sandbox.models import Task as SandboxTask

    settings.LUMA_WEBHOOK_HMAC_KEY = "webhook-key"
    polls = []
    monkeypatch.setattr("modify.enqueue.poll", lambda task: polls.append(task.pk))
    task = die_after_generate(url_task)
    [provider_id] = worker_dies_after_generate
    before = len(kinds(task))
    response = client.post(f"/callbacks/{task.callback_token}/", content_type="application/json",
                           data=json.dumps({"code": 200, "msg": "ok", "data": {"taskId": provider_id}}),
                           headers=webhooks.signed_headers("webhook-key", provider_id))
    assert response.status_code == 200, response.content
    task.refresh_from_db()
    assert (task.state, task.provider_task_id) == (State.GENERATING, provider_id)
    assert task.callback_received_at is not None and task.callback_deadline is None
    assert task.next_poll_at <= timezone.now()  # polled at once to confirm
    assert polls == [task.pk]
    history = [(e.kind, e.from_state, e.to_state, e.actor, e.detail) for e in task.events.all()][before:]
    assert history == [("adopted", State.UNCONFIRMED, State.GENERATING, Actor.PROVIDER, provider_id),
                       ("callback_accepted", State.GENERATING, State.GENERATING, Actor.PROVIDER, "first delivery")]
    # The poll asks the provider about the adopted task, which it knows; it was created once.
    polling.poll_task(task.pk)
    assert task.events.last().kind == "poll" and task.events.last().detail == "successFlag 0 (generating)"
    assert list(SandboxTask.objects.values_list("task_id", flat=True)) == [provider_id]


def test_without_its_callback_it_fails_only_after_its_deadline(url_task, worker_dies_after_generate):
    from sandbox.models import Task as SandboxTask

    task = die_after_generate(url_task)
    # Long after its worker surely died: it is not failed as "worker stopped" (generate went out), nor sent again.
    backdate(task, submitting_at=timezone.now() - worker_gave_up_after() - timedelta(minutes=1))
    assert task.callback_deadline > timezone.now()
    assert sweep()["abandoned"] == 0
    task.refresh_from_db()
    assert task.state == State.UNCONFIRMED and kinds(task)[-1] == "generate_sent"
    backdate(task, callback_deadline=timezone.now() - timedelta(seconds=1))
    assert sweep()["abandoned"] == 1
    task.refresh_from_db()
    assert (task.state, task.failed_stage) == (State.FAILED, State.UNCONFIRMED)
    assert task.error_message == "The provider never confirmed this task, nor called back; please submit it again."
    assert kinds(task)[-2:] == ["generate_sent", "fail"]
    assert_failed_event(task, from_state=State.UNCONFIRMED)
    assert SandboxTask.objects.count() == len(worker_dies_after_generate) == 1
