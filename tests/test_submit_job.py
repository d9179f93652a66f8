"""lifecycle.submit (the django-q2 submit job) against the sandbox over real HTTP: each upstream
error code ends in a retry or in a failure the user can read."""

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.utils import timezone

from modify import lifecycle
from modify.models import ApiKey, ModifyTask


@pytest.fixture
def owner(transactional_db):
    return User.objects.create_user("ana")


@pytest.fixture
def upload_task(owner, clip):
    def make(**fields):
        task = ModifyTask(owner=owner, prompt="winter night", source_kind="upload", source_name="a.mp4", **fields)
        task.source_file.save("a.mp4", ContentFile(clip(seconds=1).read_bytes()), save=False)
        task.save()
        return task

    return make


def test_an_upload_is_made_public_then_generated(app, upload_task):
    task = lifecycle.submit(upload_task().pk)
    assert task.state == ModifyTask.State.GENERATING
    assert len(task.provider_task_id) == 32
    assert task.provider_video_url.startswith(f"{app.url}/sandbox/files/uploads/")
    assert task.submit_attempts == 1
    assert task.next_poll_at > timezone.now()


def test_only_one_submission_wins(app, upload_task):
    task = upload_task()
    lifecycle.submit(task.pk)
    again = lifecycle.submit(task.pk)
    assert again.state == ModifyTask.State.GENERATING and again.submit_attempts == 1


def test_a_wrong_api_key_fails_with_advice(app, upload_task, owner):
    key = ApiKey(owner=None, label="team")
    key.secret = "not-a-sandbox-key"
    key.save()
    task = lifecycle.submit(upload_task().pk)
    assert task.state == ModifyTask.State.FAILED
    assert task.failed_stage == ModifyTask.State.SUBMITTING
    assert task.error_code == 401
    assert "rejected the API key" in task.error_message
    assert "not-a-sandbox-key" not in task.error_message


def test_out_of_credits_fails_saying_so(app, upload_task, settings):
    settings.SANDBOX_INITIAL_CREDITS = 0
    task = lifecycle.submit(upload_task().pk)
    assert (task.state, task.error_code) == (ModifyTask.State.FAILED, 402)
    assert "out of credits" in task.error_message


def public_url(app, path, name="clip.mp4"):
    from modify.provider import LumaClient

    return LumaClient("sandbox-key", upload_base=f"{app.url}/sandbox").upload_file(path, "t", name).download_url


def url_task_for(owner, url, is_sandbox=True):
    return ModifyTask.objects.create(owner=owner, prompt="winter", source_kind="url", source_url=url, is_sandbox=is_sandbox)


def test_a_url_source_is_kept_and_the_provider_fetches_the_url_itself(app, owner, clip):
    url = public_url(app, clip(seconds=1.5))
    task = lifecycle.submit(url_task_for(owner, url).pk)
    assert task.state == ModifyTask.State.GENERATING
    assert task.provider_video_url == url
    assert task.source_file.name.endswith("/source.mp4")
    assert task.source_duration == pytest.approx(1.5, abs=0.1)
    with task.source_file.open("rb") as kept:
        assert kept.read() == clip(seconds=1.5).read_bytes()


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

    task = lifecycle.submit(url_task_for(owner, public_url(app, make_source(clip, tmp_path))).pk)
    assert (task.state, task.failed_stage) == (ModifyTask.State.FAILED, ModifyTask.State.SUBMITTING)
    assert task.error_message.startswith("The video URL cannot be used:") and message in task.error_message
    assert not SandboxTask.objects.exists()
    assert Account.for_key("sandbox-key").credits == settings.SANDBOX_INITIAL_CREDITS


def test_for_the_real_provider_a_private_url_is_refused_unfetched(app, owner, clip):
    """kie.ai fetches from the internet: a URL on this machine could not work, and the app
    must not be a way to probe its own network."""
    from sandbox.models import Task as SandboxTask

    task = lifecycle.submit(url_task_for(owner, public_url(app, clip(seconds=1)), is_sandbox=False).pk)
    assert task.state == ModifyTask.State.FAILED
    assert "is on this machine or a private network; give a public URL" in task.error_message
    assert not task.source_file and not SandboxTask.objects.exists()


def test_an_unreachable_video_url_is_retried_then_fails_saying_so(app, owner, settings):
    settings.LUMA_SUBMIT_MAX_ATTEMPTS = 2
    task = lifecycle.submit(url_task_for(owner, "http://127.0.0.1:9/x.mp4?sig=SECRET").pk)
    assert task.state == ModifyTask.State.QUEUED and task.next_submit_at > timezone.now()
    assert task.error_message.startswith("Waiting to retry: Could not download http://127.0.0.1:9/x.mp4: the connection failed")
    ModifyTask.objects.filter(pk=task.pk).update(next_submit_at=timezone.now())
    task = lifecycle.submit(task.pk)
    assert task.state == ModifyTask.State.FAILED
    assert "Could not download http://127.0.0.1:9/x.mp4: the connection failed" in task.error_message
    assert "SECRET" not in task.error_message


def test_a_url_the_host_refuses_fails_at_once(app, owner):
    task = lifecycle.submit(url_task_for(owner, f"{app.url}/sandbox/files/uploads/nothing/here.mp4").pk)
    assert task.state == ModifyTask.State.FAILED
    assert "the server answered HTTP 404" in task.error_message


def test_a_rate_limit_puts_the_task_back_with_a_delay_then_it_goes_through(app, upload_task, inject_faults):
    inject_faults("rate_limit:1")
    task = lifecycle.submit(upload_task().pk)
    assert task.state == ModifyTask.State.QUEUED
    assert task.next_submit_at > timezone.now()
    assert "Waiting to retry" in task.error_message
    assert lifecycle.submit(task.pk).state == ModifyTask.State.QUEUED  # not before the retry is due
    ModifyTask.objects.filter(pk=task.pk).update(next_submit_at=timezone.now())
    task = lifecycle.submit(task.pk)
    assert task.state == ModifyTask.State.GENERATING
    assert task.submit_attempts == 2 and task.error_message == ""


def test_server_errors_give_up_after_the_attempt_limit(app, upload_task, settings, inject_faults):
    inject_faults("server_error:100")
    settings.LUMA_SUBMIT_MAX_ATTEMPTS = 2
    task = lifecycle.submit(upload_task().pk)
    assert task.state == ModifyTask.State.QUEUED
    ModifyTask.objects.filter(pk=task.pk).update(next_submit_at=timezone.now())
    task = lifecycle.submit(task.pk)
    assert task.state == ModifyTask.State.FAILED
    assert "kept failing" in task.error_message


def test_an_unreachable_provider_is_retried(upload_task, settings):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"
    task = lifecycle.submit(upload_task().pk)
    assert task.state == ModifyTask.State.QUEUED and task.submit_attempts == 1


@pytest.fixture
def url_task(app, owner, clip):
    """A task whose source is already public, so that submitting it calls generate only."""
    return url_task_for(owner, public_url(app, clip(seconds=1)))


def test_a_generate_that_got_no_answer_is_not_sent_again(url_task, settings, inject_faults):
    """A read timeout: the provider may have created (and billed) the task, so waiting beats resending."""
    from sandbox.models import Task as SandboxTask

    inject_faults("slow:1.5")
    settings.LUMA_HTTP_TIMEOUT = 1
    task = lifecycle.submit(url_task.pk)
    assert task.state == ModifyTask.State.SUBMITTING
    assert "waiting for its callback" in task.error_message
    assert task.next_submit_at > timezone.now()
    assert lifecycle.submit(task.pk).submit_attempts == 1  # not claimable again
    settings.SANDBOX_FAULTS = ""
    assert SandboxTask.objects.count() <= 1


def test_without_callbacks_an_unanswered_generate_fails_and_says_why(url_task, settings, inject_faults, monkeypatch):
    inject_faults("slow:1.5")
    settings.LUMA_HTTP_TIMEOUT = 1
    monkeypatch.setattr("modify.lifecycle.callback_url", lambda task: None)
    task = lifecycle.submit(url_task.pk)
    assert task.state == ModifyTask.State.FAILED
    assert "To avoid paying twice it was not sent again" in task.error_message


def test_uploads_are_named_after_the_task_so_equal_file_names_never_collide(app, upload_task):
    first, second = lifecycle.submit(upload_task().pk), lifecycle.submit(upload_task().pk)
    assert first.provider_video_url.endswith(f"/{first.pk}.mp4")
    assert second.provider_video_url.endswith(f"/{second.pk}.mp4")


def test_a_key_that_cannot_be_decrypted_fails_the_task_with_advice(app, upload_task, owner):
    key = ApiKey(owner=owner, label="mine")
    key.secret = "sandbox-key"
    key.save()
    ApiKey.objects.filter(pk=key.pk).update(secret_encrypted="garbage")
    task = lifecycle.submit(upload_task().pk)
    assert task.state == ModifyTask.State.FAILED
    assert "cannot be decrypted" in task.error_message and "mine" in task.error_message


def test_an_upload_that_got_no_answer_is_simply_retried(app, upload_task, settings, inject_faults):
    """Nothing is billed for an upload: a timeout there is an ordinary retry, not a wait for a callback."""
    inject_faults("slow:1.5")
    settings.LUMA_HTTP_TIMEOUT = 1
    task = lifecycle.submit(upload_task().pk)
    assert task.state == ModifyTask.State.QUEUED and "Waiting to retry" in task.error_message


def test_a_retried_url_submission_keeps_the_source_it_fetched(url_task, inject_faults, monkeypatch):
    fetches = []
    real = lifecycle.download
    monkeypatch.setattr(lifecycle, "download", lambda url, *args, **kwargs: fetches.append(url) or real(url, *args, **kwargs))
    inject_faults("rate_limit:1")
    task = lifecycle.submit(url_task.pk)
    assert task.state == ModifyTask.State.QUEUED and task.source_file
    kept = task.source_file.name
    ModifyTask.objects.filter(pk=task.pk).update(next_submit_at=timezone.now())
    task = lifecycle.submit(task.pk)
    assert task.state == ModifyTask.State.GENERATING
    assert task.source_file.name == kept and fetches == [url_task.source_url]
